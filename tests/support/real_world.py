"""The controller world of :mod:`support.controller_world` on a real kube-apiserver.

:class:`RealWorld` is :class:`~support.controller_world.World` with the in-memory cluster replaced
by the loopback API server (``loopback`` fixture): every controller talks to it through its own
:class:`~controlplane.kube.real.RealKube` (a restart is a new client, as a new pod would have), and
:class:`~harness.kube.isvc_standin.IsvcStandin` plays KServe. The clock stays injected: the server
stores what the controller writes, the controller decides on the test's time.

:class:`ServerView` is the controller's client. It delegates to RealKube and changes one thing
for determinism: a watch asked for with ``timeout_s=0`` (the tests' ``Controller.poll(0.0)``)
would hold the connection for the server's one-second minimum, every pass. The view first lists
the canaries (the snapshot the watch must reach), then reads the REAL watch from the
controller's resourceVersion until every change of that snapshot has arrived (each listed object
at its listed resourceVersion, a DELETED event for each object gone) and closes it: the events
are the server's, and no pass waits on a timer. It also gives ``peek`` and ``_now`` (the world's
clock) to the wrappers of the fake-world tests.

:func:`reset_namespace` empties a namespace between tests (finalizers stripped: nothing else
would ever remove them on this server).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from controlplane.errors import KubeError, NotFound
from controlplane.kube.client import Obj, Ref, WatchEvent
from controlplane.kube.lease import LeaderElector
from controlplane.kube.real import RealKube
from controlplane.profiles.catalog import load_catalog
from controlplane.spec.models import API_VERSION, KIND
from harness.kube.isvc_standin import IsvcStandin
from support.controller_world import NS, Clock, World

LEASE_NS = "canary-system"
KINDS = (
    (API_VERSION, KIND),
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("serving.kserve.io/v1alpha2", "LLMInferenceService"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("v1", "Event"),
)


class WatchStalled(BaseException):
    """The real watch ended before delivering what the list showed (no ``except Exception``
    in the runner may swallow this)."""


class ServerView:
    """A controller's KubeClient on the real server (see the module docstring)."""

    def __init__(self, inner: RealKube, clock: Callable[[], float]) -> None:
        self.inner = inner
        self._now = clock
        self._known: dict[str | None, set[str]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def peek(self, ref: Ref) -> Obj | None:
        try:
            return self.inner.get(ref)
        except NotFound:
            return None

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        resource_version: str | None = None,
        timeout_s: float | None = None,
        *,
        bookmarks: bool = False,
    ) -> Iterator[WatchEvent]:
        if timeout_s is None or timeout_s > 0:
            return self.inner.watch(
                api_version, kind, namespace, resource_version, timeout_s, bookmarks=bookmarks
            )
        return self._caught_up(api_version, kind, namespace, resource_version, bookmarks)

    def _caught_up(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        since: str | None,
        bookmarks: bool,
    ) -> Iterator[WatchEvent]:
        known = self._known.setdefault(namespace, set())
        if since in (None, "0"):
            since = None
            known.clear()  # a replay: every object arrives as ADDED
        floor = int(since) if since is not None else 0
        want: dict[str, int] = {}
        listed: set[str] = set()
        for obj in self.inner.list(api_version, kind, namespace):
            meta = obj["metadata"]
            listed.add(meta["name"])
            if int(meta["resourceVersion"]) > floor:
                want[meta["name"]] = int(meta["resourceVersion"])
        gone = known - listed
        if not want and not gone:
            return
        stream = self.inner.watch(api_version, kind, namespace, since, 30.0, bookmarks=bookmarks)
        try:
            for event in stream:
                meta = event.object.get("metadata", {})
                name = meta.get("name", "")
                if event.type == "DELETED":
                    known.discard(name)
                    gone.discard(name)
                elif event.type != "BOOKMARK":
                    known.add(name)
                    if name in want and int(meta.get("resourceVersion", 0)) >= want[name]:
                        del want[name]
                yield event
                if not want and not gone:
                    return
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        raise WatchStalled(f"the watch ended before {sorted(want)} / deleted {sorted(gone)}")


def ensure_namespace(kube: RealKube, name: str) -> None:
    try:
        kube.get(Ref("v1", "Namespace", None, name))
    except NotFound:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def reset_namespace(kube: RealKube, namespace: str = NS) -> None:
    """Delete every object a controller test leaves in ``namespace`` (and the Leases)."""
    ensure_namespace(kube, namespace)
    ensure_namespace(kube, LEASE_NS)
    for api_version, kind in (*KINDS, ("coordination.k8s.io/v1", "Lease")):
        ns = LEASE_NS if kind == "Lease" else namespace
        try:
            items = kube.list(api_version, kind, ns)
        except KubeError:
            continue  # not served on this server
        for obj in items:
            ref = Ref.of(obj)
            try:
                if obj["metadata"].get("finalizers"):
                    kube.patch(ref, {"metadata": {"finalizers": None}})
                kube.delete(ref)
            except NotFound:
                continue
    leftovers = [
        Ref.of(o)
        for api_version, kind in KINDS
        for o in _list_or_empty(kube, api_version, kind, namespace)
    ]
    if leftovers:
        raise AssertionError(f"could not empty {namespace}: {leftovers}")


def _list_or_empty(kube: RealKube, api_version: str, kind: str, ns: str) -> list[Obj]:
    try:
        return kube.list(api_version, kind, ns)
    except KubeError:
        return []


@dataclass
class RealWorld(World):
    """:class:`World` on the API server whose admin kubeconfig is ``kubeconfig``."""

    kubeconfig: str = ""
    views: list[ServerView] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock = Clock(self.start)
        self.admin = RealKube.connect(kubeconfig=self.kubeconfig)
        reset_namespace(self.admin)
        self.kube = self.view()  # type: ignore[assignment]
        self.kserve = IsvcStandin(  # type: ignore[assignment]
            RealKube.connect(kubeconfig=self.kubeconfig),
            [NS],
            now=self.clock,
            ready_after_s=self.ready_after_s,
        )
        self.catalog = load_catalog()
        self.restarts = 0
        self.controller = self.new_controller()

    def view(self) -> ServerView:
        """A fresh client on the server, as a new controller process would open."""
        view = ServerView(RealKube.connect(kubeconfig=self.kubeconfig), self.clock)
        self.views.append(view)
        return view

    def new_controller(self, kube: Any = None, elector: LeaderElector | None = None) -> Any:
        if kube is None:
            view = self.view()
            kube = self.wrap(view) if self.wrap else view  # type: ignore[arg-type]
        return super().new_controller(kube=kube, elector=elector)

    def create(self, data: dict[str, Any]) -> Obj:
        return self.admin.create(copy.deepcopy(data))
