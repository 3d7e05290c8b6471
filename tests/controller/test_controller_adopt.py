"""A canary of the InferenceService a team already serves (#37), on the fake cluster.

The live InferenceService ``chat`` is created as a team would, before the product; a ModelCanary
names it as its stable (``targetRef``). What must hold: the live service is never written before
a promotion (same resourceVersion, same Deployment generation); the route splits its hosts
between it and the candidate; a rollback leaves it exactly as before with nothing of the canary
left; a promotion ends with it serving the candidate under its own name (its predictor written by
the promotion's field manager, its pods rolled) and nothing of the canary left; a missing or
already-held service stalls the canary with the reason and deploys nothing; deleting the canary
mid-rollout leaves the live service serving.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.adoption import LIVE, adopting_canary, live_isvc
from support.controller_world import GATEWAY_NAME, HOUR, ISVC, NS, ROUTE, World

from controlplane.controller.adoption import ADOPTED_KEY
from controlplane.errors import NotFound
from controlplane.kube.client import Obj, Ref, canary_ref
from controlplane.operations import record_intent

PROMETHEUS = "http://prometheus.invalid:9090"  # no check reads it: steps without rollbackOn
T0 = 1_790_000_000.0
LIVE_REF = Ref(*ISVC, NS, LIVE)
LIVE_DEPLOYMENT = Ref("apps/v1", "Deployment", NS, f"{LIVE}-predictor")
PODMONITOR = ("monitoring.coreos.com/v1", "PodMonitor")
STEPS = [
    {"weight": 25, "duration": "2h"},
    {"weight": 75, "duration": "2h"},
    {"weight": 100, "duration": "2h"},
]


def canary(name: str = "triage", **spec: Any) -> dict[str, Any]:
    spec.setdefault("traffic", {"router": "gateway-api", "gateway": {"name": GATEWAY_NAME}})
    spec.setdefault("steps", STEPS)
    spec.setdefault("analysis", {"interval": "1h", "window": "1h", "prometheus": PROMETHEUS})
    return adopting_canary(name, NS, **spec)


@pytest.fixture
def world() -> World:
    w = World(start=T0, prometheus=PROMETHEUS, ready_after_s=60.0)
    w.kube.create(live_isvc(NS))
    w.clock.t += 120
    w.kserve.tick()  # the live service serves before any canary
    return w


def live(world: World) -> Obj:
    return world.kube.get(LIVE_REF)


def phase(world: World, name: str = "triage") -> str:
    return str((world.get(name).get("status") or {}).get("phase", ""))


def conditions(world: World, name: str) -> dict[str, tuple[str, str, str]]:
    found = world.get(name).get("status", {}).get("conditions") or []
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in found}


def cleaned(world: World, name: str = "triage") -> bool:
    book = (world.get(name).get("status") or {}).get("controller") or {}
    return book.get("cleaned") is not None


def untouched(before: Obj, after: Obj) -> None:
    """``after`` is ``before`` as its owners left it: the same object (uid), spec (generation),
    labels and annotations, and no field of the controller's (KServe writes its status, which
    changes the resourceVersion, not the object)."""
    for key in ("uid", "generation", "labels", "annotations"):
        assert after["metadata"].get(key) == before["metadata"].get(key), key
    assert after["spec"] == before["spec"]
    managers = {m["manager"] for m in after["metadata"].get("managedFields") or []}
    assert not {m for m in managers if m.startswith("canary-")}, managers


def leftovers(world: World, name: str = "triage") -> list[str]:
    """Every object the canary made that still exists."""
    out = []
    for api, kind in (ISVC, ROUTE, PODMONITOR):
        out += [f"{kind}/{o['metadata']['name']}" for o in world.objects(api, kind, name)]
    return out


def test_the_live_service_is_adopted_and_split_without_being_written(world: World) -> None:
    before = live(world)
    deployment = world.kube.get(LIVE_DEPLOYMENT)
    world.create(canary())
    world.run_until(lambda w: w.step("triage") == 1, limit=2 * HOUR)

    status = world.get("triage")["status"]
    adopted = status[ADOPTED_KEY]
    assert (adopted["name"], adopted["uid"]) == (LIVE, before["metadata"]["uid"])
    assert adopted["variant"]["storageUri"] == before["spec"]["predictor"]["model"]["storageUri"]
    route = world.kube.get(Ref(*ROUTE, NS, "triage"))
    assert route["spec"]["hostnames"] == [
        f"{LIVE}-{NS}.example.com",
        f"{LIVE}-predictor-{NS}.example.com",
    ]
    split = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
    assert split == {f"{LIVE}-predictor": 75, f"{LIVE}-fp8-predictor": 25}
    assert world.objects(*PODMONITOR, "triage")
    world.run_until(lambda w: w.step("triage") == 3, limit=10 * HOUR)
    untouched(before, live(world))
    again = world.kube.get(LIVE_DEPLOYMENT)
    assert again["metadata"]["generation"] == deployment["metadata"]["generation"]


def test_a_rollback_leaves_the_live_service_as_it_was_and_nothing_of_the_canary(
    world: World,
) -> None:
    before = live(world)
    world.create(canary())
    world.run_until(lambda w: w.step("triage") == 1, limit=2 * HOUR)
    record_intent(world.kube, NS, "triage", "abort", "alice")
    world.run_until(lambda w: phase(w) == "rolled_back" and cleaned(w), limit=4 * HOUR)
    assert cleaned(world)

    assert leftovers(world) == []
    untouched(before, live(world))


def test_a_promotion_leaves_the_live_service_serving_the_candidate(world: World) -> None:
    before = live(world)
    world.create(canary())
    world.run_until(lambda w: phase(w) == "promoted" and cleaned(w), limit=12 * HOUR)
    assert cleaned(world)

    after = live(world)
    model = after["spec"]["predictor"]["model"]
    assert "--quantization=fp8" in model["args"]
    assert "--served-model-name=chat" in model["args"]
    assert after["metadata"]["labels"] == before["metadata"]["labels"]  # nothing of ours
    assert "canary.controlplane.dev/canary" not in str(after["spec"])
    template = world.kube.get(LIVE_DEPLOYMENT)["spec"]["template"]
    engine = template["spec"]["containers"][0]
    assert engine["args"][-len(model["args"]) :] == model["args"]  # KServe rolled its pods
    assert leftovers(world) == []
    reasons = [reason for reason, _ in world.events("triage")]
    assert "FinalizePending" in reasons


def test_a_later_canary_adopts_the_promoted_service_the_same_way(world: World) -> None:
    world.create(canary())
    world.run_until(lambda w: phase(w) == "promoted" and cleaned(w), limit=12 * HOUR)
    obj = world.get("triage")
    obj["spec"]["candidate"] = {
        "name": "awq",
        "storageUri": "hf://org/chat-awq",
        "quantization": "awq",
        "gpu": "nvidia-l40s",
        "replicas": 2,
    }
    world.kube.replace(obj)
    world.run_until(lambda w: w.step("triage") == 1, limit=20 * HOUR)
    assert world.step("triage") == 1
    adopted = world.get("triage")["status"][ADOPTED_KEY]
    assert adopted["variant"]["quantization"] == "fp8"  # the stable is now the old candidate


def test_a_missing_service_stalls_the_canary_until_it_exists(world: World) -> None:
    world.create(canary("other", stable={"name": "live", "targetRef": {"name": "gone"}}))
    world.settle(3)
    got = conditions(world, "other")
    assert got["Stalled"][:2] == ("True", "TargetNotFound")
    assert "InferenceService ml-serving/gone does not exist" in got["Stalled"][2]
    assert leftovers(world, "other") == []
    assert ("TargetNotFound", got["Stalled"][2]) in world.events("other")


def test_a_service_another_canary_holds_is_refused(world: World) -> None:
    world.create(canary())
    world.run_until(lambda w: w.step("triage") == 1, limit=2 * HOUR)
    world.clock.t += 1
    world.create(canary("second", model={"name": LIVE, "maxModelLen": 8192}))
    world.settle(3)
    got = conditions(world, "second")
    assert got["Stalled"][:2] == ("True", "TargetHeld")
    assert "adopted by ModelCanary 'triage'" in got["Stalled"][2]
    assert leftovers(world, "second") == []


def test_deleting_the_canary_mid_rollout_leaves_the_live_service_serving(world: World) -> None:
    before = live(world)
    world.create(canary())
    world.run_until(lambda w: w.step("triage") == 2, limit=6 * HOUR)
    world.kube.delete(canary_ref(NS, "triage"))
    world.settle(3)
    with pytest.raises(NotFound):
        world.get("triage")
    assert leftovers(world) == []
    untouched(before, live(world))


def test_no_podmonitor_is_a_warning_in_the_status_not_only_an_event(world: World) -> None:
    """Issue #41: ``NoPodMonitor`` (no Prometheus Operator serves PodMonitor, so the adopted
    stable's pods are not scraped for the canary) was only an Event; it is in
    ``status.warnings`` too, where ``get`` and the API show it, once, for the rollout."""
    world.kube.unserve(*PODMONITOR)
    world.create(canary())
    world.run_until(lambda w: w.step("triage") == 1, limit=2 * HOUR)
    world.run_until(lambda w: w.step("triage") == 2, limit=4 * HOUR)
    warnings = world.get("triage")["status"].get("warnings") or []
    (entry,) = [w for w in warnings if w["type"] == "NoPodMonitor"]
    assert "no PodMonitor applied" in entry["message"]
    assert entry["count"] == 1  # one deploy, one warning: later writes do not repeat it


def _set_intent_annotation(world: World, value: str | None) -> None:
    from controlplane.rollout.intents import INTENT_ANNOTATION

    obj = world.get("triage")
    annotations = dict(obj["metadata"].get("annotations") or {})
    if value is None:
        annotations.pop(INTENT_ANNOTATION, None)
    else:
        annotations[INTENT_ANNOTATION] = value
    obj["metadata"]["annotations"] = annotations
    world.kube.replace(obj)


def test_an_unreadable_intent_is_a_warning_while_it_lasts(world: World) -> None:
    """Issue #41: ``InvalidIntent`` was only an Event. It is in ``status.warnings`` while the
    annotation cannot be read, and gone once it is mended."""
    world.create(canary())
    world.run_until(lambda w: w.step("triage") == 1, limit=2 * HOUR)
    _set_intent_annotation(world, "{not json")
    world.settle()
    warnings = world.get("triage")["status"].get("warnings") or []
    assert [w["type"] for w in warnings] == ["InvalidIntent"]
    assert "intent" in warnings[0]["message"]
    _set_intent_annotation(world, None)
    world.settle()
    assert not world.get("triage")["status"].get("warnings")
