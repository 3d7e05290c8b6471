"""``autoscaling.queue`` on a cluster without KEDA: refused with a reason, nothing applied.

KServe v0.20.0 turns a predictor of its ``keda`` autoscaler class into a KEDA ScaledObject and,
where KEDA's CRD is not installed, never reconciles it (docs/capacity.md, "Autoscaling kept"):
the canary would wait for its progress deadline and roll back on "not ready", with no word of
why. The controller asks the cluster first: the canary is ``Stalled`` with reason
``KEDANotInstalled`` and a Warning Event that says what to do, nothing of it is applied, and
once the CRD is served the rollout goes on. On the fake cluster; the question asked of it,
``KubeClient.serves``, is answered alike by the fake and the real API server
(``tests/kube/test_kube_contract.py``).
"""

from __future__ import annotations

from support.canaries import CANDIDATE
from support.controller_world import ISVC, NS, World, world_canary

from controlplane.controller.children import KEDA_REASON, SCALED_OBJECT_KIND

PROMETHEUS = "http://prometheus.invalid:9090"  # never asked: the rollout does not get that far
T0 = 1_790_000_000.0
QUEUE = {"serverAddress": "http://prometheus.monitoring:9090", "waitingPerReplica": 2.5}


def candidate(queue: bool) -> dict[str, object]:
    """The example's candidate at 1 replica, autoscaling to 4 on KServe's default autoscaler,
    or on vLLM's queue with ``queue``."""
    autoscaling: dict[str, object] = {"maxReplicas": 4, **({"queue": QUEUE} if queue else {})}
    return {**CANDIDATE, "replicas": 1, "autoscaling": autoscaling}


def conditions(world: World, name: str) -> dict[str, tuple[str, str, str]]:
    status = world.get(name).get("status") or {}
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


def test_a_queue_autoscaled_candidate_without_keda_is_refused_until_keda_is_installed() -> None:
    world = World(T0, PROMETHEUS)
    world.kube.unserve(*SCALED_OBJECT_KIND)
    world.create(world_canary("q", PROMETHEUS, candidate=candidate(queue=True)))
    world.settle(3)

    # nothing of the canary applied: no half-applied rollout
    assert world.objects(*ISVC, "q") == []
    found = conditions(world, "q")
    assert found["Stalled"][:2] == ("True", KEDA_REASON), found
    assert found["Ready"][:2] == ("False", KEDA_REASON), found
    message = found["Stalled"][2]
    assert "autoscaling.queue needs KEDA" in message
    assert "keda.sh/v1alpha1/ScaledObject" in message
    assert f"InferenceService {NS}/q-llm-nf4" in message  # the candidate, not the stable
    assert "q-llm-bf16" not in message
    assert (KEDA_REASON, message) in world.events("q")
    assert world.get("q")["status"]["stage"] == "pending"

    # KEDA installed: the next try applies both variants and the condition goes
    world.kube.serve(*SCALED_OBJECT_KIND)
    world.clock.t += 600  # past the backoff of the refused deploy
    world.settle(3)
    names = sorted(o["metadata"]["name"] for o in world.objects(*ISVC, "q"))
    assert names == ["q-llm-bf16", "q-llm-nf4"]
    assert KEDA_REASON not in {c[1] for c in conditions(world, "q").values()}


def test_without_the_queue_no_keda_is_needed() -> None:
    """The default autoscaler (KServe's HPA) needs no KEDA: the same cluster deploys it."""
    world = World(T0, PROMETHEUS)
    world.kube.unserve(*SCALED_OBJECT_KIND)
    world.create(world_canary("h", PROMETHEUS, candidate=candidate(queue=False)))
    world.settle(3)
    names = sorted(o["metadata"]["name"] for o in world.objects(*ISVC, "h"))
    assert names == ["h-llm-bf16", "h-llm-nf4"]
    assert KEDA_REASON not in {c[1] for c in conditions(world, "h").values()}
