"""The peers' configuration is their documentation's, on this stack's names (pure).

:mod:`harness.peers.render`: Flagger's Gateway API tutorial Canary (every interval paced by
one factor, never below Prometheus's two scrapes), its MetricTemplates on the series Traefik's
Gateway API provider counts the canary Service under, Argo Rollouts' background-analysis
Rollout behind a TraefikService and its AnalysisTemplate, the candidates' faults relative to the
stable's latency, and the engine's Deployment.
"""

from __future__ import annotations

import pytest
from support.adoption import adopting_model

from controlplane.local.inject import parse_fault
from controlplane.spec.models import DEFAULT_INTERVAL, DEFAULT_MIN_SAMPLES, DEFAULT_WINDOW
from controlplane.spec.units import parse_duration
from harness.cluster.traefik import traefik_service
from harness.peers.render import (
    CANDIDATES,
    ENGINE_PORT,
    OURS_INTERVAL_S,
    OURS_MIN_SAMPLES,
    OURS_WINDOW_S,
    Pace,
    analysis_template,
    candidate,
    candidates,
    engine_args,
    engine_deployment,
    flagger_canary,
    flagger_metric_templates,
    flagger_traefik_service,
    latency_bound,
    ours_analysis,
    ours_controller_flags,
    ours_min_samples,
    ours_steps,
    rollouts_objects,
    rollouts_traefik_service,
)


def test_the_tutorial_canary_keeps_its_settings_and_paces_only_time() -> None:
    canary = flagger_canary("ns", "engine", "ns.example.com", ("kserve", "gw"), Pace(3), 0.8)
    analysis = canary["spec"]["analysis"]
    assert (analysis["threshold"], analysis["maxWeight"], analysis["stepWeight"]) == (5, 50, 10)
    assert analysis["interval"] == "20s"  # 1m / 3
    intervals = {m["name"]: m["interval"] for m in analysis["metrics"]}
    assert intervals == {"error-rate": "20s", "latency": "10s"}  # 1m / 3, 30s / 3
    bounds = {m["name"]: m["thresholdRange"]["max"] for m in analysis["metrics"]}
    assert bounds == {"error-rate": 1.0, "latency": 0.8}
    assert canary["spec"]["progressDeadlineSeconds"] == 20
    assert canary["spec"]["service"]["gatewayRefs"] == [{"name": "gw", "namespace": "kserve"}]
    assert canary["spec"]["service"]["hosts"] == ["ns.example.com"]
    unpaced = flagger_canary("ns", "engine", "h", ("kserve", "gw"), Pace(), 0.5)["spec"]
    assert unpaced["analysis"]["interval"] == "60s"
    assert unpaced["progressDeadlineSeconds"] == 60


def test_a_pace_never_asks_a_rate_of_less_than_two_scrapes() -> None:
    assert Pace(30).duration(30) == "10s"
    assert Pace(2).seconds(60) == 30


def test_the_metric_templates_read_the_canary_services_traefik_series() -> None:
    templates = {t["metadata"]["name"]: t for t in flagger_metric_templates("ns", "http://p:9")}
    assert set(templates) == {"error-rate", "latency"}
    rendered = flagger_traefik_service("ns", "engine")
    # Traefik names the canary Service's backendRef as it names any other
    assert rendered == traefik_service("ns", "engine-canary", ENGINE_PORT) + "@kubernetesgateway"
    for template in templates.values():
        query = template["spec"]["query"].replace("{{ namespace }}", "ns")
        query = query.replace("{{ target }}", "engine")
        assert rendered in query
        assert template["spec"]["provider"] == {"type": "prometheus", "address": "http://p:9"}
    assert 'code!~"5.*"' in templates["error-rate"]["spec"]["query"]
    assert "histogram_quantile(0.99" in templates["latency"]["spec"]["query"]


def test_the_candidates_scale_with_the_stable() -> None:
    found = {c.name: c for c in candidates(0.5, base_errors=0.01)}
    assert tuple(found) == CANDIDATES
    assert found["healthy"].inject == ()
    assert not found["healthy"].bad
    assert found["latency +30%"].inject == ("latency=+150ms",)
    assert found["latency +50%"].inject == ("latency=+250ms",)
    assert found["2x errors"].inject == ("errors=2%",)
    assert found["2x errors"].stable_inject == ("errors=1%",)
    assert found["crash loop"].inject == ("crash-on-start",)
    # the drift grows by half the stable's median a minute, in the engine's own grammar
    assert found["drift"].inject == ("latency-drift=+250ms/1m",)
    kind, per_second = parse_fault(found["drift"].inject[0])
    assert (kind, per_second) == ("latency-drift", pytest.approx(0.25 / 60))
    assert all(c.bad for name, c in found.items() if name != "healthy")
    assert candidate("latency +50%", 1.0).inject == ("latency=+500ms",)
    with pytest.raises(ValueError, match="no candidate"):
        candidate("slow start", 1.0)


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


def test_the_analysis_template_asks_the_success_rate_and_flaggers_latency() -> None:
    spec = analysis_template("ns", "engine", "http://p:9", Pace(3), 0.75)["spec"]
    metrics = {m["name"]: m for m in spec["metrics"]}
    assert metrics["success-rate"]["successCondition"] == "result[0] >= 0.95"
    assert metrics["latency"]["successCondition"] == "result[0] <= 0.75"
    for metric in metrics.values():
        assert metric["interval"] == "100s"  # 5m / 3
        assert metric["failureLimit"] == 3
        query = metric["provider"]["prometheus"]["query"]
        assert rollouts_traefik_service("ns", "engine") in query
        assert "[100s]" in query


def test_the_latency_bound_is_a_bucket_edge_above_the_stable() -> None:
    assert latency_bound(0.8) == 1.2  # 1.0 s lies in (0.3, 1.2]: its P99 reads ~1.19
    assert latency_bound(0.96) == 1.2
    assert latency_bound(0.97) == 5.0  # 1.2125 is past the 1.2 edge
    assert latency_bound(0.2) == 0.3
    assert latency_bound(4.5) == 5.625  # beyond the last edge: the margin itself


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
    steps = ours_steps(pace, 1.2)
    assert [s["weight"] for s in steps] == [10, 20, 30, 40, 50, 100]
    assert {s.get("duration") for s in steps[:-1]} == {"10s"}
    assert steps[0]["rollbackOn"] == [
        {"metric": "latency", "above": "1200ms", "minSamples": 17},
        {"metric": "errors", "above": "1%", "minSamples": 17},
    ]
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
