"""A variant's ``autoscaling`` kept through the rollout: the predictor's bounds at each point
(KServe's HPA, its default autoscaler class in Standard mode), KEDA on vLLM's queue, and what
validation refuses."""

from __future__ import annotations

from typing import Any

import pytest
from support.canaries import CANDIDATE, STABLE, canary_dict, model_canary

from controlplane.desired import desired_objects
from controlplane.profiles.catalog import load_catalog
from controlplane.validation import check_object

RATES = {"stable": 10.0, "candidate": 8.0}
QUEUE = {"serverAddress": "http://prometheus.monitoring:9090", "waitingPerReplica": 4}


def bounds(canary: Any, weight: int) -> dict[str, tuple[int, int]]:
    objs = desired_objects(canary, load_catalog(), weight)
    return {
        o["metadata"]["name"].rsplit("-", 1)[-1]: (
            o["spec"]["predictor"]["minReplicas"],
            o["spec"]["predictor"]["maxReplicas"],
        )
        for o in objs
        if o["kind"] == "InferenceService"
    }


def test_with_capacity_both_bounds_follow_the_share() -> None:
    canary = model_canary(
        shadow=None,
        stable={**STABLE, "replicas": 2, "autoscaling": {"maxReplicas": 6}},
        candidate={**CANDIDATE, "replicas": 1, "autoscaling": {"maxReplicas": 4}},
        capacity={"requestsPerReplica": RATES},
    )
    assert bounds(canary, 0) == {"bf16": (2, 6), "nf4": (1, 1)}
    assert bounds(canary, 75) == {"bf16": (1, 2), "nf4": (2, 3)}


def test_with_fixed_replicas_the_users_range_is_kept_at_every_step() -> None:
    scaled = {**STABLE, "autoscaling": {"maxReplicas": 6}}
    canary = model_canary(shadow=None, stable=scaled, capacity={"mode": "fixed"})
    for weight in (0, 25, 75):
        assert bounds(canary, weight) == {"bf16": (2, 6), "nf4": (1, 1)}


def test_queue_scaling_is_kserves_keda_class_on_the_variants_waiting_requests() -> None:
    canary = model_canary(
        shadow=None, stable={**STABLE, "autoscaling": {"maxReplicas": 6, "queue": QUEUE}}
    )
    stable = next(
        o
        for o in desired_objects(canary, load_catalog(), 0)
        if o["kind"] == "InferenceService" and o["metadata"]["name"].endswith("-bf16")
    )
    assert stable["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "keda"
    (metric,) = stable["spec"]["predictor"]["autoScaling"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["target"] == {"type": "Value", "value": "4"}
    source = metric["external"]["metric"]
    assert source["backend"] == "prometheus"
    assert source["serverAddress"] == QUEUE["serverAddress"]
    assert source["query"].startswith("sum(vllm:num_requests_waiting{")
    assert 'variant="bf16"' in source["query"]


@pytest.mark.parametrize(
    ("router", "section", "fragment"),
    [
        ("gateway-api", {**STABLE, "replicas": 3, "autoscaling": {"maxReplicas": 2}}, "below"),
        ("kserve", {**STABLE, "autoscaling": {"maxReplicas": 4}}, "cannot keep"),
        ("llmisvc", {**STABLE, "autoscaling": {"maxReplicas": 4}}, "cannot keep"),
    ],
)
def test_what_validation_refuses(router: str, section: dict[str, Any], fragment: str) -> None:
    data = canary_dict(router=router, shadow=None, stable=section)
    found = [p for p in check_object(data) if p.path.startswith("spec.stable.autoscaling")]
    assert found, check_object(data)
    assert fragment in found[0].message
