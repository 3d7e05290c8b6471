"""The KubeClient contract: the same tests against FakeKube and a real kube-apiserver.

Every test takes ``backend``, parametrized over ``fake`` (a FakeKube, no program started) and
``real`` (RealKube on the loopback etcd + kube-apiserver of tests/support/realkube.py, marked
``binary``). What one implementation does, the other must do too; where the real server cannot
do what the fake does (no garbage collector without kube-controller-manager) the test says so
through :attr:`Backend.collects_garbage` and docs/kube-adapter.md lists the difference.

Needs of the real side: a second namespace (:meth:`Backend.other_namespace`) and compaction
(:meth:`Backend.compact`: etcd's compaction API at the current revision, which kube-apiserver
then answers with 410 for older versions of a custom resource).
"""

from __future__ import annotations

import copy
import http.server
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes.client import ApiClient, Configuration
from support.api import canary as api_canary

from controlplane.errors import Conflict, Expired, KubeError, NotFound, Unserved
from controlplane.kube.client import KubeClient, Obj, Ref, WatchEvent, event_version
from controlplane.kube.lease import LeaderElector
from controlplane.kube.real import RealKube
from controlplane.spec.models import API_VERSION, KIND
from harness.kube.fake import FakeKube
from harness.kube.fake_watch import INITIAL_EVENTS_END


@dataclass
class Backend:
    """One implementation under test, with the namespace the test works in."""

    name: str
    kube: KubeClient
    ns: str
    compact: Callable[[], None]
    other_namespace: Callable[[], str]
    collects_garbage: bool
    watch_s: float
    """How long a watch that waits for a bookmark lasts (the real one comes 2 s before)."""
    cluster: Any = None
    """The real server's cluster (its metrics say when a watch is open); None for the fake."""


def _etcd_url(loopback: Any) -> str:
    """The loopback cluster's etcd client URL, read from etcd's command line."""
    for proc in loopback.processes:
        for arg in proc.args:
            if str(arg).startswith("--listen-client-urls="):
                return str(arg).split("=", 1)[1]
    raise AssertionError("the loopback cluster has no etcd process")  # pragma: no cover


def compact_etcd(loopback: Any, kube: KubeClient, ns: str) -> None:
    """Compact etcd at its current revision (a write first, so there is one to read)."""
    probe = kube.create(configmap(ns, "compaction-mark"))
    revision = int(probe["metadata"]["resourceVersion"])
    body = json.dumps({"revision": revision, "physical": True}).encode()
    request = urllib.request.Request(
        _etcd_url(loopback) + "/v3/kv/compaction", data=body, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.binary)])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "fake":
        fake = FakeKube()
        others = iter(f"other-{n}" for n in range(1, 100))
        yield Backend("fake", fake, "contract", fake.compact, lambda: next(others), True, 0.3)
        return
    from support.realkube import new_namespace

    loopback = request.getfixturevalue("loopback")
    kube = request.getfixturevalue("real_kube")
    ns = request.getfixturevalue("real_ns")
    yield Backend(
        "real",
        kube,
        ns,
        lambda: compact_etcd(loopback, kube, ns),
        lambda: new_namespace(kube, "other"),
        False,
        WATCH_S,
        loopback,
    )


WATCH_S = 10.0
"""The real server's watches' timeout here. Its cache sends a watch's bookmark 2 s before the
watch's deadline, else about a minute on (k8s.io/apiserver v0.33.3,
``pkg/storage/cacher/cache_watcher.go``, ``nextBookmarkTime``): with 4 s, a write elsewhere that a
loaded machine made later than 2 s into the watch got no bookmark (seen under a full ``make
test``); with 10 s it has 8."""


def configmap(ns: str, name: str = "cfg", **data: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": dict(data) or {"k": "v"},
    }


def names(items: list[Obj]) -> list[str]:
    return [o["metadata"]["name"] for o in items]


def objects(events: list[WatchEvent]) -> list[tuple[str, str]]:
    return [(e.type, e.object["metadata"]["name"]) for e in events if e.type != "BOOKMARK"]


# --- CRUD and conflicts --------------------------------------------------------------------------


def test_a_merge_patch_carrying_a_resource_version_is_a_precondition(backend: Backend) -> None:
    """What ``kubectl canary``'s verbs rely on to record an intent with ``patch`` alone (no
    ``update``): the version in the patch must be the stored one, else 409 and nothing changes."""
    kube, ns = backend.kube, backend.ns
    stored = kube.create(configmap(ns, "precondition", a="1"))
    ref, version = Ref.of(stored), stored["metadata"]["resourceVersion"]
    patched = kube.patch(ref, {"metadata": {"resourceVersion": version}, "data": {"a": "2"}})
    assert patched["data"] == {"a": "2"}
    with pytest.raises(Conflict):
        kube.patch(ref, {"metadata": {"resourceVersion": version}, "data": {"a": "3"}})
    assert kube.get(ref)["data"] == {"a": "2"}
    kube.delete(ref)


def test_crud(backend: Backend) -> None:
    kube, ns = backend.kube, backend.ns
    stored = kube.create(configmap(ns, a="1"))
    ref = Ref.of(stored)
    meta = stored["metadata"]
    assert meta["uid"]
    assert meta["resourceVersion"]
    assert meta["creationTimestamp"]
    assert "generation" not in meta  # built-in kinds without a spec strategy have none
    assert kube.get(ref)["data"] == {"a": "1"}
    replaced = kube.replace({**stored, "data": {"a": "2"}})
    assert replaced["metadata"]["resourceVersion"] != meta["resourceVersion"]
    assert kube.patch(ref, {"data": {"b": "3"}})["data"] == {"a": "2", "b": "3"}
    ops = [{"op": "remove", "path": "/data/b"}]
    assert kube.patch(ref, ops, kind="json")["data"] == {"a": "2"}
    kube.apply(configmap(ns, "applied", x="1", y="2"), field_manager="contract")
    after = kube.apply(configmap(ns, "applied", x="1"), field_manager="contract")
    assert after["data"] == {"x": "1"}  # a field the manager stopped applying is removed
    assert names(kube.list("v1", "ConfigMap", ns)) == ["applied", "cfg"]
    kube.delete(ref)
    with pytest.raises(NotFound):
        kube.get(ref)
    with pytest.raises(NotFound):
        kube.delete(ref)


def test_conflicts(backend: Backend) -> None:
    kube, ns = backend.kube, backend.ns
    stored = kube.create(configmap(ns))
    with pytest.raises(Conflict, match="already exists"):
        kube.create(configmap(ns))
    kube.replace({**stored, "data": {"k": "2"}})
    with pytest.raises(Conflict, match="has been modified"):
        kube.replace({**stored, "data": {"k": "3"}})  # the version read before the write
    assert kube.get(Ref.of(stored))["data"] == {"k": "2"}


# --- status subresource and generation -----------------------------------------------------------


def test_status_subresource(backend: Backend) -> None:
    kube, ns = backend.kube, backend.ns
    given = api_canary("c1", namespace=ns, status={"phase": "Progressing"})
    stored = kube.create(given)
    assert "status" not in stored  # create ignores status
    same = kube.replace({**stored, "status": {"phase": "Paused"}})
    assert "status" not in same  # the main resource ignores status: a no-op write
    assert same["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    body = copy.deepcopy(same)
    body["status"] = {"phase": "Progressing"}
    body["spec"]["model"]["maxModelLen"] = 4096
    written = kube.replace_status(body)
    assert written["status"] == {"phase": "Progressing"}
    assert written["spec"] == stored["spec"]  # replace_status changes only status
    assert written["metadata"]["generation"] == 1
    with pytest.raises(Conflict):
        kube.replace_status({**body, "status": {"phase": "Paused"}})  # stale version
    with pytest.raises(NotFound, match="status subresource"):
        kube.replace_status(kube.create(configmap(ns)))


def test_generation_moves_on_spec_changes_only(backend: Backend) -> None:
    kube, ns = backend.kube, backend.ns
    stored = kube.create(api_canary("c1", namespace=ns))
    ref = Ref.of(stored)
    assert stored["metadata"]["generation"] == 1
    labelled = kube.patch(ref, {"metadata": {"labels": {"team": "ml"}}})
    assert labelled["metadata"]["generation"] == 1
    changed = kube.patch(ref, {"spec": {"model": {"maxModelLen": 4096}}})
    assert changed["metadata"]["generation"] == 2
    status = kube.replace_status({**changed, "status": {"phase": "Progressing"}})
    assert status["metadata"]["generation"] == 2


# --- finalizers, deletion, owner references ------------------------------------------------------


def test_finalizers_hold_deletion(backend: Backend) -> None:
    kube, ns = backend.kube, backend.ns
    given = api_canary(
        "c1", namespace=ns, metadata={"finalizers": ["canary.controlplane.dev/contract"]}
    )
    stored = kube.create(given)
    ref = Ref.of(stored)
    kube.delete(ref)
    held = kube.get(ref)
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["generation"] == 2  # a deletion request counts as a spec change
    with pytest.raises(KubeError, match="no new finalizers"):
        kube.patch(ref, {"metadata": {"finalizers": ["a.dev/x", "canary.controlplane.dev/c"]}})
    with pytest.raises(Conflict, match="already exists"):
        kube.create(
            api_canary("c1", namespace=ns)
        )  # the name stays taken while it is being deleted
    kube.patch(ref, {"metadata": {"finalizers": None}})
    with pytest.raises(NotFound):
        kube.get(ref)


def test_owner_references(backend: Backend) -> None:
    """The fake collects garbage in the delete; the loopback server has no garbage collector
    (it runs in kube-controller-manager), so a dependent there outlives its owner."""
    kube, ns = backend.kube, backend.ns
    owner = kube.create(configmap(ns, "owner"))
    dependent = configmap(ns, "dependent")
    dependent["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    ]
    kube.create(dependent)
    kube.delete(Ref.of(owner))
    left = names(kube.list("v1", "ConfigMap", ns))
    assert left == ([] if backend.collects_garbage else ["dependent"])


# --- list: version and pages ---------------------------------------------------------------------


def test_list_reports_its_version_and_follows_pages(backend: Backend) -> None:
    kube, ns = backend.kube, backend.ns
    for n in range(5):
        kube.create(configmap(ns, f"c{n}"))
    items, version = kube.list_with_version("v1", "ConfigMap", ns, limit=2)
    assert names(items) == ["c0", "c1", "c2", "c3", "c4"]  # every page, in order
    assert all(item["kind"] == "ConfigMap" for item in items)
    latest = max(int(item["metadata"]["resourceVersion"]) for item in items)
    assert int(version) >= latest
    kube.create(configmap(ns, "c5"))
    assert list(kube.watch("v1", "ConfigMap", ns, version, timeout_s=1)) != []  # c5, from there


# --- watch ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", [None, "0"])
def test_watch_starts_with_the_current_state(backend: Backend, start: str | None) -> None:
    kube, ns = backend.kube, backend.ns
    kube.create(configmap(ns, "b"))
    kube.create(configmap(ns, "a"))
    events = list(kube.watch("v1", "ConfigMap", ns, start, timeout_s=1, bookmarks=True))
    assert objects(events) == [("ADDED", "a"), ("ADDED", "b")]
    assert events[2].type == "BOOKMARK"  # the end of the initial events
    assert events[2].object["metadata"]["annotations"] == {INITIAL_EVENTS_END: "true"}
    assert int(event_version(events[2]) or 0) >= int(
        events[1].object["metadata"]["resourceVersion"]
    )


def test_watch_delivers_changes_in_order(backend: Backend) -> None:
    kube, ns = backend.kube, backend.ns
    _, version = kube.list_with_version("v1", "ConfigMap", ns)
    stored = kube.create(configmap(ns))
    kube.patch(Ref.of(stored), {"data": {"k": "2"}})
    kube.delete(Ref.of(stored))
    events = list(kube.watch("v1", "ConfigMap", ns, version, timeout_s=1))
    assert objects(events) == [("ADDED", "cfg"), ("MODIFIED", "cfg"), ("DELETED", "cfg")]
    versions = [int(e.object["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)


def during_watch(backend: Backend, write: Callable[[], Obj]) -> tuple[threading.Thread, list[Obj]]:
    """Run ``write`` once the watch about to be read is open (the fake says when; the real
    server's gauge of open watches shows it), on a thread; what it wrote lands in the list."""
    if backend.cluster is not None:
        from support.realkube import write_once_watching

        return write_once_watching(backend.cluster, "configmaps", write)
    done: list[Obj] = []

    def run() -> None:
        assert isinstance(backend.kube, FakeKube)
        for _ in range(10_000):
            if backend.kube.open_watches:
                break
            time.sleep(0.001)
        done.append(write())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


def test_a_quiet_watch_gets_a_bookmark_when_the_version_moves_elsewhere(backend: Backend) -> None:
    """A watch whose namespace is quiet still learns the newest version: the server sends a
    BOOKMARK (before the watch times out) once the kind's version moved during the watch."""
    kube, ns = backend.kube, backend.ns
    _, version = kube.list_with_version("v1", "ConfigMap", ns)
    elsewhere = backend.other_namespace()
    thread, wrote = during_watch(backend, lambda: kube.create(configmap(elsewhere, "noise")))
    events = list(
        kube.watch("v1", "ConfigMap", ns, version, timeout_s=backend.watch_s, bookmarks=True)
    )
    thread.join()
    assert events, "no bookmark"
    assert {e.type for e in events} == {"BOOKMARK"}
    assert int(event_version(events[-1]) or 0) >= int(wrote[0]["metadata"]["resourceVersion"])
    assert events[-1].object["kind"] == "ConfigMap"


def test_a_quiet_namespace_gets_nothing_but_bookmarks_and_none_unasked(backend: Backend) -> None:
    """When the server bookmarks is its choice (kube-apiserver: about once a minute, and before a
    watch's timeout, once the cache moved past the watcher's version, which a write elsewhere
    before the watch may already have done), so a caller may rely on neither their presence nor
    their absence; only that a quiet watch yields nothing else, that a bookmark never goes back,
    and that a watch that did not ask for bookmarks never gets one."""
    kube, ns = backend.kube, backend.ns
    elsewhere = backend.other_namespace()
    _, version = kube.list_with_version("v1", "ConfigMap", ns)
    kube.create(configmap(elsewhere, "before"))
    quiet = list(
        kube.watch("v1", "ConfigMap", ns, version, timeout_s=backend.watch_s, bookmarks=True)
    )
    assert {event.type for event in quiet} <= {"BOOKMARK"}
    assert all(int(event_version(event) or 0) >= int(version) for event in quiet)
    thread, _ = during_watch(backend, lambda: kube.create(configmap(elsewhere, "during")))
    assert list(kube.watch("v1", "ConfigMap", ns, version, timeout_s=backend.watch_s)) == []
    thread.join()


def test_a_compacted_version_is_410_and_a_relist_recovers(backend: Backend) -> None:
    kube, ns = backend.kube, backend.ns
    stored = kube.create(api_canary("c1", namespace=ns))
    kube.patch(Ref.of(stored), {"metadata": {"labels": {"n": "1"}}})
    backend.compact()
    # Older than anything kept: kube-apiserver's watch cache may still serve a version from
    # its own window after etcd compacted it, but never one before the window.
    with pytest.raises(Expired, match="410 Gone"):
        list(kube.watch(API_VERSION, KIND, ns, "1", timeout_s=2))

    items, version = kube.list_with_version(API_VERSION, KIND, ns)
    assert names(items) == ["c1"]
    kube.patch(Ref.of(stored), {"metadata": {"labels": {"n": "2"}}})
    events = list(kube.watch(API_VERSION, KIND, ns, version, timeout_s=1))
    assert objects(events) == [("MODIFIED", "c1")]


# --- kinds the server does not serve -------------------------------------------------------------

WIDGET = Ref("example.com/v1", "Widget", "default", "w")


def _widget(ns: str) -> Obj:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": ns},
    }


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda k, ns: k.get(Ref("example.com/v1", "Widget", ns, "w")), id="get"),
        pytest.param(lambda k, ns: k.delete(Ref("example.com/v1", "Widget", ns, "w")), id="delete"),
        pytest.param(lambda k, ns: k.list("example.com/v1", "Widget", ns), id="list"),
        pytest.param(lambda k, ns: k.create(_widget(ns)), id="create"),
        pytest.param(lambda k, ns: k.replace(_widget(ns)), id="replace"),
        pytest.param(lambda k, ns: k.replace_status(_widget(ns)), id="replace_status"),
        pytest.param(lambda k, ns: k.apply(_widget(ns)), id="apply"),
        pytest.param(
            lambda k, ns: k.patch(Ref("example.com/v1", "Widget", ns, "w"), {"x": 1}), id="patch"
        ),
        pytest.param(lambda k, ns: list(k.watch("example.com/v1", "Widget", ns)), id="watch"),
    ],
)
def test_an_unserved_kind_is_unserved_on_every_verb(
    backend: Backend, call: Callable[[KubeClient, str], object]
) -> None:
    with pytest.raises(Unserved, match=r"does not serve example\.com/v1/Widget") as caught:
        call(backend.kube, backend.ns)
    assert isinstance(caught.value, NotFound)  # a get or delete of it reads as "not there"


def test_discovery_tells_a_served_kind_from_one_that_is_not(backend: Backend) -> None:
    """``serves`` asks discovery alone (the controller's check for KEDA before it applies a
    variant with ``autoscaling.queue``), on both backends alike."""
    assert backend.kube.serves(API_VERSION, KIND)
    assert backend.kube.serves("v1", "ConfigMap")
    assert not backend.kube.serves("keda.sh/v1alpha1", "ScaledObject")  # only KServe's have it
    assert not backend.kube.serves("example.com/v1", "Widget")
    assert not backend.kube.serves("v1", "Widget")  # a served group, an unknown kind


# --- the Service proxy ---------------------------------------------------------------------------


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers ``GET /echo?...`` with its path and query as JSON, ``/fail`` with a 500."""

    def do_GET(self) -> None:
        if self.path.startswith("/fail"):
            self.send_error(500, "broken on purpose")
            return
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def host_address() -> str:
    """This machine's address on its route out: what kube-apiserver may proxy to (it refuses
    loopback and link-local endpoints)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: the route's source is chosen
        return str(probe.getsockname()[0])


@pytest.fixture
def echo() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def proxied_service(backend: Backend, name: str, port: int | None) -> None:
    """A Service ``name`` with port 8081 whose one endpoint is ``port`` on this machine (None:
    ready endpoint): on the fake the endpoint named; on the real server a selectorless Service, a
    Pod whose status (no kubelet writes it here) gives it this machine's address, and the
    Endpoints that name that Pod (kube-apiserver proxies only to an address of the Pod an
    endpoint's ``targetRef`` names: ``isValidAddress`` in
    ``pkg/registry/core/service/storage/storage.go``, Kubernetes v1.34)."""
    kube, ns = backend.kube, backend.ns
    ports = [{"name": "http", "port": 8081, "protocol": "TCP"}]
    meta = {"name": name, "namespace": ns}
    kube.create({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"ports": ports}})
    if port is None:  # what the endpoints controller writes for a Service with no ready pod
        if not isinstance(kube, FakeKube):
            kube.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": meta})
        return
    if isinstance(kube, FakeKube):
        kube.serve_service(ns, name, 8081, f"http://127.0.0.1:{port}")
        return
    address = host_address()
    containers = [{"name": "echo", "image": "echo:0"}]
    pod = kube.create(
        {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": containers}}
    )
    ips = {"phase": "Running", "podIP": address, "podIPs": [{"ip": address}]}
    kube.replace_status({**pod, "status": ips})
    target = {"kind": "Pod", "name": name, "namespace": ns, "uid": pod["metadata"]["uid"]}
    subset = {
        "addresses": [{"ip": address, "targetRef": target}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }
    kube.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": meta, "subsets": [subset]})


def test_the_service_proxy_reaches_an_endpoint_with_its_query(backend: Backend, echo: int) -> None:
    proxied_service(backend, "echo", echo)
    body = backend.kube.service_get(
        backend.ns, "echo", 8081, "/echo", {"after": "3", "limit": "10"}, 30
    )
    assert json.loads(body) == {"path": "/echo?after=3&limit=10"}


def test_the_service_proxy_says_what_went_wrong(backend: Backend, echo: int) -> None:
    kube, ns = backend.kube, backend.ns
    with pytest.raises(NotFound):
        kube.service_get(ns, "nowhere", 8081, "/echo", {}, 30)
    proxied_service(backend, "failing", echo)
    with pytest.raises(KubeError, match=r"^500"):
        kube.service_get(ns, "failing", 8081, "/fail", {}, 30)
    proxied_service(backend, "empty", None)
    with pytest.raises(KubeError, match=r"^503") as raised:
        kube.service_get(ns, "empty", 8081, "/echo", {}, 30)
    assert "no endpoints available" in str(raised.value)


# --- RealKube only: client timeouts, rediscovery -------------------------------------------------


@pytest.fixture
def hung_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """A loopback port that accepts connections and never answers a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda k: k.get(Ref("v1", "ConfigMap", "ns", "x")), id="discovery"),
        pytest.param(lambda k: k.list("v1", "ConfigMap", "ns"), id="list"),
        pytest.param(lambda k: list(k.watch("v1", "ConfigMap", "ns", "5", 1)), id="watch"),
    ],
)
def test_a_hung_server_fails_after_the_client_timeout(
    hung_server: tuple[str, list[socket.socket]],
    tmp_path: Any,
    call: Callable[[RealKube], object],
) -> None:
    """Every request has a client-side timeout: discovery, ordinary calls and watches (a read
    timeout a little longer than the watch's own ``timeoutSeconds``). A read that timed out is
    not tried again: it may have reached the server."""
    url, accepted = hung_server
    config = Configuration(host=url)
    config.retries = 0  # as RealKube.connect sets it
    api = ApiClient(config)
    kube = RealKube(
        api,
        discovery_cache=str(tmp_path / "d.json"),
        connect_timeout_s=1.0,
        request_timeout_s=0.3,
        watch_slack_s=0.3,
    )
    failed: list[BaseException] = []

    def run() -> None:
        try:
            call(kube)
        except BaseException as exc:  # what the call raised, inspected below
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)  # a guard against hanging the suite, not a timing assertion
    api.close()
    assert not thread.is_alive(), "the request never timed out"
    assert len(failed) == 1
    assert type(failed[0]) is KubeError
    assert "timed out" in str(failed[0]).lower()
    # it did connect, once: the read is what timed out, and a read is not tried again
    assert len(accepted) == 1


def _crd(group: str) -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {
            "group": group,
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@pytest.mark.binary
def test_a_crd_installed_after_a_miss_is_found_after_rediscover_after_s(
    loopback: Any, real_kube: RealKube, real_ns: str
) -> None:
    """A miss is remembered for ``rediscover_after_s`` (no discovery per call), then discovery
    runs again and finds the new kind; a CRD removed later is Unserved again."""
    now = [0.0]
    kube = RealKube.connect(kubeconfig=str(loopback.kubeconfig))
    kube = RealKube(kube._api_client, monotonic=lambda: now[0], rediscover_after_s=30.0)
    group = f"{real_ns}.contract.example.com"
    gadget = Ref(f"{group}/v1", "Gadget", real_ns, "g")
    with pytest.raises(Unserved):
        kube.get(gadget)
    assert kube.discoveries == 1
    crd = real_kube.create(_crd(group))
    for _ in range(300):  # until the CRD is Established (the API server's own controller)
        conditions = real_kube.get(Ref.of(crd)).get("status", {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            break
        time.sleep(0.1)
    with pytest.raises(Unserved):
        kube.get(gadget)  # remembered: no discovery until rediscover_after_s has passed
    assert kube.discoveries == 1
    now[0] += 31.0
    with pytest.raises(NotFound) as caught:
        kube.get(gadget)
    assert type(caught.value) is NotFound  # served now: the object is what is missing
    assert kube.discoveries == 2
    kube.create({"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": gadget_meta(gadget)})
    assert kube.get(gadget)["metadata"]["name"] == "g"
    real_kube.delete(Ref.of(crd))
    for _ in range(300):  # until the API server stops serving it
        try:
            kube.list(f"{group}/v1", "Gadget", real_ns)
        except Unserved:
            break
        time.sleep(0.1)
    with pytest.raises(Unserved):
        kube.get(gadget)


def gadget_meta(ref: Ref) -> Obj:
    return {"name": ref.name, "namespace": ref.namespace}


# --- events and leases (folded in from the former tests/e2e/test_kube_real.py) ------------------


def test_event_is_recorded_about_the_object(backend: Backend) -> None:
    kube, ns = backend.kube, backend.ns
    stored = kube.create(configmap(ns))
    kube.event(stored, "Contract", "hello", "Warning")
    events = [e for e in kube.list("v1", "Event", ns) if e["reason"] == "Contract"]
    assert len(events) == 1
    assert events[0]["involvedObject"]["uid"] == stored["metadata"]["uid"]
    assert (events[0]["type"], events[0]["message"]) == ("Warning", "hello")


def test_an_unnamed_event_told_again_is_counted_not_added(backend: Backend) -> None:
    """Unnamed Events aggregate as client-go's EventCorrelator does, under a name derived from
    the event (``aggregate_name``): the same event about the same object twice is one Event of
    count 2; another message is another Event."""
    kube, ns = backend.kube, backend.ns
    stored = kube.create(configmap(ns))
    assert kube.event(stored, "Again", "git fetch failed", "Warning") is True
    assert kube.event(stored, "Again", "git fetch failed", "Warning") is True
    assert kube.event(stored, "Again", "another failure", "Warning") is True
    events = {e["message"]: e for e in kube.list("v1", "Event", ns) if e["reason"] == "Again"}
    assert sorted(events) == ["another failure", "git fetch failed"]
    assert events["git fetch failed"]["count"] == 2
    assert events["another failure"]["count"] == 1
    assert events["git fetch failed"]["metadata"]["name"].startswith(stored["metadata"]["name"])


def test_a_named_event_is_written_once(backend: Backend) -> None:
    """An Event under a deterministic name: the first call creates it, the second finds the
    name taken (AlreadyExists) and writes nothing; what the event sink relies on to tell a
    history entry once across controller restarts."""
    kube, ns = backend.kube, backend.ns
    stored = kube.create(configmap(ns))
    name = f"{stored['metadata']['name']}.0123456789abcdef0123456789abcdef"
    assert kube.event(stored, "Named", "first", "Normal", name=name) is True
    assert kube.event(stored, "Named", "second", "Warning", name=name) is False
    events = [e for e in kube.list("v1", "Event", ns) if e["reason"] == "Named"]
    assert [(e["metadata"]["name"], e["message"]) for e in events] == [(name, "first")]


def test_leader_election(backend: Backend) -> None:
    clock = [1000.0]
    a = LeaderElector(backend.kube, backend.ns, "contract", "a", 15, lambda: clock[0])
    b = LeaderElector(backend.kube, backend.ns, "contract", "b", 15, lambda: clock[0])
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert a.release()
    assert b.try_acquire_or_renew()
