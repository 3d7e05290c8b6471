"""One contract for the fake KServe and the real one (v0.20.0): what the controller reads back.

The ``kserve`` router's InferenceService is applied at each point of a rollout (start, two steps,
promotion; and a rollback) to FakeKube + :class:`~harness.kube.fake_kserve.FakeKServe`
(``gateway_routes="v0.20.0"``) and to the loopback cluster where KServe's own controller
reconciles it. After each, both must show the controller the same thing: KServe's HTTPRoute
backends, ``status.canaryStatuses``, readiness (:func:`~controlplane.controller.children.
is_ready`) and the weights the router reads back. Where they differ, the fake changes.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from support.canaries import canary_dict, model_canary
from support.kserve_world import Converged, release
from support.realkube import KSERVE_GROUP

from controlplane.controller.children import is_ready
from controlplane.errors import RouterPending
from controlplane.kube.client import KubeClient, Ref
from controlplane.kube.real import RealKube
from controlplane.profiles.catalog import load_catalog
from controlplane.routing import kserve
from controlplane.spec.models import LABEL_VARIANT, ModelCanary
from harness.cluster.kubeapi import LoopbackCluster
from harness.kube.fake import FakeKube
from harness.kube.fake_kserve import FakeKServe

pytestmark = [pytest.mark.binary, pytest.mark.slow, pytest.mark.xdist_group(KSERVE_GROUP)]

_names = itertools.count(1)
# (weight, outcome): outcome "promoted" is finalized as the controller does, phase by phase
POINTS: list[tuple[int, Any]] = [(0, None), (5, None), (25, None), (0, "promoted")]
ROLLBACK: list[tuple[int, Any]] = [(0, None), (25, None), (0, "rolled_back")]


# The canary both clusters serve: canary ``c`` of model ``m`` on the kserve router, two replicas
# of bf16, five steps without checks; no shadow, no budget. Its candidate is fp8 of the stable's
# checkpoint (promotion in two phases) or of another checkpoint (promotion by KServe's rename).
BASE = canary_dict(
    "c",
    model={"name": "m", "maxModelLen": 4096},
    stable={"name": "bf16", "storageUri": "hf://m/x", "gpu": "nvidia-l40s", "replicas": 2},
    traffic={"router": "kserve"},
    analysis={"metrics": [{"name": "errors", "builtin": "error-rate"}]},
    steps=[{"weight": 5}, {"weight": 25}, {"weight": 100}],
    shadow=None,
    budget=None,
)


def fp8_of(storage_uri: str) -> dict[str, Any]:
    """``spec.candidate``: fp8 of the checkpoint at ``storage_uri``."""
    return {"name": "fp8", "storageUri": storage_uri, "quantization": "fp8", "gpu": "nvidia-l40s"}


def observe(kube: KubeClient, canary: ModelCanary) -> dict[str, Any]:
    ns = canary.metadata.namespace
    isvc = kube.get(Ref("serving.kserve.io/v1beta1", "InferenceService", ns, "m"))
    route = kube.get(Ref("gateway.networking.k8s.io/v1", "HTTPRoute", ns, "m"))
    backends = {
        b["name"]: int(b.get("weight", 1))
        for rule in route["spec"]["rules"]
        for b in rule.get("backendRefs") or []
    }
    statuses = sorted(
        (c["name"], c.get("ready"), c.get("trafficPercent"))
        for c in isvc["status"].get("canaryStatuses") or []
    )
    deployments = {
        d["metadata"]["name"]: (
            (d["spec"]["template"]["metadata"].get("labels") or {}).get(LABEL_VARIANT),
            int(d["spec"]["replicas"]),
        )
        for d in kube.list("apps/v1", "Deployment", ns)
    }
    router = kserve.router(kube, load_catalog())
    return {
        "route": backends,
        "canaryStatuses": statuses,
        "deployments": deployments,
        "ready": is_ready(isvc),
        "read back": router.get_weights(canary),
    }


def run(
    kube: KubeClient, canary: ModelCanary, points: list[tuple[int, Any]], settle: Any
) -> list[Any]:
    """Each point through the router, settled; a promotion's pending phase is a point too."""
    router = kserve.router(kube, load_catalog())
    seen = []
    for weight, outcome in points:
        while True:
            try:
                if outcome is None:
                    router.set_weights(canary, weight, False)
                else:
                    router.finalize(canary, outcome)
            except RouterPending:
                settle()
                seen.append(observe(kube, canary))
                continue
            break
        settle()
        seen.append(observe(kube, canary))
    return seen


@pytest.mark.parametrize(
    ("points", "candidate_uri"),
    [(POINTS, "hf://m/x"), (POINTS, "hf://m/x-fp8"), (ROLLBACK, "hf://m/x")],
    ids=["promotion-in-two-phases", "promotion-by-rename", "rollback"],
)
def test_fake_kserve_shows_what_kserve_v0_20_shows(
    kserve_loopback: LoopbackCluster, points: list[tuple[int, Any]], candidate_uri: str
) -> None:
    ns = f"contract-{next(_names)}"
    canary = model_canary(namespace=ns, base=BASE, candidate=fp8_of(candidate_uri))
    real = RealKube.connect(kubeconfig=str(kserve_loopback.kubeconfig))
    real.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    converged = Converged(real, ns)
    try:
        got_real = run(real, canary, points, converged.tick)
    finally:
        release(real, ns)  # the GPUs of the shared cluster's one node per GPU kind

    fake = FakeKube(now=lambda: 1_800_000_000.0)
    fake_kserve = FakeKServe(fake, now=lambda: 1_800_000_000.0, gateway_routes="v0.20.0")
    got_fake = run(fake, canary, points, fake_kserve.tick)

    assert got_fake == got_real
    # what both show: KServe v0.20.0 routes nothing to a canary at any percent; a promotion
    # ends on one Deployment running the candidate, named after it when renamed
    assert all(len(view["route"]) == 1 for view in got_real)
    last = got_real[-1]["deployments"]
    if points is ROLLBACK:
        assert last == {"m-predictor": ("bf16", 2)}
    elif candidate_uri == "hf://m/x":
        assert last == {"m-predictor": ("fp8", 1)}
        assert len(got_real) == len(points) + 1  # the pending phase was one more point
    else:
        assert last == {"m-fp8-predictor": ("fp8", 1)}
