"""Everything ``canaryctl render`` prints, held against the real API server and the pinned CRDs.

Every router x every quantization the catalogue knows x every rollout point (start, each step,
shadow where the router mirrors, promoted, rolled back), and every example spec in ``canary/`` at
every point, is rendered by the CLI itself (``canaryctl render -o json``), applied to the loopback
kube-apiserver with server-side apply and ``fieldValidation=Strict`` (an unknown or duplicate
field is a refusal, not a warning) and read back: every field sent must come back unchanged
(:func:`support.serverside.lost_fields`). The schemas are KServe v0.20.0, Gateway API v1.5.1,
Istio networking v1.27.1 (:mod:`harness.cluster.upstream_crds`). Each test has its own
namespace; the points of one spec are applied one after the other, as the controller would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.canaries import CANDIDATE, SHADOW, STABLE, WRITTEN_OUT, canary_dict
from support.serverside import Refused, apply_and_compare, in_namespace

from controlplane.cli.main import main
from controlplane.errors import ProfileError
from controlplane.profiles.catalog import load_catalog
from controlplane.routing import kserve_knative
from controlplane.routing.base import CAPABILITIES
from controlplane.validation import validated_file
from harness.cluster.kubeapi import LoopbackCluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = WRITTEN_OUT
CATALOG = load_catalog()
ROUTERS = sorted(CAPABILITIES)
LLAMA = "hf://meta-llama/Llama-3.1-8B-Instruct"


def runs_on(method: str) -> str | None:
    """The first GPU of the catalogue that can run ``method`` (None: none can)."""
    for gpu in CATALOG.gpu_names():
        try:
            CATALOG.support(method, gpu)
        except ProfileError:
            continue
        return gpu
    return None


GPU_OF = {method: runs_on(method) for method in sorted(CATALOG.methods)}
QUANTIZATIONS = [method for method, gpu in GPU_OF.items() if gpu is not None]
UNRENDERABLE = [method for method, gpu in GPU_OF.items() if gpu is None]


def points(path: Path) -> list[list[str]]:
    """The ``canaryctl render`` flags of every rollout point of the spec(s) in ``path``."""
    [canary, *_] = validated_file(path, CATALOG)
    flags: list[list[str]] = [[]]
    flags += [["--step", str(n)] for n in range(1, len(canary.spec.steps) + 1)]
    if canary.spec.shadow is not None:
        flags.append(["--shadow"])
    return [*flags, ["--promoted"], ["--rolled-back"]]


def rendered(path: Path, flags: list[str], capsys: pytest.CaptureFixture[str]) -> list[Any]:
    capsys.readouterr()
    assert main(["render", str(path), "-o", "json", *flags]) == 0, capsys.readouterr().err
    listing = json.loads(capsys.readouterr().out)
    items: list[Any] = listing["items"]
    assert items, f"render {flags} printed no object"
    return items


def before_rollout(path: Path) -> list[Any]:
    """What the controller applies before the first point and ``render`` does not print: the
    ``kserve-knative`` baseline (stable alone, so that it becomes the previous revision)."""
    [canary, *_] = validated_file(path, CATALOG)
    if canary.spec.traffic.router == "kserve-knative":
        return [kserve_knative.build_baseline(canary, CATALOG)]
    return []


def hold_against_server(
    loopback: LoopbackCluster, namespace: str, path: Path, capsys: pytest.CaptureFixture[str]
) -> list[str]:
    """Apply every point of ``path`` in turn; every refusal and every lost field, by point."""
    problems: list[str] = []
    applied = 0
    stages = [("before", before_rollout(path))]
    stages += [(" ".join(f) or "start", rendered(path, f, capsys)) for f in points(path)]
    for point, objs in stages:
        for obj in objs:
            try:
                lost = apply_and_compare(loopback, in_namespace(loopback, obj, namespace))
            except Refused as exc:
                problems.append(f"[{point}] refused: {exc}")
                continue
            applied += 1
            problems += [f"[{point}] lost {field}" for field in lost]
    assert applied or problems, "nothing was applied"
    return problems


# The specs of the matrix: the contract example served by each router, the candidate quantized
# each way, with a system prompt (a ConfigMap and its volume), two GPUs, extra vLLM args, and a
# cohort and a shadow phase where the router can express them.


def traffic_of(router: str) -> dict[str, Any]:
    """``spec.traffic`` on ``router``: no gateway, no hosts (the routers' defaults, KServe's
    Gateway and the model's own host and Service, are what the real server is asked to accept),
    a cohort where the router can route one."""
    traffic: dict[str, Any] = {"router": router}
    if CAPABILITIES[router].cohort:  # type: ignore[index]
        traffic["cohort"] = {"header": "x-customer-tier", "values": ["tier_1", "tier_2"]}
    return traffic


def candidate_of(quantization: str) -> dict[str, Any]:
    """``spec.candidate``: Llama quantized with ``quantization`` on its GPU, with the extras."""
    return {
        **CANDIDATE,
        "storageUri": LLAMA,
        "quantization": quantization,
        "gpu": GPU_OF[quantization],
        "gpuCount": 2,
        "args": ["--enable-prefix-caching"],
        "systemPrompt": "You are a meticulous assistant. Cite sources.",
    }


MATRIX = [(r, q) for r in ROUTERS for q in QUANTIZATIONS]


@pytest.mark.binary
@pytest.mark.parametrize(("router", "quantization"), MATRIX, ids=[f"{r}-{q}" for r, q in MATRIX])
def test_every_router_quantization_and_point_is_accepted_and_kept(
    loopback: LoopbackCluster,
    real_ns: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    router: str,
    quantization: str,
) -> None:
    data = canary_dict(
        traffic=traffic_of(router),
        stable={**STABLE, "storageUri": LLAMA},
        candidate=candidate_of(quantization),
        shadow=SHADOW if CAPABILITIES[router].mirror else None,  # type: ignore[index]
    )
    path = tmp_path / "canary.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert hold_against_server(loopback, real_ns, path, capsys) == []


@pytest.mark.binary
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_spec_at_every_point_is_accepted_and_kept(
    loopback: LoopbackCluster, real_ns: str, path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hold_against_server(loopback, real_ns, path, capsys) == []


@pytest.mark.parametrize("quantization", UNRENDERABLE)
def test_a_quantization_no_gpu_runs_renders_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], quantization: str
) -> None:
    # The matrix above leaves these out: nothing to hold against the server, because the spec is
    # refused before anything is rendered (bitsandbytes-int8 has no in-flight 8-bit path in vLLM).
    data = canary_dict(
        traffic=traffic_of("gateway-api"),
        stable={**STABLE, "storageUri": LLAMA},
        candidate={**candidate_of("none"), "quantization": quantization},
    )
    path = tmp_path / "canary.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["render", str(path), "-o", "json"]) == 2
    assert capsys.readouterr().out == ""
