"""The controller writes only objects it created (issue 33: adopting what it did not create).

The auditor's case, on the fake cluster and on the real kube-apiserver alike: a Service
``payments`` exists in the canary's namespace, and a canary with ``router: istio`` (no hosts) and
``model.name: payments`` would apply its model Service of that name. Before the fix the
controller server-side applied onto it (with force), added its ownerReference, and deleting the
canary deleted the Service. Now: nothing of the canary is applied, the Service is unchanged
(same resourceVersion, no ownerReference), the canary is ``Stalled`` with reason
``ForeignObject`` and a Warning Event says which object and what to do; deleting the canary
leaves the Service; removing the Service lets the rollout go on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from support.controller_world import ISVC, NS, World, world_canary
from support.real_world import RealWorld

from controlplane.errors import NotFound
from controlplane.kube.client import Obj, Ref, canary_ref
from harness.cluster.kubeapi import LoopbackCluster

PROMETHEUS = "http://prometheus.invalid:9090"  # never asked: the rollout does not get that far
VS = ("networking.istio.io/v1", "VirtualService")
SERVICE = Ref("v1", "Service", NS, "payments")
T0 = 1_790_000_000.0

Make = Callable[[], World]


def foreign_service() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "payments", "namespace": NS, "labels": {"app": "payments"}},
        "spec": {
            "selector": {"app": "payments"},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],  # as ours: SSA merges
        },
    }


# The auditor's canary: istio with no hosts and model ``payments``, so its model Service is
# called ``payments`` too.
PAYMENTS = world_canary(
    "pay", PROMETHEUS, model={"name": "payments", "maxModelLen": 8192}, traffic={"router": "istio"}
)


def conditions(world: World, name: str) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c["reason"], c["message"])
        for c in world.get(name)["status"]["conditions"]
    }


def admin(world: World) -> Any:
    """Who plays the people in the cluster: the admin client on the real server."""
    return world.admin if isinstance(world, RealWorld) else world.kube


def foreign_service_is_never_adopted(world: World) -> None:
    people = admin(world)
    before = people.create(foreign_service())
    world.create(PAYMENTS)
    world.settle(3)
    world.clock.t += 600  # past the backoff of the refused deploy: it is tried again
    world.settle(3)

    after = people.get(SERVICE)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert not after["metadata"].get("ownerReferences")
    assert after["spec"]["selector"] == {"app": "payments"}
    assert "canary.controlplane.dev/canary" not in after["metadata"]["labels"]
    # nothing of the canary was applied: no half-applied rollout
    assert world.objects(*ISVC, "pay") == []
    assert world.objects(*VS, "pay") == []
    found = conditions(world, "pay")
    assert found["Stalled"][:2] == ("True", "ForeignObject")
    assert found["Ready"][:2] == ("False", "ForeignObject")
    message = found["Stalled"][2]
    assert f"Service {NS}/payments exists and was not created by this canary" in message
    assert "rename spec.model.name" in message
    assert ("ForeignObject", message) in world.events("pay")
    assert world.get("pay")["status"]["stage"] == "pending"  # the rollout did not proceed

    world.kube.delete(canary_ref(NS, "pay"))
    world.clock.t += 600
    world.settle(3)
    with pytest.raises(NotFound):
        world.get("pay")
    left = people.get(SERVICE)
    assert left["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert not left["metadata"].get("ownerReferences")


def rollout_goes_on_once_the_object_is_gone(world: World) -> None:
    people = admin(world)
    people.create(foreign_service())
    world.create(PAYMENTS)
    world.settle(3)
    assert conditions(world, "pay")["Stalled"][:2] == ("True", "ForeignObject")

    people.delete(SERVICE)
    world.clock.t += 600
    world.settle(3)
    service = people.get(SERVICE)
    uid = world.get("pay")["metadata"]["uid"]
    assert [o["uid"] for o in service["metadata"]["ownerReferences"]] == [uid]
    assert sorted(o["metadata"]["name"] for o in world.objects(*ISVC, "pay")) == [
        "payments-bf16",
        "payments-nf4",
    ]
    assert world.objects(*VS, "pay")
    assert "ForeignObject" not in {c[1] for c in conditions(world, "pay").values()}

    # and the canary's own objects go with it
    world.kube.delete(canary_ref(NS, "pay"))
    world.settle(3)
    with pytest.raises(NotFound):
        people.get(SERVICE)


@pytest.fixture
def fake() -> Make:
    return lambda: World(T0, PROMETHEUS)


def test_a_foreign_service_is_never_adopted_patched_or_deleted(fake: Make) -> None:
    foreign_service_is_never_adopted(fake())


def test_the_rollout_goes_on_once_the_foreign_object_is_gone(fake: Make) -> None:
    rollout_goes_on_once_the_object_is_gone(fake())


def test_a_foreign_object_among_several_applies_none_of_them(fake: Make) -> None:
    world = fake()
    # the candidate's InferenceService belongs to someone else; the stable's is absent
    theirs = {
        "apiVersion": ISVC[0],
        "kind": ISVC[1],
        "metadata": {"name": "payments-nf4", "namespace": NS},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}}}},
    }
    stored = world.kube.create(theirs)
    world.create(PAYMENTS)
    world.settle(3)
    with pytest.raises(NotFound):
        world.kube.get(Ref(ISVC[0], ISVC[1], NS, "payments-bf16"))
    with pytest.raises(NotFound):
        world.kube.get(SERVICE)
    again = world.kube.get(Ref.of(theirs))
    assert again["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    message = conditions(world, "pay")["Stalled"][2]
    assert f"InferenceService {NS}/payments-nf4 exists" in message


@pytest.fixture
def real(loopback: LoopbackCluster) -> Make:
    def make() -> World:
        world = RealWorld(T0, PROMETHEUS, kubeconfig=str(loopback.kubeconfig))
        with contextlib.suppress(NotFound):
            world.admin.delete(SERVICE)  # reset_namespace leaves Services
        return world

    return make


@pytest.mark.binary
def test_a_foreign_service_is_never_adopted_on_the_real_server(real: Make) -> None:
    foreign_service_is_never_adopted(real())


@pytest.mark.binary
def test_the_rollout_goes_on_once_the_foreign_object_is_gone_on_the_real_server(
    real: Make,
) -> None:
    rollout_goes_on_once_the_object_is_gone(real())


def test_another_canarys_ready_objects_are_not_this_canarys_readiness(fake: Make) -> None:
    """Two canaries naming the same model: the second's objects are the first's. Before, the
    second read the first's Ready InferenceServices as its own candidate being ready and went on
    to progress (and then failed every rollback); now it waits, Stalled, ForeignObject."""
    world = fake()
    model = {"name": "payments", "maxModelLen": 8192}
    world.create(world_canary("first", PROMETHEUS, model=model))
    world.run_until(lambda w: w.get("first").get("status", {}).get("stage") == "steps", limit=7200)
    world.create(world_canary("second", PROMETHEUS, model=model))  # the first's objects Ready
    world.run_until(lambda w: False, limit=3 * 7200)  # the first's objects long Ready
    assert world.get("first")["status"]["stage"] != "pending"
    assert world.get("second")["status"]["stage"] == "pending"
    assert world.get("second")["status"]["phase"] not in ("progressing", "promoted")
    assert conditions(world, "second")["Stalled"][:2] == ("True", "ForeignObject")
