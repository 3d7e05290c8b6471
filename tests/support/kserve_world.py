"""The controller world of :mod:`support.real_world` with the real KServe in place of the stand-in.

:class:`KServeWorld` is :class:`~support.real_world.RealWorld` on the ``kserve_loopback`` cluster:
KServe v0.20.0's controller manager, kube-controller-manager, kube-scheduler and kwok run there
in real time while the controller decides on the test's injected clock. To keep the two in step,
:class:`Converged` takes the place of the stand-in: its :meth:`~Converged.tick` (called before
every controller pass) blocks until KServe and the Deployment controller have caught up with the
last write (every InferenceService's generation observed, every Deployment rolled out, no pod
terminating; every InferenceService Ready, which the scenarios here all reach), so each pass
sees the cluster a user would see once things settle. It never writes.

:func:`snapshot` is what a user would look at: the Deployments of the namespace with their ready
replicas, the labels of their pods, and the backends and weights of every HTTPRoute.

KEDA's operator is not run. With ``KServeWorld(keda=True)``, :class:`KedaConverged` runs the
harness's stand-in for the one part of it a rollout needs (:mod:`harness.kube.keda_standin`): each
ScaledObject becomes the HorizontalPodAutoscaler KEDA v2.18.0 would keep for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from controlplane.controller.children import is_ready
from controlplane.kube.client import Obj, Ref
from controlplane.kube.real import RealKube
from controlplane.serving.object_names import predictor_service
from harness.kube.keda_standin import DEPLOYMENT, KedaStandin
from support.controller_world import NS
from support.real_world import RealWorld

ISVC = ("serving.kserve.io/v1beta1", "InferenceService")
ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")


def _settled_isvc(obj: Obj) -> bool:
    # not observedGeneration: KServe reports its Deployment's there (see is_ready)
    return is_ready(obj)


ISVC_LABEL = "serving.kserve.io/inferenceservice"


def _predictor_deployments(isvc: Obj) -> set[str]:
    """The predictor Deployments KServe keeps for ``isvc``'s spec (``PredictorServiceName``)."""
    name, spec = isvc["metadata"]["name"], isvc.get("spec") or {}
    wanted = {predictor_service(name, (spec.get("predictor") or {}).get("name"))}
    wanted |= {predictor_service(name, c["predictor"]["name"]) for c in spec.get("canary") or []}
    return wanted


def _rolled_out(obj: Obj) -> bool:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = int(spec.get("replicas", 1))
    return (
        status.get("observedGeneration") == obj["metadata"].get("generation")
        and int(status.get("updatedReplicas", 0)) == want
        and int(status.get("readyReplicas", 0)) == want
        and int(status.get("replicas", 0)) == want
    )


def unschedulable(pod: Obj) -> str:
    """The scheduler's reason when it could not place ``pod`` (e.g. ``Insufficient
    nvidia.com/gpu``), else ``""``: what a settle that times out should say."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return str(cond.get("message") or cond.get("reason") or "not scheduled")
    return ""


def release(kube: RealKube, namespace: str, timeout_s: float = 60.0) -> None:
    """Delete ``namespace``'s InferenceServices and wait until their Deployments and pods are
    gone, so the GPUs they held are free for the next test on the shared cluster."""
    for obj in kube.list(*ISVC, namespace):
        kube.delete(Ref.of(obj))
    deadline = time.monotonic() + timeout_s
    while left := [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in [*kube.list(*DEPLOYMENT, namespace), *kube.list("v1", "Pod", namespace)]
        if (o["metadata"].get("labels") or {}).get(ISVC_LABEL)
    ]:
        if time.monotonic() > deadline:
            raise AssertionError(f"{namespace} still holds {left} after {timeout_s}s")
        time.sleep(0.2)


class Converged:
    """Waits (in real time) for the real KServe and Deployment controllers to settle."""

    def __init__(self, kube: RealKube, namespace: str = NS, timeout_s: float = 60.0) -> None:
        self._kube = kube
        self._namespace = namespace
        self._timeout_s = timeout_s
        self._seen: dict[str, str] = {}
        self.waits = 0

    def _unsettled(self) -> list[str]:
        ns = self._namespace
        isvcs = [
            o for o in self._kube.list(*ISVC, ns) if not o["metadata"].get("deletionTimestamp")
        ]
        busy = [
            f"InferenceService/{o['metadata']['name']} (status {o.get('status')})"
            for o in isvcs
            if not _settled_isvc(o)
        ]
        wanted = {name for o in isvcs for name in _predictor_deployments(o)}
        for o in self._kube.list(*DEPLOYMENT, ns):
            name = o["metadata"]["name"]
            owner = (o["metadata"].get("labels") or {}).get(ISVC_LABEL)
            if not _rolled_out(o):
                busy.append(f"Deployment/{name}")
            elif owner and name not in wanted:
                busy.append(f"Deployment/{name} (KServe has yet to delete it)")
        for pod in self._kube.list("v1", "Pod", ns):
            if pod["metadata"].get("deletionTimestamp"):
                busy.append(f"Pod/{pod['metadata']['name']}")
            elif reason := unschedulable(pod):
                busy.append(f"Pod/{pod['metadata']['name']} unschedulable: {reason}")
        return busy

    def _versions(self) -> dict[str, str]:
        return {
            o["metadata"]["name"]: o["metadata"]["resourceVersion"]
            for o in self._kube.list(*ISVC, self._namespace)
        }

    def tick(self) -> list[Ref]:
        """Return once nothing is in flight. After an InferenceService changed since the last
        tick, the settled state must also hold a moment later: KServe may not have started on
        the change yet (its Ready condition and Deployments are those of the previous spec)."""
        deadline = time.monotonic() + self._timeout_s
        versions = self._versions()
        recheck = versions != self._seen
        while True:
            while busy := self._unsettled():
                if time.monotonic() > deadline:
                    raise AssertionError(f"KServe did not settle in {self._timeout_s}s: {busy}")
                self.waits += 1
                time.sleep(0.2)
            if not recheck:
                break
            time.sleep(0.5)
            recheck = False
        self._seen = self._versions()
        return []

    def pending(self) -> dict[Ref, float]:
        return {}

    def never_ready(self, name: str) -> None:
        raise NotImplementedError("the real KServe makes what it makes Ready")


class KedaConverged(Converged):
    """:class:`Converged` with KEDA's HPAs: before each look the KEDA stand-in creates or updates
    the HPA of every ScaledObject (:class:`~harness.kube.keda_standin.KedaStandin`), and it counts
    as settled only once each such HPA's Deployment asks for replicas within its bounds (the HPA
    controller acts on a changed HPA within its 15 s sync period)."""

    def __init__(self, kube: RealKube, namespace: str = NS, timeout_s: float = 60.0) -> None:
        super().__init__(kube, namespace, timeout_s)
        self._keda = KedaStandin(kube, namespace)

    def _unsettled(self) -> list[str]:
        return self._keda.sync() + super()._unsettled()


@dataclass
class KServeWorld(RealWorld):
    """:class:`RealWorld` whose InferenceServices the real KServe reconciles (with ``keda``,
    ScaledObjects get KEDA's HPAs: :class:`KedaConverged`)."""

    keda: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        settle = KedaConverged if self.keda else Converged
        self.kserve = settle(RealKube.connect(kubeconfig=self.kubeconfig))  # type: ignore[assignment]
        # the namespace was emptied of InferenceServices: wait for garbage collection to take
        # their Deployments and pods too, so each test starts from nothing
        deadline = time.monotonic() + 60
        while self.admin.list(*DEPLOYMENT, NS) or self.admin.list("v1", "Pod", NS):
            if time.monotonic() > deadline:
                raise AssertionError(f"{NS} still has Deployments or pods of an earlier test")
            time.sleep(0.2)


def snapshot(kube: RealKube, namespace: str = NS) -> dict[str, Any]:
    """Deployments (name -> ready replicas), their pods' canary labels, every HTTPRoute's
    backends with weights (route -> {service: weight}) and each InferenceService's canary
    entries: the percent asked for and the (ready, percent) KServe reports."""
    deployments = {
        o["metadata"]["name"]: int((o.get("status") or {}).get("readyReplicas", 0))
        for o in kube.list(*DEPLOYMENT, namespace)
    }
    pods: dict[str, list[tuple[str, str, str]]] = {}
    for pod in kube.list("v1", "Pod", namespace):
        labels = pod["metadata"].get("labels") or {}
        owner = labels.get("app", "").removeprefix("isvc.")
        pods.setdefault(owner, []).append(
            (
                labels.get("canary.controlplane.dev/canary", ""),
                labels.get("canary.controlplane.dev/variant", ""),
                labels.get("canary.controlplane.dev/role", ""),
            )
        )
    canaries = {
        o["metadata"]["name"]: {
            "asked": {
                c["predictor"]["name"]: c.get("trafficPercent")
                for c in (o.get("spec") or {}).get("canary") or []
            },
            "reported": {
                c["name"]: (c.get("ready"), c.get("trafficPercent"))
                for c in (o.get("status") or {}).get("canaryStatuses") or []
            },
        }
        for o in kube.list(*ISVC, namespace)
    }
    routes: dict[str, dict[str, int]] = {}
    for route in kube.list(*ROUTE, namespace):
        weights: dict[str, int] = {}
        for rule in route["spec"].get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                weights[ref["name"]] = weights.get(ref["name"], 0) + int(ref.get("weight", 1))
        routes[route["metadata"]["name"]] = weights
    return {"deployments": deployments, "pods": pods, "routes": routes, "canaries": canaries}
