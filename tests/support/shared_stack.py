"""One real-node stack shared by the modules that can share it, one node per machine always.

Starting a stack (the loopback control plane, KServe, the node, Traefik, the Prometheus
Operator; Argo Workflows for the gates) takes about a minute on two cores, and each module of
the real-node group (:data:`support.realnode.XDIST_GROUP`, one worker, its tests in collection
order one after another) used to start its own. Here a module asks for the stack of a *kind*
(:func:`stack_for`): the first module of that kind starts it, the next ones get the same one, and
it is stopped when a test of any other kind (or of none: a module with a node of its own) is
about to run, or at the end of the session, so two nodes never run at once (the register is
:class:`support.held.Held`, which :mod:`support.realkube` holds its clusters in too).

A module leaves the stack as it found it: :func:`module_namespaces` deletes the namespaces it
created and the PersistentVolumes claimed from them, waits until they are gone (their pods
stopped, the node's CPUs free for the next), and removes the finalizer of any ModelCanary left
in them first (its controller has stopped).

Registered as a pytest plugin by ``tests/conftest.py``; used by :mod:`support.real_traffic`
(:func:`~support.real_traffic.serving_stack`) and :mod:`support.real_argo`.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from harness.cluster.kubeapi import LoopbackCluster
from support.held import Held
from support.realnode import until

T = TypeVar("T")
MARKER = "shared_stack"
"""``pytest.mark.shared_stack(KIND)``: the module's tests use the shared stack of ``KIND``."""
GONE_S = 300
"""Bounds a hang only: namespaces go once their pods have stopped (seconds here)."""
CANARIES = "/apis/canary.controlplane.dev/v1alpha1/namespaces/{ns}/modelcanaries"

_stacks = Held()
"""The real-node stack held now: one at most, under its kind."""


def stack_for(kind: str, folder: Callable[[], Path], start: Callable[[Path], Any]) -> Any:
    """The running stack of ``kind``, else (the other kind's stopped first) the one
    ``start(folder())`` enters, a context manager, kept until :func:`release`."""
    _stacks.release(keep=(kind,))
    return _stacks.get(kind, lambda: start(folder()))


def release() -> None:
    """Stop the held stack, if any."""
    _stacks.release()


def held() -> str | None:
    """The kind of the stack held now, None when none is."""
    return next(iter(_stacks.keys()), None)


def kind_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker(MARKER)
    return str(marker.args[0]) if marker is not None else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Before a test of another kind sets up (its own node among its fixtures, perhaps), the
    held stack is stopped: here, before its setup phase, so that the stop (which runs programs:
    the node's ``ip``) is not counted as the test's own doing by :mod:`support.tiers` when the
    test is one that may start none. Under pytest-xdist that happens whenever the real-node
    group ends before the other worker has run everything: the group's worker takes unmarked
    tests next."""
    if held() not in (None, kind_of(item)):
        release()


def pytest_sessionfinish(session: pytest.Session) -> None:
    release()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(kind): the module's tests share the real-node stack of that kind"
    )


def namespaces(cluster: LoopbackCluster) -> set[str]:
    items = cluster.request("GET", "/api/v1/namespaces")["items"]
    return {str(ns["metadata"]["name"]) for ns in items}


def _let_go(cluster: LoopbackCluster, ns: str) -> None:
    """Remove the finalizer of every ModelCanary in ``ns`` (no controller runs to remove it),
    then delete ``ns``."""
    try:
        canaries = cluster.request("GET", CANARIES.format(ns=ns))["items"]
    except urllib.error.HTTPError:
        canaries = []  # no such kind served: nothing holds the namespace
    for canary in canaries:
        if canary["metadata"].get("finalizers"):
            name = canary["metadata"]["name"]
            cluster.request(
                "PATCH",
                CANARIES.format(ns=ns) + f"/{name}",
                {"metadata": {"finalizers": None}},
                content_type="application/merge-patch+json",
            )
    _gone_or(cluster, "DELETE", f"/api/v1/namespaces/{ns}")


def _gone_or(cluster: LoopbackCluster, method: str, path: str, patch: Any = None) -> None:
    """One call on something that may be gone already (a 404 is taken as done); ``patch`` a
    merge patch."""
    kind = "application/merge-patch+json" if patch is not None else "application/json"
    try:
        cluster.request(method, path, patch, content_type=kind)
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise


def volumes(cluster: LoopbackCluster) -> set[str]:
    """The PersistentVolumes of the cluster (cluster-scoped)."""
    items = cluster.request("GET", "/api/v1/persistentvolumes")["items"]
    return {str(pv["metadata"]["name"]) for pv in items}


def pods_in(cluster: LoopbackCluster, names: set[str]) -> list[str]:
    """``namespace/name`` of every pod left in the namespaces ``names``."""
    items = cluster.request("GET", "/api/v1/pods")["items"]
    return [
        f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        for p in items
        if p["metadata"]["namespace"] in names
    ]


def delete_namespaces(cluster: LoopbackCluster, names: set[str], made_volumes: set[str]) -> None:
    """Delete the namespaces ``names`` and the PersistentVolumes ``made_volumes``, and wait
    until all are gone.

    Once a namespace is terminating (nothing new may be made in it), its pods are deleted at
    once (grace 0: the kubelet stops their containers within its 2-second minimum) and the
    namespace is touched when they are gone. Without that it took 88 to 94 s: the namespace
    controller, finding pods left, looks again only after half the longest grace of a pod
    there plus a second (Kubernetes v1.34.10, ``pkg/controller/namespace/namespace_controller.go``,
    ``estimate.Estimate/2 + 1``; the estimate from ``deletion/namespaced_resources_deleter.go``,
    ``estimateGracefulTerminationForPods``), 71 s for an engine pod's 140 s; an update to the
    namespace queues it again after 5 s (``namespaceDeletionGracePeriod``)."""
    for ns in sorted(names):
        _let_go(cluster, ns)
    for ns in sorted(names):
        _gone_or(cluster, "DELETE", f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=0")
    for pv in sorted(made_volumes):
        _gone_or(cluster, "DELETE", f"/api/v1/persistentvolumes/{pv}")
    until(lambda: not pods_in(cluster, names), f"the pods of {sorted(names)} gone", GONE_S)
    touch = {"metadata": {"annotations": {"test.controlplane.dev/pods-gone": "true"}}}
    for ns in sorted(names & namespaces(cluster)):
        _gone_or(cluster, "PATCH", f"/api/v1/namespaces/{ns}", touch)
    until(
        lambda: not (namespaces(cluster) & names) and not (volumes(cluster) & made_volumes),
        f"the namespaces {sorted(names)} and volumes {sorted(made_volumes)} gone",
        GONE_S,
        every=1.0,
    )


@contextmanager
def module_namespaces(cluster: LoopbackCluster) -> Iterator[None]:
    """Delete, after the block, the namespaces and the PersistentVolumes created in it (a
    volume is cluster-scoped: left ``Released`` with its old claim's UID, it would never bind
    the claim of a later module's namespace of the same name), and wait until all are gone
    (:func:`delete_namespaces`)."""
    before, before_volumes = namespaces(cluster), volumes(cluster)
    try:
        yield
    finally:
        delete_namespaces(cluster, namespaces(cluster) - before, volumes(cluster) - before_volumes)


@contextmanager
def shared(
    kind: str, factory: pytest.TempPathFactory, start: Callable[[Path], AbstractContextManager[T]]
) -> Iterator[T]:
    """The shared stack of ``kind`` for one module (:func:`stack_for`), the module's namespaces
    deleted after it (:func:`module_namespaces`); ``start`` must give an object with a
    ``cluster``."""
    running: T = stack_for(kind, lambda: factory.mktemp(f"{kind}-stack"), start)
    with module_namespaces(running.cluster):  # type: ignore[attr-defined]
        yield running
