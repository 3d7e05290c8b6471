"""The real API server for the tests: one loopback etcd + kube-apiserver per pytest worker.

Session fixtures (registered in ``tests/conftest.py``): ``loopback`` starts the cluster of
:mod:`harness.cluster.kubeapi` — the code ``make kube-up`` runs — with the product's
ModelCanary CRD and every pinned upstream CRD (:mod:`harness.cluster.upstream_crds`);
``real_kube`` is a :class:`~controlplane.kube.real.RealKube` on its admin kubeconfig. Function
fixture ``real_ns`` gives each test a fresh namespace (left behind: the cluster is thrown away,
and without kube-controller-manager a namespace never finishes terminating).
``kserve_loopback`` is a second cluster that also runs workloads and the real KServe
(:mod:`harness.cluster.workloads`, :mod:`harness.cluster.kserve`): kube-controller-manager,
kube-scheduler, kwok's fake GPU nodes and KServe's controller manager with its webhooks.
``llmisvc_loopback`` is a third: workloads and KServe's LLMInferenceService controller
(:mod:`harness.cluster.llmisvc`) with its webhooks and presets, without the InferenceService
manager.

Those two run controllers that keep a part of a core busy while idle (about a tenth each on this
project's 2-core machine), so they live only while tests use them: each is *held*
(:func:`held_cluster`), started by the first test that asks for it and stopped after a module when
the next module's first test does not (:func:`pytest_runtest_protocol`), or at the session's end
(the register is :class:`support.held.Held`, which :mod:`support.shared_stack` holds its
real-node stack in too). Their modules share an ``xdist_group`` each (:data:`KSERVE_GROUP`,
:data:`LLMISVC_GROUP`), so one worker runs them one after another and starts each cluster once.

Tests that use them start programs and must be marked ``binary``. A missing binary or Go
toolchain fails them with the one line that says what to install (``make test`` builds the
binaries first, with ``make kube-tools``).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from controlplane.errors import ControlPlaneError
from controlplane.kube.client import Ref
from controlplane.kube.real import RealKube
from harness.cluster.kubeapi import LoopbackCluster, start_cluster
from harness.cluster.upstream_crds import all_crds, serving_crds
from support.held import Held
from support.prometheus import exposed_sum

_names = itertools.count(1)
T = TypeVar("T")


def running_cluster(
    workdir: Path,
    crds: Iterable[dict[str, Any]] = (),
    then: Callable[[LoopbackCluster], None] | None = None,
) -> Iterator[LoopbackCluster]:
    """The body of a cluster fixture: start one in ``workdir`` with ``crds`` (and ``then`` on
    it), yield it, stop it. A setup error fails the test with its one line, never a skip."""
    try:
        cluster = start_cluster(workdir, crds=crds)
    except ControlPlaneError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        if then is not None:
            then(cluster)
    except ControlPlaneError as exc:
        cluster.stop()
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    yield from running_cluster(tmp_path_factory.mktemp("kube"), all_crds())


def _workloads_and_kserve(cluster: LoopbackCluster) -> None:
    from harness.cluster.kserve import start_kserve
    from harness.cluster.workloads import start_workloads

    start_workloads(cluster)
    start_kserve(cluster)


KSERVE_GROUP = "kserve-loopback"
"""The ``xdist_group`` of the modules that use ``kserve_loopback``."""
LLMISVC_GROUP = "llmisvc-loopback"
"""The ``xdist_group`` of the modules that use ``llmisvc_loopback``."""

_clusters = Held()
"""The clusters held now, under their fixtures' names."""


def hold(fixture: str, body: Callable[[], Iterator[T]]) -> T:
    """What the fixture named ``fixture`` holds: the value ``body()`` (a fixture's generator)
    yielded the first time, kept until :func:`release` closes it (its ``finally`` runs)."""
    return _clusters.get(fixture, contextmanager(body))


def held_cluster(
    fixture: str,
    factory: pytest.TempPathFactory,
    crds: Callable[[], list[dict[str, Any]]],
    then: Callable[[LoopbackCluster], None],
) -> LoopbackCluster:
    """The running cluster held for the fixture named ``fixture`` (:func:`hold`), started with
    ``crds()`` and then ``then`` when none is."""
    folder = fixture.removesuffix("_loopback")
    return hold(fixture, lambda: running_cluster(factory.mktemp(folder), crds(), then))


def release(keep: Iterable[str] = ()) -> None:
    """Stop what is held for every fixture not in ``keep``."""
    _clusters.release(keep)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """After the last test of a module, when the next test, in another module, uses none of the
    held fixtures, stop them (a test's fixture closure, ``fixturenames``, names every fixture it
    needs, through other fixtures too). Never within a module: its module-scoped fixtures keep
    what they were given until pytest tears them down after its last test, as it has here."""
    try:
        return (yield)
    finally:
        after = getattr(nextitem, "module", None)
        if _clusters.keys() and nextitem is not None and after is not getattr(item, "module", None):
            release(getattr(nextitem, "fixturenames", ()))


def pytest_sessionfinish(session: pytest.Session) -> None:
    release()


@pytest.fixture(scope="module")
def kserve_loopback(tmp_path_factory: pytest.TempPathFactory) -> LoopbackCluster:
    """KServe's manager on a cluster without the LLMInferenceService CRDs (:func:`serving_crds`),
    as an install without KServe's ``kserve-llmisvc-crd`` chart."""
    return held_cluster("kserve_loopback", tmp_path_factory, serving_crds, _workloads_and_kserve)


def _workloads_and_llmisvc(cluster: LoopbackCluster) -> None:
    from harness.cluster.llmisvc import start_llmisvc
    from harness.cluster.workloads import start_workloads

    start_workloads(cluster)
    start_llmisvc(cluster)


@pytest.fixture(scope="module")
def llmisvc_loopback(tmp_path_factory: pytest.TempPathFactory) -> LoopbackCluster:
    """KServe's LLMInferenceService controller, whose manager will not start before its CRDs are
    served (``cmd/llmisvc/main.go`` of KServe v0.20.0 sets up a field indexer on the kind)."""
    return held_cluster("llmisvc_loopback", tmp_path_factory, all_crds, _workloads_and_llmisvc)


@pytest.fixture(scope="session")
def real_kube(loopback: LoopbackCluster) -> RealKube:
    return RealKube.connect(kubeconfig=str(loopback.kubeconfig))


def new_namespace(kube: RealKube, prefix: str = "t") -> str:
    name = f"{prefix}-{next(_names)}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def open_watches(cluster: LoopbackCluster, resource: str) -> int:
    """The WATCH requests on ``resource`` (plural, as in its URL) the API server holds open now,
    from its ``apiserver_longrunning_requests`` gauge: a test that must write while a watch
    is open waits for this to rise instead of guessing how long the open takes."""
    total = exposed_sum(
        cluster.text("/metrics"),
        "apiserver_longrunning_requests",
        lambda labels: labels.get("verb") == "WATCH" and labels.get("resource") == resource,
    )
    return int(total)


def write_once_watching(
    cluster: LoopbackCluster, resource: str, write: Callable[[], Any]
) -> tuple[threading.Thread, list[Any]]:
    """On a thread: wait until one more watch on ``resource`` is open than now, then ``write``
    (what it returned lands in the list). Start the watch after calling this."""
    before = open_watches(cluster, resource)
    done: list[Any] = []

    def run() -> None:
        deadline = time.monotonic() + 60  # bounds a hang only
        while open_watches(cluster, resource) <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        done.append(write())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


@pytest.fixture
def real_ns(real_kube: RealKube) -> str:
    return new_namespace(real_kube)


def gone(kube: RealKube, ref: Ref) -> bool:
    """Whether ``ref`` no longer exists on the server."""
    from controlplane.errors import NotFound

    try:
        kube.get(ref)
    except NotFound:
        return True
    return False
