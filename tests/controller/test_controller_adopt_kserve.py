"""Adopting the InferenceService a team already serves, against the real KServe v0.20.0 (#37).

``kserve_loopback`` runs KServe's own controller manager, kube-controller-manager,
kube-scheduler and kwok GPU nodes (:mod:`support.kserve_world`). The live InferenceService
``chat`` is applied as Argo CD applies a manifest (server-side apply, field manager
``argocd-controller``) before any canary exists; a ModelCanary adopts it (``targetRef``).

What a user sees with ``kubectl get isvc,deploy,pods,httproute -o yaml`` must hold:

- until the promotion, the live predictor's pods keep their names and creation times, and the
  live InferenceService its generation and spec; its field managers are Argo CD's alone;
- at every step the canary's HTTPRoute splits the hosts KServe gave the live service (read from
  its ``status.url``, the host of KServe's own route) between the live predictor Service and
  the candidate's, at the step's weight, while KServe's own route still names the live Service;
- a rollback ends with the live service as it was (same pods) and nothing of the canary left;
- a promotion ends with the live InferenceService serving the candidate under its own name
  (KServe rolled its pods to the candidate's arguments), the fields the promotion set owned by
  ``canary-controller-promotion`` and the rest still by Argo CD, and nothing of the canary
  left. Argo CD re-applying its manifest without forcing is refused by the API server with a
  conflict that names the promotion's manager: the GitOps story of docs/adopt.md.
"""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
from support.adoption import LIVE, adopting_canary, live_isvc
from support.controller_world import DAY, NS, Metrics
from support.kserve_world import DEPLOYMENT, ISVC, ROUTE, KServeWorld, release
from support.realkube import KSERVE_GROUP

from controlplane.errors import NotFound
from controlplane.kube.client import Obj, Ref
from controlplane.kube.real import RealKube
from controlplane.operations import record_intent
from controlplane.routing.adopting import FIELD_MANAGER
from harness.cluster.kubeapi import LoopbackCluster

pytestmark = [
    pytest.mark.binary,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.xdist_group(KSERVE_GROUP),
]

ARGOCD = "argocd-controller"
LIVE_REF = Ref(*ISVC, NS, LIVE)
PODMONITOR = ("monitoring.coreos.com/v1", "PodMonitor")
STEPS = [
    {"weight": 25, "duration": "1h"},
    {"weight": 75, "duration": "1h"},
    {"weight": 100, "duration": "1h"},
]


@pytest.fixture(autouse=True)
def _gpus_freed(kserve_loopback: LoopbackCluster) -> Iterator[None]:
    yield
    release(RealKube.connect(kubeconfig=str(kserve_loopback.kubeconfig)), NS)


VS = ("networking.istio.io/v1", "VirtualService")
TRAFFIC = {
    "gateway-api": {"router": "gateway-api", "gateway": {"name": "gw"}},
    "istio": {"router": "istio"},
}


def adopting(world: KServeWorld, metrics: Metrics, router: str = "gateway-api") -> dict[str, Any]:
    return adopting_canary(
        "triage",
        NS,
        traffic=TRAFFIC[router],
        steps=STEPS,
        analysis={"interval": "30m", "window": "30m", "prometheus": metrics.url},
    )


def live(world: KServeWorld) -> Obj:
    return world.admin.get(LIVE_REF)


def live_pods(world: KServeWorld) -> dict[str, str]:
    """The live predictor's pods: name -> creation time."""
    pods = world.admin.list("v1", "Pod", NS, {"serving.kserve.io/inferenceservice": LIVE})
    return {p["metadata"]["name"]: p["metadata"]["creationTimestamp"] for p in pods}


def managers(obj: Obj) -> dict[str, str]:
    """Each field manager of ``obj`` and the fields it owns under spec (as JSON text)."""
    return {
        m["manager"]: json.dumps(m.get("fieldsV1", {}).get("f:spec", {}), sort_keys=True)
        for m in obj["metadata"].get("managedFields") or []
        if m.get("operation") == "Apply"
    }


def serving_live(world: KServeWorld) -> Obj:
    """Apply the live service as Argo CD does and wait until KServe serves it."""
    world.admin.apply(live_isvc(NS, replicas=1), field_manager=ARGOCD)

    def ready(w: KServeWorld) -> bool:
        w.kserve.tick()
        got = live(w)
        return bool((got.get("status") or {}).get("url")) and len(live_pods(w)) == 1

    world.run_until(ready, limit=DAY)
    assert ready(world), (live(world).get("status"), live_pods(world))
    return live(world)


def leftovers(world: KServeWorld) -> list[str]:
    found = []
    for api, kind in (ISVC, ROUTE, VS, PODMONITOR):
        try:
            objs = world.admin.list(api, kind, NS, {"canary.controlplane.dev/canary": "triage"})
        except NotFound:  # a kind the cluster does not serve
            continue
        found += [f"{kind}/{o['metadata']['name']}" for o in objs]
    return found


def phase(world: KServeWorld) -> str:
    return str((world.get("triage").get("status") or {}).get("phase"))


def cleaned(world: KServeWorld) -> bool:
    book = (world.get("triage").get("status") or {}).get("controller") or {}
    return book.get("cleaned") is not None


def split_of(world: KServeWorld, router: str) -> tuple[list[str], dict[str, int]]:
    """The hosts the canary's route is on and its split by Service name."""
    if router == "istio":
        vs = world.admin.get(Ref(*VS, NS, "triage"))["spec"]
        dests = vs["http"][0]["route"]
        split = {d["destination"]["host"].split(".")[0]: d["weight"] for d in dests}
        return vs["hosts"], split
    ours = world.admin.get(Ref(*ROUTE, NS, "triage"))["spec"]
    split = {b["name"]: b["weight"] for b in ours["rules"][0]["backendRefs"]}
    return ours.get("hostnames") or [], split


def routes_at_each_step(
    world: KServeWorld, seen: dict[int, dict[str, Any]], router: str = "gateway-api"
) -> bool:
    """Record, once per step, the split of the canary's route and KServe's own route."""
    status = world.get("triage").get("status") or {}
    weight = int(status.get("weight", 0))
    if status.get("phase") == "progressing" and weight not in seen:
        world.kserve.tick()
        hostnames, split = split_of(world, router)
        kserves = world.admin.get(Ref(*ROUTE, NS, LIVE))["spec"]
        seen[weight] = {
            "hostnames": hostnames,
            "split": split,
            "kserve": [b["name"] for r in kserves["rules"] for b in r["backendRefs"]],
            "kserve_hosts": kserves.get("hostnames"),
            "pods": live_pods(world),
            "generation": live(world)["metadata"]["generation"],
            "managers": set(managers(live(world))),
        }
    return False


@pytest.mark.parametrize("router", ["gateway-api", "istio"])
def test_a_promotion_into_the_live_service_on_real_kserve(
    kserve_loopback: LoopbackCluster, metrics: Metrics, router: str
) -> None:
    world = KServeWorld(metrics.t0, metrics.url, kubeconfig=str(kserve_loopback.kubeconfig))
    before = serving_live(world)
    pods_before = live_pods(world)
    world.create(adopting(world, metrics, router))
    seen: dict[int, dict[str, Any]] = {}
    world.run_until(
        lambda w: routes_at_each_step(w, seen, router) or phase(w) == "promoted", 10 * DAY
    )

    assert sorted(seen) == [25, 75, 100], seen
    kserve_host = before["status"]["url"].split("://", 1)[1]
    # gateway-api: KServe's host of the live service; istio: the Service host in-cluster
    # clients call
    host = kserve_host if router == "gateway-api" else f"{LIVE}-predictor.{NS}.svc.cluster.local"
    for weight, view in seen.items():
        assert host in view["hostnames"]
        assert view["kserve_hosts"] == [kserve_host]
        assert view["split"] == {f"{LIVE}-predictor": 100 - weight, f"{LIVE}-fp8-predictor": weight}
        assert view["kserve"] == [f"{LIVE}-predictor"]  # KServe's own route is left alone
        assert view["pods"] == pods_before  # same pods, same start times, until promotion
        assert view["generation"] == before["metadata"]["generation"]
        assert view["managers"] == {ARGOCD}  # the canary never wrote it before promotion

    world.run_until(lambda w: cleaned(w), limit=2 * DAY)
    assert cleaned(world), world.get("triage").get("status")
    world.kserve.tick()
    after = live(world)
    model = after["spec"]["predictor"]["model"]
    assert "--quantization=fp8" in model["args"]
    deployment = world.admin.get(Ref(*DEPLOYMENT, NS, f"{LIVE}-predictor"))
    engine = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--quantization=fp8" in engine["args"]  # KServe rolled the live pods
    assert set(live_pods(world)).isdisjoint(pods_before)
    assert leftovers(world) == []
    owned = managers(after)
    assert set(owned) == {ARGOCD, FIELD_MANAGER}
    assert '"f:args"' in owned[FIELD_MANAGER]
    assert '"f:storageUri"' in owned[FIELD_MANAGER]
    # Argo CD syncing its manifest again without forcing: the API server names the promotion
    path = f"/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices/{LIVE}"
    query = f"?fieldManager={ARGOCD}&force=false"
    with pytest.raises(urllib.error.HTTPError) as refused:
        kserve_loopback.request(
            "PATCH",
            path + query,
            live_isvc(NS, replicas=1),
            content_type="application/apply-patch+yaml",
        )
    assert refused.value.code == 409
    assert FIELD_MANAGER in refused.value.read().decode()


def test_a_rollback_leaves_the_live_service_as_it_was_on_real_kserve(
    kserve_loopback: LoopbackCluster, metrics: Metrics
) -> None:
    world = KServeWorld(metrics.t0, metrics.url, kubeconfig=str(kserve_loopback.kubeconfig))
    before = serving_live(world)
    pods_before = live_pods(world)
    world.create(adopting(world, metrics))
    world.run_until(lambda w: int((w.get("triage").get("status") or {}).get("step", 0)) == 1, DAY)
    record_intent(world.admin, NS, "triage", "abort", "alice")
    world.run_until(lambda w: phase(w) == "rolled_back" and cleaned(w), limit=2 * DAY)
    assert cleaned(world)
    world.kserve.tick()

    after = live(world)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert set(managers(after)) == {ARGOCD}
    assert live_pods(world) == pods_before
    assert leftovers(world) == []
