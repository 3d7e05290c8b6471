"""KEDA's operator on a real API server, for the one part of it a rollout needs.

The loopback clusters have KEDA's ScaledObject CRD only, for KServe's sake
(:mod:`harness.cluster.kserve`). :func:`keda_hpa` is the HorizontalPodAutoscaler KEDA v2.18.0
keeps for a ScaledObject (pure); :class:`KedaStandin` writes it for every ScaledObject of a
namespace, so kube-controller-manager's real HPA controller enforces its bounds on the Deployment
(it cannot read the metric: no external metrics API). Tick-driven: the real-KServe tests'
``KedaConverged`` (``tests/support/kserve_world.py``) calls :meth:`KedaStandin.sync` before
every look.
"""

from __future__ import annotations

from controlplane.errors import NotFound
from controlplane.kube.client import KubeClient, Obj, Ref

DEPLOYMENT = ("apps/v1", "Deployment")
SCALED_OBJECT = ("keda.sh/v1alpha1", "ScaledObject")
HPA = ("autoscaling/v2", "HorizontalPodAutoscaler")
KEDA_HPA_PREFIX = "keda-hpa-"
"""KEDA v2.18.0 ``controllers/keda/hpa.go``, ``getDefaultHpaName``."""


def keda_hpa(scaled: Obj) -> Obj:
    """The HorizontalPodAutoscaler KEDA v2.18.0's operator keeps for ``scaled``, a ScaledObject of
    ``prometheus`` triggers on a Deployment (pure): ``controllers/keda/hpa.go``,
    ``newHPAForScaledObject``: named ``keda-hpa-<name>``, owned by the ScaledObject, its bounds
    ``GetHPAMinReplicas`` (``minReplicaCount`` when above 0, else 1) and ``GetHPAMaxReplicas``
    (``maxReplicaCount``, else 100; ``apis/keda/v1alpha1/scaledobject_types.go``), the behaviour
    of ``advanced.horizontalPodAutoscalerConfig``, and per trigger one External metric
    ``s<i>-prometheus`` selected by ``scaledobject.keda.sh/name``, its target an ``AverageValue``
    of the trigger's ``threshold`` (``pkg/scalers/prometheus_scaler.go``,
    ``GetMetricSpecForScaling``; ``pkg/scalers/scaler.go``, ``GetMetricTargetType``: AverageValue
    when the trigger has no ``metricType``). Left out: KEDA's labels, and scaling to and from
    zero (``minReplicaCount: 0``), which KEDA's own loop does on the trigger's activity."""
    meta, spec = scaled["metadata"], scaled["spec"]
    low = spec.get("minReplicaCount")
    metrics = []
    for index, trigger in enumerate(spec.get("triggers") or []):
        if trigger.get("type") != "prometheus":
            raise AssertionError(f"the KEDA stand-in knows prometheus triggers only: {trigger}")
        metric = {
            "name": f"s{index}-prometheus",
            "selector": {"matchLabels": {"scaledobject.keda.sh/name": meta["name"]}},
        }
        target = {"type": "AverageValue", "averageValue": trigger["metadata"]["threshold"]}
        metrics.append({"type": "External", "external": {"metric": metric, "target": target}})
    hpa_spec: Obj = {
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": spec["scaleTargetRef"]["name"],
        },
        "minReplicas": low if low else 1,
        "maxReplicas": spec.get("maxReplicaCount", 100),
        "metrics": metrics,
    }
    behavior = ((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}).get(
        "behavior"
    )
    if behavior:
        hpa_spec["behavior"] = behavior
    owner = {
        "apiVersion": SCALED_OBJECT[0],
        "kind": SCALED_OBJECT[1],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "apiVersion": HPA[0],
        "kind": HPA[1],
        "metadata": {
            "name": KEDA_HPA_PREFIX + meta["name"],
            "namespace": meta["namespace"],
            "labels": {"app.kubernetes.io/managed-by": "keda-operator"},
            "ownerReferences": [owner],
        },
        "spec": hpa_spec,
    }


class KedaStandin:
    """The HPAs KEDA's operator would keep for the ScaledObjects of ``namespace``."""

    FIELD_MANAGER = "keda-standin"

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self._kube = kube
        self._namespace = namespace

    def sync(self) -> list[str]:
        """Create or update the HPA of every ScaledObject of the namespace; the Deployments whose
        replicas are outside their HPA's bounds (``Deployment/NAME at N, HPA LOW-HIGH``)."""
        busy: list[str] = []
        ns = self._namespace
        for scaled in self._kube.list(*SCALED_OBJECT, ns):
            if scaled["metadata"].get("deletionTimestamp"):
                continue
            want = keda_hpa(scaled)
            ref = Ref.of(want)
            try:
                have: Obj | None = self._kube.get(ref)
            except NotFound:
                have = None
            bounds = ("scaleTargetRef", "minReplicas", "maxReplicas")
            if have is None or any(have["spec"].get(k) != want["spec"][k] for k in bounds):
                self._kube.apply(want, field_manager=self.FIELD_MANAGER)
            try:
                target = self._kube.get(
                    Ref(*DEPLOYMENT, ns, want["spec"]["scaleTargetRef"]["name"])
                )
            except NotFound:
                continue
            asked = int((target.get("spec") or {}).get("replicas", 1))
            low, high = want["spec"]["minReplicas"], want["spec"]["maxReplicas"]
            if not low <= asked <= high:
                busy.append(f"Deployment/{target['metadata']['name']} at {asked}, HPA {low}-{high}")
        return busy
