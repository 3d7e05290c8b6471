"""RealKube against a real cluster (opt-in: ``pytest -m e2e``; a kind cluster is enough).

Runs the behaviours FakeKube claims to share with kube-apiserver (docs/kube-adapter.md) on the
current kubeconfig context, in a throwaway namespace. Skipped when no cluster answers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from controlplane.errors import Conflict, KubeError, NotFound
from controlplane.kube.client import Obj, Ref
from controlplane.kube.lease import LeaderElector
from controlplane.kube.real import RealKube

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def kube() -> RealKube:
    try:
        client = RealKube.connect()
        client.list("v1", "Namespace")
    except KubeError as exc:
        pytest.skip(f"no Kubernetes cluster reachable from the current kubeconfig: {exc}")
    return client


@pytest.fixture
def namespace(kube: RealKube) -> Iterator[str]:
    name = f"cp-e2e-{uuid.uuid4().hex[:8]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube.delete(Ref("v1", "Namespace", None, name))


def configmap(namespace: str, name: str = "cfg", **data: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": dict(data) or {"k": "v"},
    }


def test_crud_and_conflicts(kube: RealKube, namespace: str) -> None:
    stored = kube.create(configmap(namespace))
    with pytest.raises(Conflict):
        kube.create(configmap(namespace))
    kube.replace({**stored, "data": {"k": "2"}})
    with pytest.raises(Conflict):
        kube.replace({**stored, "data": {"k": "3"}})
    ref = Ref.of(stored)
    assert kube.patch(ref, {"data": {"x": "1"}})["data"] == {"k": "2", "x": "1"}
    ops = [{"op": "remove", "path": "/data/x"}]
    assert kube.patch(ref, ops, kind="json")["data"] == {"k": "2"}  # type: ignore[arg-type]
    assert [o["metadata"]["name"] for o in kube.list("v1", "ConfigMap", namespace)].count(
        "cfg"
    ) == 1
    kube.delete(ref)
    with pytest.raises(NotFound):
        kube.get(ref)


def test_server_side_apply(kube: RealKube, namespace: str) -> None:
    kube.apply(configmap(namespace, a="1", b="2"), field_manager="e2e")
    after = kube.apply(configmap(namespace, a="1"), field_manager="e2e")
    assert after["data"] == {"a": "1"}


def test_finalizers_and_watch(kube: RealKube, namespace: str) -> None:
    obj = configmap(namespace)
    obj["metadata"]["finalizers"] = ["canary.controlplane.dev/e2e"]
    start = kube.create(obj)["metadata"]["resourceVersion"]
    ref = Ref.of(obj)
    kube.delete(ref)
    assert "deletionTimestamp" in kube.get(ref)["metadata"]
    kube.patch(ref, {"metadata": {"finalizers": None}})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            kube.get(ref)
        except NotFound:
            break
        time.sleep(0.2)
    types = [
        e.type
        for e in kube.watch("v1", "ConfigMap", namespace, resource_version=start, timeout_s=2)
        if e.object["metadata"]["name"] == "cfg"
    ]
    assert types[-1] == "DELETED"
    assert "MODIFIED" in types


def test_event(kube: RealKube, namespace: str) -> None:
    stored = kube.create(configmap(namespace))
    kube.event(stored, "E2E", "hello")
    assert any(e["reason"] == "E2E" for e in kube.list("v1", "Event", namespace))


def test_leader_election(kube: RealKube, namespace: str) -> None:
    now = time.time
    a = LeaderElector(kube, namespace, "cp-e2e", "a", 15, now)
    b = LeaderElector(kube, namespace, "cp-e2e", "b", 15, now)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert a.release()
    assert b.try_acquire_or_renew()
