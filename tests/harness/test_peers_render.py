"""The peers' configuration is their documentation's, on this stack's names (pure).

:mod:`harness.peers.render`: Flagger's Gateway API tutorial Canary (every interval paced by
one factor, never below Prometheus's two scrapes), its MetricTemplates on the series Traefik's
Gateway API provider counts the canary and primary Services under, Argo Rollouts'
background-analysis Rollout behind a TraefikService and its AnalysisTemplate on the stable and
canary Services, ours' steps on the contest's checks, and the engine's Deployment.
"""

from __future__ import annotations

from pathlib import Path

from support.adoption import adopting_model

from controlplane.spec.models import DEFAULT_INTERVAL, DEFAULT_MIN_SAMPLES, DEFAULT_WINDOW
from controlplane.spec.units import parse_duration
from harness.cluster.traefik import arguments, traefik_service
from harness.peers.contest import TRAEFIK_BUCKETS, flagger_slo, ours_checks, rollouts_slo
from harness.peers.render import (
    ENGINE_PORT,
    OURS_INTERVAL_S,
    OURS_MIN_SAMPLES,
    OURS_WINDOW_S,
    Pace,
    analysis_template,
    engine_args,
    engine_deployment,
    flagger_canary,
    flagger_traefik_service,
    ours_analysis,
    ours_controller_flags,
    ours_min_samples,
    ours_steps,
    rollout,
    rollouts_objects,
    rollouts_traefik_service,
)


def test_the_tutorial_canary_keeps_its_settings_and_paces_only_time() -> None:
    _, metrics = flagger_slo("ns", "http://p:9", "c", "p")
    canary = flagger_canary("ns", "engine", "ns.example.com", ("kserve", "gw"), Pace(3), metrics)
    analysis = canary["spec"]["analysis"]
    assert (analysis["threshold"], analysis["maxWeight"], analysis["stepWeight"]) == (5, 50, 10)
    assert analysis["interval"] == "20s"  # 1m / 3
    intervals = {m["name"]: m["interval"] for m in analysis["metrics"]}
    # every term of the SLO over the analysis interval, paced
    assert intervals == {"latency-ratio": "20s", "latency": "20s", "error-excess": "20s"}
    bounds = {m["name"]: m["thresholdRange"]["max"] for m in analysis["metrics"]}
    assert bounds == {"latency-ratio": 1.2, "latency": 2.5, "error-excess": 1.0}
    assert canary["spec"]["progressDeadlineSeconds"] == 20
    assert canary["spec"]["service"]["gatewayRefs"] == [{"name": "gw", "namespace": "kserve"}]
    assert canary["spec"]["service"]["hosts"] == ["ns.example.com"]
    unpaced = flagger_canary("ns", "engine", "h", ("kserve", "gw"), Pace(), metrics)["spec"]
    assert unpaced["analysis"]["interval"] == "60s"
    assert unpaced["progressDeadlineSeconds"] == 60


def test_a_pace_never_asks_a_rate_of_less_than_two_scrapes() -> None:
    assert Pace(30).duration(30) == "10s"
    assert Pace(2).seconds(60) == 30


def test_the_slo_reads_the_services_traefik_counts_each_side_under() -> None:
    canary, primary = (
        flagger_traefik_service("ns", "engine", side) for side in ("canary", "primary")
    )
    # Traefik names Flagger's Services' backendRefs as it names any other
    assert canary == traefik_service("ns", "engine-canary", ENGINE_PORT) + "@kubernetesgateway"
    assert primary == traefik_service("ns", "engine-primary", ENGINE_PORT) + "@kubernetesgateway"
    templates, _ = flagger_slo("ns", "http://p:9", canary, primary)
    ratio = next(t for t in templates if t["metadata"]["name"] == "latency-ratio")
    assert f'service="{canary}"' in ratio["spec"]["query"]
    assert f'service="{primary}"' in ratio["spec"]["query"]
    assert (
        rollouts_traefik_service("ns", "engine", "stable") == "ns-engine-stable-8080@kubernetescrd"
    )


def test_the_contest_s_traefik_gets_the_finer_buckets(tmp_path: Path) -> None:
    class Cluster:  # what arguments() reads of a running cluster
        server, ca, workdir = "https://127.0.0.1:6443", tmp_path / "ca.crt", tmp_path

    flags = arguments(Cluster(), 80, 81, crd=True, buckets=TRAEFIK_BUCKETS)  # type: ignore[arg-type]
    given = [f for f in flags if f.startswith("--metrics.prometheus.buckets=")]
    assert given == ["--metrics.prometheus.buckets=" + ",".join(f"{b:g}" for b in TRAEFIK_BUCKETS)]
    assert given[0].split("=")[1].startswith("0.1,0.15,0.2,")
    # the other tests' Traefik keeps its default buckets
    assert not any("buckets" in f for f in arguments(Cluster(), 80, 81))  # type: ignore[arg-type]


def test_the_engine_deployment_runs_the_variant_with_its_faults() -> None:
    args = engine_args("m", "candidate", ("errors=2%",))
    assert args[-2:] == ["--variant=candidate", "--inject=errors=2%"]
    deployment = engine_deployment("ns", "engine", "img:1", "m", "/models/x", args)
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"] == deployment["spec"]["selector"]["matchLabels"]
    container = pod["spec"]["containers"][0]
    assert container["args"] == args
    assert container["imagePullPolicy"] == "Never"
    assert pod["spec"]["volumes"][0]["hostPath"]["path"] == "/models/x"


def test_the_rollout_is_analysis_md_background_analysis_paced() -> None:
    template = {"metadata": {"labels": {"app": "engine"}}, "spec": {}}
    objects = rollouts_objects(
        "ns", "engine", "ns.example.com", ("kserve", "gw"), template, Pace(3)
    )
    kinds = [o["kind"] for o in objects]
    assert kinds == ["Service", "Service", "TraefikService", "HTTPRoute", "Rollout"]
    canary = objects[-1]["spec"]["strategy"]["canary"]
    weights = [s["setWeight"] for s in canary["steps"] if "setWeight" in s]
    pauses = [s["pause"]["duration"] for s in canary["steps"] if "pause" in s]
    assert weights == [20, 40, 60, 80]
    assert pauses == ["200s"] * 4  # 10m / 3
    assert canary["analysis"] == {"templates": [{"templateName": "engine"}], "startingStep": 2}
    assert canary["trafficRouting"] == {"traefik": {"weightedTraefikServiceName": "engine"}}
    assert objects[-1]["spec"]["progressDeadlineSeconds"] == 200
    weighted = [s["name"] for s in objects[2]["spec"]["weighted"]["services"]]
    assert weighted == [canary["stableService"], canary["canaryService"]]
    backend = objects[3]["spec"]["rules"][0]["backendRefs"][0]
    assert (backend["kind"], backend["name"]) == ("TraefikService", "ns-engine@kubernetescrd")


def test_the_analysis_template_runs_the_slo_every_paced_interval() -> None:
    metrics = rollouts_slo("http://p:9", "c", "s", Pace(3).duration(300), failure_limit=3)
    spec = analysis_template("ns", "engine", metrics)
    assert spec["metadata"] == {"name": "engine", "namespace": "ns"}
    for metric in spec["spec"]["metrics"]:
        assert metric["interval"] == "100s"  # 5m / 3
        assert "[100s]" in metric["provider"]["prometheus"]["query"]
    # the Rollout names it
    template = {"metadata": {"labels": {"app": "engine"}}, "spec": {}}
    analysis = rollout("ns", "engine", template, Pace(3))["spec"]["strategy"]["canary"]["analysis"]
    assert analysis["templates"] == [{"templateName": "engine"}]


def test_ours_runs_the_spec_defaults_paced_on_flaggers_schedule() -> None:
    """Ours: the spec's default interval, window and minSamples (read from the package, so a
    changed default fails here), paced like every peer's; Flagger's 10 % steps up to 50 %, one
    interval each, then 100 %; the result validates as an adopting ModelCanary."""
    assert parse_duration(DEFAULT_INTERVAL).seconds == OURS_INTERVAL_S
    assert parse_duration(DEFAULT_WINDOW).seconds == OURS_WINDOW_S
    assert DEFAULT_MIN_SAMPLES == OURS_MIN_SAMPLES
    as_documented = ours_analysis(Pace(1))
    assert (as_documented["interval"], as_documented["window"]) == ("60s", "300s")
    pace = Pace(6)
    analysis = ours_analysis(pace)
    assert (analysis["interval"], analysis["window"]) == ("10s", "50s")
    assert all("quantile" not in m for m in analysis["metrics"])  # the default quantile
    steps = ours_steps(pace, ours_checks("sequential"))
    assert [s["weight"] for s in steps] == [10, 20, 30, 40, 50, 100]
    assert {s.get("duration") for s in steps[:-1]} == {"10s"}
    assert steps[0]["rollbackOn"] == [
        {**check, "minSamples": 17} for check in ours_checks("sequential")
    ]
    assert ours_checks("sequential")[0].get("minSamples") is None  # the checks are not changed
    assert ours_min_samples(Pace(1)) == 100
    assert ours_min_samples(Pace(1000)) == 1
    assert ours_controller_flags(pace) == [
        "--progress-deadline=300s",
        "--promote-cleanup-delay=100s",
        "--rollback-cleanup-delay=100s",
    ]
    canary = adopting_model(
        "canary",
        "ns",
        target="engine",
        model={"name": "engine", "maxModelLen": 8192},
        candidate={"name": "candidate", "storageUri": "hf://m/x", "gpu": "nvidia-l40s"},
        traffic={"router": "gateway-api"},
        analysis=analysis,
        steps=steps,
    )
    assert canary.spec.analysis.interval.seconds == 10
    assert canary.spec.steps[0].rollback_on[0].for_.seconds == 0
