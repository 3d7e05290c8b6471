"""The fake KServe controller: readiness timing, status shapes and scripted failures."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.kube.client import Obj, Ref
from harness.kube.fake import FakeKube
from harness.kube.fake_kserve import FakeKServe

ISVC_API = "serving.kserve.io/v1beta1"


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def isvc(
    name: str = "llm-candidate",
    *,
    mode: str | None = None,
    canary_percent: int | None = None,
    canaries: list[Obj] | None = None,
    image: str = "v1",
) -> Obj:
    predictor: dict[str, Any] = {"model": {"modelFormat": {"name": "huggingface"}, "args": [image]}}
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    spec: dict[str, Any] = {"predictor": predictor}
    if canaries is not None:
        spec["canary"] = canaries
    meta: dict[str, Any] = {"name": name, "namespace": "ml"}
    if mode:
        meta["annotations"] = {"serving.kserve.io/deploymentMode": mode}
    return {"apiVersion": ISVC_API, "kind": "InferenceService", "metadata": meta, "spec": spec}


def llmisvc(name: str = "llm", version: str = "v1alpha2") -> Obj:
    return {
        "apiVersion": f"serving.kserve.io/{version}",
        "kind": "LLMInferenceService",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"model": {"uri": "hf://org/model"}},
    }


def ready(obj: Obj) -> str | None:
    for condition in obj.get("status", {}).get("conditions", []):
        if condition["type"] == "Ready":
            return str(condition["status"])
    return None


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kube(clock: Clock) -> FakeKube:
    return FakeKube(now=clock)


@pytest.mark.parametrize(
    ("delay", "elapsed", "is_ready"),
    [
        pytest.param(0.0, 0.0, True, id="no-delay"),
        pytest.param(30.0, 29.9, False, id="before-delay"),
        pytest.param(30.0, 30.0, True, id="at-delay"),
        pytest.param(30.0, 300.0, True, id="long-after"),
    ],
)
@pytest.mark.parametrize("make", [isvc, llmisvc], ids=["isvc", "llmisvc"])
def test_ready_after_delay(
    kube: FakeKube, clock: Clock, delay: float, elapsed: float, is_ready: bool, make: Any
) -> None:
    kserve = FakeKServe(kube, now=clock, ready_after_s=delay)
    obj = kube.create(make())
    clock.t += elapsed
    kserve.tick()
    got = kube.get(Ref.of(obj))
    assert (ready(got) == "True") is is_ready
    if is_ready:
        assert got["status"]["observedGeneration"] == 1
        assert got["status"]["url"] == "http://" + got["metadata"]["name"] + "-ml.example.com"


def test_tick_does_not_count_as_api_calls(kube: FakeKube, clock: Clock) -> None:
    kserve = FakeKServe(kube, now=clock)
    kube.create(isvc())
    kube.reset_calls()
    assert kserve.tick() == [Ref(ISVC_API, "InferenceService", "ml", "llm-candidate")]
    assert kube.count() == 0
    assert kserve.tick() == []  # nothing more to do


def test_spec_change_restarts_the_clock(kube: FakeKube, clock: Clock) -> None:
    kserve = FakeKServe(kube, now=clock, ready_after_s=10)
    obj = kube.create(isvc())
    clock.t += 10
    kserve.tick()
    first = kube.get(Ref.of(obj))
    assert first["status"]["observedGeneration"] == 1
    first["spec"]["predictor"]["model"]["args"] = ["v2"]
    kube.replace(first)
    clock.t += 5
    kserve.tick()
    assert kube.get(Ref.of(obj))["status"]["observedGeneration"] == 1  # not yet
    clock.t += 5
    kserve.tick()
    assert kube.get(Ref.of(obj))["status"]["observedGeneration"] == 2


def test_metadata_change_needs_no_new_readiness(kube: FakeKube, clock: Clock) -> None:
    kserve = FakeKServe(kube, now=clock)
    obj = kube.create(isvc())
    kserve.tick()
    kube.patch(Ref.of(obj), {"metadata": {"labels": {"a": "b"}}})
    assert kserve.pending() == {}


def test_knative_canary_traffic_split(kube: FakeKube, clock: Clock) -> None:
    kserve = FakeKServe(kube, now=clock)
    obj = kube.create(isvc())
    kserve.tick()
    predictor = kube.get(Ref.of(obj))["status"]["components"]["predictor"]
    assert predictor["traffic"] == [
        {"revisionName": "llm-candidate-predictor-00001", "percent": 100, "latestRevision": True}
    ]
    kube.apply(isvc(canary_percent=10, image="v2"))
    kserve.tick()
    status = kube.get(Ref.of(obj))["status"]
    predictor = status["components"]["predictor"]
    assert [(t["revisionName"], t["percent"]) for t in predictor["traffic"]] == [
        ("llm-candidate-predictor-00001", 90),
        ("llm-candidate-predictor-00002", 10),
    ]
    assert predictor["latestReadyRevision"] == "llm-candidate-predictor-00002"
    assert predictor["latestRolledoutRevision"] == "llm-candidate-predictor-00001"
    assert status["deploymentMode"] == "Serverless"
    # promote: drop canaryTrafficPercent
    kube.apply(isvc(image="v2"))
    kserve.tick()
    predictor = kube.get(Ref.of(obj))["status"]["components"]["predictor"]
    assert predictor["latestRolledoutRevision"] == "llm-candidate-predictor-00003"
    assert predictor["previousRolledoutRevision"] == "llm-candidate-predictor-00001"


def test_standard_mode_canary_statuses(kube: FakeKube, clock: Clock) -> None:
    kserve = FakeKServe(kube, now=clock)
    canaries = [{"predictor": {"name": "awq"}, "trafficPercent": 25}]
    obj = kube.create(isvc(mode="Standard", canaries=canaries))
    kserve.tick()
    status = kube.get(Ref.of(obj))["status"]
    assert status["deploymentMode"] == "Standard"
    assert status["canaryStatuses"] == [
        {
            "name": "awq",
            "ready": True,
            "trafficPercent": 25,
            "modelStatus": {"transitionStatus": "UpToDate"},
        }
    ]
    assert "traffic" not in status["components"]["predictor"]


def test_never_ready_and_heal(kube: FakeKube, clock: Clock) -> None:
    kserve = FakeKServe(kube, now=clock)
    kserve.never_ready("llm-candidate")
    obj = kube.create(isvc())
    other = kube.create(isvc("llm-stable"))
    clock.t += 3600
    kserve.tick()
    assert ready(kube.get(Ref.of(obj))) is None
    assert ready(kube.get(Ref.of(other))) == "True"
    kserve.heal("llm-candidate")
    kserve.tick()
    assert ready(kube.get(Ref.of(obj))) == "True"


def test_fail_sets_ready_false_with_reason(kube: FakeKube, clock: Clock) -> None:
    kserve = FakeKServe(kube, now=clock)
    obj = kube.create(isvc())
    kserve.fail("llm-candidate", "OOMKilled", "container ran out of memory")
    got = kube.get(Ref.of(obj))
    conditions = {c["type"]: c for c in got["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "OOMKilled"
    assert got["status"]["modelStatus"]["lastFailureInfo"]["message"] == (
        "container ran out of memory"
    )
    clock.t += 100
    kserve.tick()
    assert ready(kube.get(Ref.of(obj))) == "False"  # stays failed


def test_fail_applies_to_objects_created_later(kube: FakeKube, clock: Clock) -> None:
    kserve = FakeKServe(kube, now=clock)
    kserve.fail("llm-candidate", "ImagePullBackOff")
    obj = kube.create(isvc())
    assert ready(kube.get(Ref.of(obj))) == "False"


def test_deleted_objects_are_forgotten(kube: FakeKube, clock: Clock) -> None:
    kserve = FakeKServe(kube, now=clock, ready_after_s=10)
    obj = kube.create(isvc())
    kube.delete(Ref.of(obj))
    assert kserve.pending() == {}
    clock.t += 10
    assert kserve.tick() == []


def test_other_kinds_are_ignored(kube: FakeKube, clock: Clock) -> None:
    kserve = FakeKServe(kube, now=clock)
    kube.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "ml"}}
    )
    assert kserve.pending() == {}
