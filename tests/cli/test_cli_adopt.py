"""``canaryctl validate --cluster`` and ``render --cluster``: a stable that adopts a live
InferenceService is read from the cluster as the controller reads it when a rollout begins
(#37)."""

from __future__ import annotations

from pathlib import Path

import yaml
from support.adoption import LIVE, adopting_canary, live_isvc
from support.cli import RunCli

from controlplane.kube.client import Obj, Ref
from controlplane.view.canary import snapshot
from harness.kube.fake import FakeKube

NS = "support"


def write(tmp_path: Path, name: str = "triage", **spec: object) -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(adopting_canary(name, NS, **spec), sort_keys=False))
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_offline_the_adopting_spec_is_valid(run_cli: RunCli, tmp_path: Path) -> None:
    got = run_cli("validate", str(write(tmp_path)))
    assert got.code == 0, got.out + got.err


def test_a_service_that_does_not_exist_is_refused_at_its_line(
    run_cli: RunCli, tmp_path: Path
) -> None:
    path = write(tmp_path)
    got = run_cli("validate", "--cluster", str(path))
    assert got.code == 2
    line = line_of(path, "targetRef:")
    assert f"{path}:{line}: spec.stable.targetRef: InferenceService {NS}/{LIVE} does not exist" in (
        got.out
    )


def test_a_service_held_by_another_canary_is_refused(
    run_cli: RunCli, kube: FakeKube, tmp_path: Path
) -> None:
    kube.create(live_isvc(NS))
    kube.create(adopting_canary("first", NS))
    got = run_cli("validate", "--cluster", str(write(tmp_path, "second")))
    assert got.code == 2
    assert "is adopted by ModelCanary 'first'" in got.out


def test_a_free_service_that_reads_as_a_stable_is_valid(
    run_cli: RunCli, kube: FakeKube, tmp_path: Path
) -> None:
    serving(kube)
    got = run_cli("validate", "--cluster", str(write(tmp_path)))
    assert got.code == 0, got.out + got.err


def test_a_service_no_gateway_reaches_is_refused_for_the_gateway_api_router(
    run_cli: RunCli, kube: FakeKube, tmp_path: Path
) -> None:
    kube.create(live_isvc(NS))  # no status.url: KServe routes it no host
    got = run_cli("validate", "--cluster", str(write(tmp_path)))
    assert got.code == 2
    assert "has no URL" in got.out
    istio = run_cli("validate", "--cluster", str(write(tmp_path, traffic={"router": "istio"})))
    assert istio.code == 0, istio.out


def test_a_service_answering_to_another_model_is_refused(
    run_cli: RunCli, kube: FakeKube, tmp_path: Path
) -> None:
    kube.create(live_isvc(NS, args=["--model_name=assistant"]))
    got = run_cli("validate", "--cluster", str(write(tmp_path)))
    assert got.code == 2
    assert "answers to model 'assistant'" in got.out


def serving(kube: FakeKube) -> Obj:
    """The live service, as KServe reports it once it serves (its URLs)."""
    created = kube.create(live_isvc(NS))
    created["status"] = {
        "url": f"http://{LIVE}-{NS}.example.com",
        "components": {"predictor": {"url": f"http://{LIVE}-predictor-{NS}.example.com"}},
    }
    return kube.replace_status(created)


def test_render_needs_the_cluster_for_an_adopted_stable(run_cli: RunCli, tmp_path: Path) -> None:
    got = run_cli("render", str(write(tmp_path)))
    assert got.code == 2
    assert "pass --cluster to read it" in got.err


def test_render_routes_the_live_hosts_and_applies_nothing_of_the_live_service(
    run_cli: RunCli, kube: FakeKube, tmp_path: Path
) -> None:
    serving(kube)
    got = run_cli("render", "--cluster", "--step", "1", str(write(tmp_path)))
    assert got.code == 0, got.err
    objects = list(yaml.safe_load_all(got.out))
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("PodMonitor", "triage-adopted"),
        ("InferenceService", "chat-fp8"),
        ("HTTPRoute", "triage"),
    ]
    route = objects[-1]["spec"]
    assert route["hostnames"] == [f"{LIVE}-{NS}.example.com", f"{LIVE}-predictor-{NS}.example.com"]


def test_render_promoted_is_the_live_service_with_the_candidate(
    run_cli: RunCli, kube: FakeKube, tmp_path: Path
) -> None:
    serving(kube)
    got = run_cli("render", "--cluster", "--promoted", str(write(tmp_path)))
    assert got.code == 0, got.err
    (obj,) = list(yaml.safe_load_all(got.out))
    assert Ref.of(obj) == Ref("serving.kserve.io/v1beta1", "InferenceService", NS, LIVE)
    assert "--quantization=fp8" in obj["spec"]["predictor"]["model"]["args"]
    rolled_back = run_cli("render", "--cluster", "--rolled-back", str(write(tmp_path)))
    assert rolled_back.code == 0
    assert list(yaml.safe_load_all(rolled_back.out)) == []


def test_get_shows_the_adopted_stable_as_the_controller_read_it() -> None:
    data = adopting_canary("triage", NS)
    assert snapshot(data).stable == "live (live chat)"
    data["status"] = {"adopted": {"variant": {"name": "live", "quantization": "fp8"}}}
    assert snapshot(data).stable == "live (fp8, live chat)"
    assert snapshot(data).candidate == "fp8 (fp8)"


def test_up_says_an_adopted_stable_is_a_clusters(run_cli: RunCli, tmp_path: Path) -> None:
    got = run_cli("up", str(write(tmp_path)))
    assert got.code == 2
    assert "spec.stable.targetRef: `up` serves both variants on this machine" in got.err


def test_a_candidate_that_serves_as_the_live_service_is_refused(
    run_cli: RunCli, kube: FakeKube, tmp_path: Path
) -> None:
    created = kube.create(live_isvc(NS, args=["--model_name=chat", "--quantization=fp8"]))
    created["status"] = {"url": f"http://{LIVE}-{NS}.example.com"}
    kube.replace_status(created)
    candidate = {
        "name": "fp8",
        "storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct",
        "quantization": "fp8",
        "gpu": "nvidia-l40s",
        "replicas": 3,
    }
    got = run_cli("validate", "--cluster", str(write(tmp_path, candidate=candidate)))
    assert got.code == 2
    assert "as the stable: spec.candidate: candidate serves the same as stable" in got.out
