"""A canary whose routing kinds the cluster does not serve still finishes deleting.

The finalizer (controlplane/controller/reconcile.py ``_delete``) deletes what the canary
deployed; a kind the API server does not serve answers ``Unserved``, a ``NotFound``, so the
finalizer is removed instead of failing on every pass (the canary stuck Terminating).
"""

from __future__ import annotations

from pathlib import Path

from support.api import NAME, NS, World, canary

from controlplane.errors import NotFound
from controlplane.kube.client import Ref
from controlplane.spec.models import API_VERSION, KIND

START = 1_800_000_000.0


def test_deleting_a_canary_whose_istio_kinds_are_unserved_completes(tmp_path: Path) -> None:
    world = World(START, tmp_path)
    world.create(canary(traffic={"router": "istio", "hosts": ["llm.example.com"]}))
    world.run_until(lambda: world.phase() == "progressing", limit_s=3600)
    ref = Ref(API_VERSION, KIND, NS, NAME)
    assert world.kube.get(ref)["metadata"]["finalizers"]
    for version in ("v1", "v1beta1", "v1alpha3"):  # Istio uninstalled
        world.kube.unserve(f"networking.istio.io/{version}", "VirtualService")
        world.kube.unserve(f"networking.istio.io/{version}", "DestinationRule")
    world.kube.delete(ref)

    def gone() -> bool:
        try:
            world.kube.get(ref)
        except NotFound:
            return True
        return False

    world.run_until(gone, limit_s=600)
    assert world.controller.stats.errors == 0
