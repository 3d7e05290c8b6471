"""A faithful in-memory API server behind the :class:`~controlplane.kube.client.KubeClient`.

Owns :class:`FakeKube`, used by the controller, kubectl-plugin and router tests (and by
``canaryctl`` demos that need a cluster-shaped thing without a cluster). It models what those
callers rely on, the way kube-apiserver does it:

- a global, monotonically increasing ``metadata.resourceVersion`` set on every write, optimistic
  concurrency on ``replace`` / ``replace_status`` / ``patch`` / ``apply`` (``Conflict``);
- ``metadata.uid``, ``creationTimestamp``, ``generation`` (not on ConfigMaps, Secrets and the other
  :data:`NO_GENERATION_KINDS`; bumped on spec changes only, and when a
  deletion is requested); no-op writes change nothing and emit no event;
- the status subresource for registered kinds: the main resource ignores ``status`` and
  ``replace_status`` changes nothing else;
- JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a server-side-apply-like ``apply`` that
  remembers which fields each field manager applied;
- finalizers (``deletionTimestamp`` while any remain) and background garbage collection of
  dependents through ``ownerReferences``;
- served kinds, as discovery: built-in kinds and the CRDs the loopback test server installs
  (:data:`SERVED_KINDS`); any other apiVersion/kind is ``Unserved`` (a ``NotFound``) on every
  verb, and :meth:`FakeKube.serve` / :meth:`FakeKube.unserve` install or remove one;
- lists that report their ``resourceVersion`` and page (``limit`` / ``continue`` over a consistent
  snapshot; a token older than a compaction answers ``410 Gone``);
- watches from a ``resourceVersion`` over a bounded event log (``410 Gone`` when too old),
  many at once, ending on ``timeout_s`` or :meth:`FakeKube.drop_watches`; with bookmarks asked
  for, a BOOKMARK after the initial events (annotated ``k8s.io/initial-events-end``), one when
  the watch times out and one on :meth:`FakeKube.bookmark` (the server's periodic one);
- core/v1 Events with client-side aggregation (``count``);
- fault injection (:meth:`FakeKube.fail_next`) and a call log (:attr:`FakeKube.calls`);
- ``create`` of TokenReview and SubjectAccessReview answered like kube-apiserver: tokens
  registered with :meth:`FakeKube.add_token`, RBAC evaluated over the stored Roles and bindings
  (:mod:`controlplane.kube.fake_auth`; :meth:`FakeKube.grant` stores a role and its binding).

Everything is deep-copied through JSON in and out, so callers can never mutate stored state and
non-JSON values fail like they would on the wire. tests/kube/test_kube_contract.py runs the same
tests against this fake and a real kube-apiserver. What it does not model: docs/kube-adapter.md.
"""

from __future__ import annotations

import builtins
import copy
import json
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from controlplane.errors import Conflict, KubeError, NotFound
from controlplane.kube.client import (
    JsonPatch,
    Obj,
    Ref,
    WatchEvent,
    bookmark,
    event_object,
    expired,
    format_time,
    unserved,
)
from controlplane.kube.fake_auth import REVIEW_KINDS, Reviews, grant_objects
from controlplane.spec.models import API_VERSION, KIND

Key = tuple[str, str, str | None, str]
"""(apiVersion, kind, namespace or None when cluster-scoped, name)."""

Path = tuple[str, ...]
Fired = list[WatchEvent]
"""Watch events a write produced, handed to the listeners once the lock is released."""

STATUS_SUBRESOURCE_KINDS: frozenset[str] = frozenset(
    {
        "ModelCanary",
        "InferenceService",
        "LLMInferenceService",
        "InferenceGraph",
        "Deployment",
        "StatefulSet",
        "ReplicaSet",
        "DaemonSet",
        "Job",
        "Pod",
        "Service",
        "Namespace",
        "Node",
        "PersistentVolumeClaim",
        "HorizontalPodAutoscaler",
        "HTTPRoute",
        "Gateway",
        "VirtualService",
        "DestinationRule",
    }
)
"""Kinds served with a ``/status`` subresource unless the constructor is told otherwise."""

CLUSTER_SCOPED_KINDS: frozenset[str] = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "APIService",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "GatewayClass",
        "ClusterServingRuntime",
        "ClusterStorageContainer",
    }
)

_SERVED: dict[str, tuple[str, ...]] = {
    # built in (kube-apiserver v1.34)
    "v1": (
        "Binding",
        "ComponentStatus",
        "ConfigMap",
        "Endpoints",
        "Event",
        "LimitRange",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Pod",
        "PodTemplate",
        "ReplicationController",
        "ResourceQuota",
        "Secret",
        "Service",
        "ServiceAccount",
    ),
    "apps/v1": ("ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"),
    "batch/v1": ("CronJob", "Job"),
    "autoscaling/v1": ("HorizontalPodAutoscaler",),
    "autoscaling/v2": ("HorizontalPodAutoscaler",),
    "coordination.k8s.io/v1": ("Lease",),
    "events.k8s.io/v1": ("Event",),
    "networking.k8s.io/v1": ("Ingress", "IngressClass", "NetworkPolicy"),
    "policy/v1": ("PodDisruptionBudget",),
    "rbac.authorization.k8s.io/v1": ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"),
    "authentication.k8s.io/v1": ("SelfSubjectReview", "TokenReview"),
    "authorization.k8s.io/v1": (
        "LocalSubjectAccessReview",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
        "SubjectAccessReview",
    ),
    "apiextensions.k8s.io/v1": ("CustomResourceDefinition",),
    "apiregistration.k8s.io/v1": ("APIService",),
    "admissionregistration.k8s.io/v1": (
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ),
    "scheduling.k8s.io/v1": ("PriorityClass",),
    "storage.k8s.io/v1": ("StorageClass",),
    "discovery.k8s.io/v1": ("EndpointSlice",),
    # the CRDs the loopback test server installs (controlplane.local.upstream_crds)
    API_VERSION: (KIND,),
    "serving.kserve.io/v1beta1": ("InferenceService",),
    "serving.kserve.io/v1alpha1": (
        "ClusterServingRuntime",
        "InferenceGraph",
        "LLMInferenceService",
        "LLMInferenceServiceConfig",
        "ServingRuntime",
    ),
    "serving.kserve.io/v1alpha2": ("LLMInferenceService", "LLMInferenceServiceConfig"),
    "gateway.networking.k8s.io/v1": (
        "BackendTLSPolicy",
        "GRPCRoute",
        "Gateway",
        "GatewayClass",
        "HTTPRoute",
        "ReferenceGrant",
    ),
    "gateway.networking.k8s.io/v1beta1": ("Gateway", "GatewayClass", "HTTPRoute", "ReferenceGrant"),
    **{
        f"networking.istio.io/{version}": (
            "DestinationRule",
            "Gateway",
            "ServiceEntry",
            "Sidecar",
            "VirtualService",
            "WorkloadEntry",
            "WorkloadGroup",
        )
        for version in ("v1", "v1beta1", "v1alpha3")
    },
    "monitoring.coreos.com/v1": ("PodMonitor", "PrometheusRule", "ServiceMonitor"),
    # not on the loopback server: Argo CD's Application (read by controlplane.gitops)
    "argoproj.io/v1alpha1": ("Application",),
}

SERVED_KINDS: frozenset[tuple[str, str]] = frozenset(
    (api_version, kind) for api_version, kinds in _SERVED.items() for kind in kinds
)
"""(apiVersion, kind) pairs a FakeKube serves unless told otherwise: the built-in kinds of
kube-apiserver v1.34 the product and its tests touch, the product's ModelCanary, KServe v0.20,
Gateway API v1.5 (standard), Istio networking v1.27 and Prometheus Operator v0.85 (what the
loopback test server installs), and Argo CD's Application."""

NO_GENERATION_KINDS: frozenset[str] = frozenset(
    {
        "ConfigMap",
        "Secret",
        "Event",
        "Lease",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "Namespace",
        "Endpoints",
        "EndpointSlice",
        "Node",
        "LimitRange",
        "ResourceQuota",
        "PodTemplate",
        "ControllerRevision",
    }
)
"""Built-in kinds kube-apiserver keeps no ``metadata.generation`` for (custom resources always
have one)."""

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
"""The annotation on the BOOKMARK that ends a watch's initial (synthetic ADDED) events."""

METHODS: frozenset[str] = frozenset(
    {"get", "list", "create", "replace", "replace_status", "patch", "apply", "delete", "watch"}
    | {"event"}
)

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_SERVER_META = ("uid", "creationTimestamp", "generation", "deletionTimestamp")
_SERVER_META_ALL = (*_SERVER_META, "deletionGracePeriodSeconds", "resourceVersion")


@dataclass(frozen=True)
class Call:
    """One API call the fake received: the method and what it was about."""

    method: str
    target: str


@dataclass(frozen=True)
class _Entry:
    rv: int
    type: Literal["ADDED", "MODIFIED", "DELETED"]
    key: Key
    obj: Obj


class FakeKube:
    """In-memory API server; thread-safe. See the module docstring for what it models.

    ``now`` stamps ``creationTimestamp``, ``deletionTimestamp`` and Events (inject a test clock);
    ``history`` is how many watch events are kept before old resourceVersions answer 410 Gone.
    ``served_kinds`` are the (apiVersion, kind) pairs discovery would find; ``unserved_kinds``
    takes some away: ``"VirtualService"`` (every version) or ``"networking.istio.io/v1/
    VirtualService"``. ``page_size`` pages :meth:`list` like RealKube does (None: one page).
    """

    def __init__(
        self,
        *,
        now: Callable[[], float] = time.time,
        status_subresource_kinds: Iterable[str] = STATUS_SUBRESOURCE_KINDS,
        cluster_scoped_kinds: Iterable[str] = CLUSTER_SCOPED_KINDS,
        history: int = 1000,
        component: str = "canary-controller",
        served_kinds: Iterable[tuple[str, str]] = SERVED_KINDS,
        unserved_kinds: Iterable[str] = (),
        page_size: int | None = None,
    ) -> None:
        self._now = now
        self._served = set(served_kinds)
        for name in unserved_kinds:
            api_version, _, kind = name.rpartition("/")
            self._served = {
                (v, k) for v, k in self._served if not (k == kind and api_version in ("", v))
            }
        self._page_size = page_size
        self._continues: dict[str, tuple[int, builtins.list[Obj]]] = {}
        self._bookmark_epoch = 0
        self._status_kinds = set(status_subresource_kinds)
        self._cluster_kinds = set(cluster_scoped_kinds)
        self._history = history
        self._component = component
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._objects: dict[Key, Obj] = {}
        # Starts above 0: "0" in a watch means "any version" (current state first), as on a server.
        self._rv = 1
        self._log: deque[_Entry] = deque()
        self._compacted_rv = 1
        self._drop_epoch = 0
        self._open_watches = 0
        self._applied: dict[Key, dict[str, set[Path]]] = {}
        self._faults: dict[str, deque[BaseException]] = {}
        self._listeners: list[Callable[[WatchEvent], None]] = []
        self.calls: list[Call] = []
        self.counts: Counter[str] = Counter()
        self._reviews = Reviews()

    # --- test controls ---------------------------------------------------------------------------

    def register_status_subresource(self, kind: str) -> None:
        """Serve ``kind`` with a status subresource from now on."""
        with self._lock:
            self._status_kinds.add(kind)

    def has_status_subresource(self, kind: str) -> bool:
        with self._lock:
            return kind in self._status_kinds

    def serve(self, api_version: str, kind: str) -> None:
        """Serve ``api_version``/``kind`` from now on (as when its CRD is installed)."""
        with self._lock:
            self._served.add((api_version, kind))

    def unserve(self, api_version: str, kind: str) -> None:
        """Stop serving ``api_version``/``kind`` (its CRD removed); stored objects stay hidden."""
        with self._lock:
            self._served.discard((api_version, kind))

    def serves(self, api_version: str, kind: str) -> bool:
        with self._lock:
            return (api_version, kind) in self._served

    def bookmark(self) -> None:
        """Send a BOOKMARK with the current resourceVersion to every open watch that asked for
        bookmarks and has not been told that version yet (kube-apiserver does so about once a
        minute)."""
        with self._cond:
            self._bookmark_epoch += 1
            self._cond.notify_all()

    def fail_next(self, method: str, exc: BaseException, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` raise ``exc`` before touching any state."""
        if method not in METHODS:  # a mistake in a test, not a product error
            raise ValueError(f"unknown method {method!r}; one of {sorted(METHODS)}")
        with self._lock:
            self._faults.setdefault(method, deque()).extend([exc] * times)

    def drop_watches(self) -> None:
        """End every open watch (as when the API server restarts or a connection drops)."""
        with self._cond:
            self._drop_epoch += 1
            self._cond.notify_all()

    def compact(self) -> None:
        """Forget the event log: every resourceVersion before now answers 410 Gone to a watch."""
        with self._cond:
            self._log.clear()
            self._compacted_rv = self._rv
            self._cond.notify_all()

    def add_token(
        self, token: str, username: str, *, uid: str = "", groups: Iterable[str] = ()
    ) -> None:
        """Make TokenReviews of ``token`` authenticate as ``username`` in ``groups``."""
        with self._lock:
            self._reviews.add_token(token, username, uid=uid, groups=groups)

    def revoke_token(self, token: str) -> None:
        with self._lock:
            self._reviews.revoke_token(token)

    def grant(
        self,
        name: str,
        *,
        verbs: Iterable[str],
        resources: Iterable[str],
        api_groups: Iterable[str] = ("",),
        namespace: str | None = None,
        users: Iterable[str] = (),
        groups: Iterable[str] = (),
        service_accounts: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Store a Role + RoleBinding (or, without ``namespace``, a ClusterRole + binding)
        granting ``verbs`` on ``resources`` to the subjects; SubjectAccessReviews see them."""
        for obj in grant_objects(
            name,
            verbs=list(verbs),
            resources=list(resources),
            api_groups=list(api_groups),
            namespace=namespace,
            users=list(users),
            groups=list(groups),
            service_accounts=list(service_accounts),
        ):
            self.apply(obj, field_manager="test-rbac")

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()
            self.counts.clear()

    def count(self, method: str | None = None) -> int:
        """How many calls of ``method`` (of any method when None) were made."""
        with self._lock:
            return self.counts[method] if method else sum(self.counts.values())

    @property
    def resource_version(self) -> str:
        """The latest resourceVersion (what a list would report)."""
        with self._lock:
            return str(self._rv)

    @property
    def open_watches(self) -> int:
        with self._lock:
            return self._open_watches

    def add_listener(self, listener: Callable[[WatchEvent], None]) -> None:
        """Call ``listener`` after every write (outside the lock, on the writer's thread).

        This is how simulated controllers (:mod:`controlplane.kube.fake_kserve`) learn about
        changes without API calls that would show up in the call log.
        """
        with self._lock:
            self._listeners.append(listener)

    def peek(self, ref: Ref) -> Obj | None:
        """The stored object or None, without logging a call (for simulated controllers)."""
        with self._lock:
            stored = self._objects.get(
                self._key(ref.api_version, ref.kind, ref.namespace, ref.name)
            )
            return _copy(stored) if stored is not None else None

    def system_replace_status(self, ref: Ref, status: Obj) -> Obj:
        """Write ``status`` as another controller would: no call log, no injected faults."""
        fired: Fired = []
        with self._lock:
            key = self._key(ref.api_version, ref.kind, ref.namespace, ref.name)
            stored = self._require(key)
            new = _copy(stored)
            new["status"] = _copy(status)
            result = self._update(key, new, fired, status_only=True)
        self._notify(fired)
        return result

    # --- KubeClient ------------------------------------------------------------------------------

    def get(self, ref: Ref) -> Obj:
        self._begin("get", ref)
        with self._lock:
            self._check_served(ref.api_version, ref.kind)
            key = self._key(ref.api_version, ref.kind, ref.namespace, ref.name)
            return _clone(self._require(key))

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
    ) -> builtins.list[Obj]:
        return self.list_with_version(api_version, kind, namespace, label_selector)[0]

    def list_with_version(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
        *,
        limit: int | None = None,
    ) -> tuple[builtins.list[Obj], str]:
        size = limit or self._page_size
        items, version, token = self._page(api_version, kind, namespace, label_selector, size, None)
        while token is not None:
            more, _, token = self._page(api_version, kind, namespace, label_selector, size, token)
            items.extend(more)
        return items, version

    def _page(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        label_selector: Mapping[str, str] | None,
        limit: int | None,
        token: str | None,
    ) -> tuple[builtins.list[Obj], str, str | None]:
        """One list request: up to ``limit`` objects, the list's version, the next token."""
        about = f"{api_version}/{kind} ns={namespace} labels={label_selector}"
        self._begin("list", about if token is None else f"{about} continue")
        with self._lock:
            self._check_served(api_version, kind)
            if token is None:
                ns = None if kind in self._cluster_kinds else namespace
                found = [
                    obj
                    for key, obj in self._objects.items()
                    if key[0] == api_version
                    and key[1] == kind
                    and (ns is None or key[2] == ns)
                    and _labels_match(obj, label_selector)
                ]
                found.sort(
                    key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"])
                )
                snapshot, rest = self._rv, [_copy(o) for o in found]
            else:
                kept = self._continues.pop(token, None)
                if kept is None or kept[0] < self._compacted_rv:
                    raise expired(
                        "the provided continue parameter is too old to display a consistent "
                        "list result; start a new list without the continue parameter"
                    )
                snapshot, rest = kept
            following: str | None = None
            if limit is not None and len(rest) > limit:
                following = uuid.uuid4().hex
                self._continues[following] = (snapshot, rest[limit:])
                while len(self._continues) > 64:  # the server forgets old tokens too
                    del self._continues[next(iter(self._continues))]
                rest = rest[:limit]
            return rest, str(snapshot), following

    def create(self, obj: Obj) -> Obj:
        self._begin("create", obj)
        if isinstance(obj, dict) and (obj.get("apiVersion"), obj.get("kind")) in REVIEW_KINDS:
            with self._lock:  # create-only kinds: answered, never stored, no watch event
                review = _copy(obj)
                self._check_served(review["apiVersion"], review["kind"])
                return _clone(self._reviews.answer(review, list(self._objects.values())))
        fired: Fired = []
        with self._lock:
            result = self._create(obj, fired)
        self._notify(fired)
        return result

    def replace(self, obj: Obj) -> Obj:
        self._begin("replace", obj)
        fired: Fired = []
        with self._lock:
            new = self._normalize(obj)
            key = self._key_of(new)
            self._check_served(key[0], key[1])
            self._require(key)
            result = self._update(key, new, fired)
        self._notify(fired)
        return result

    def replace_status(self, obj: Obj) -> Obj:
        self._begin("replace_status", obj)
        fired: Fired = []
        with self._lock:
            given = self._normalize(obj)
            key = self._key_of(given)
            self._check_served(key[0], key[1])
            if key[1] not in self._status_kinds:
                raise NotFound(f"404 NotFound: {key[1]} has no status subresource")
            stored = self._require(key)
            new = _copy(stored)
            new["status"] = given.get("status")
            if new["status"] is None:
                del new["status"]
            rv = given["metadata"].get("resourceVersion")
            if rv is not None:
                new["metadata"]["resourceVersion"] = rv
            result = self._update(key, new, fired, status_only=True)
        self._notify(fired)
        return result

    def patch(
        self, ref: Ref, patch: Obj | JsonPatch, *, kind: Literal["merge", "json"] = "merge"
    ) -> Obj:
        self._begin("patch", ref)
        fired: Fired = []
        with self._lock:
            self._check_served(ref.api_version, ref.kind)
            key = self._key(ref.api_version, ref.kind, ref.namespace, ref.name)
            stored = self._require(key)
            body = _copy(patch)
            if kind == "merge":
                if not isinstance(body, dict):
                    raise KubeError("400 BadRequest: a merge patch must be a JSON object")
                patched = merge_patch(stored, body)
            elif kind == "json":
                patched = json_patch(stored, body)
            else:
                raise KubeError(f"415 UnsupportedMediaType: patch kind {kind!r}")
            if not isinstance(patched, dict):
                raise KubeError("422 Invalid: the patch does not leave an object")
            new = self._normalize(patched)
            if self._key_of(new) != key:
                raise KubeError("422 Invalid: a patch may not change apiVersion, kind or name")
            result = self._update(key, new, fired)
        self._notify(fired)
        return result

    def apply(self, obj: Obj, *, field_manager: str = "canary-controller") -> Obj:
        self._begin("apply", obj)
        fired: Fired = []
        with self._lock:
            given = self._normalize(obj)
            key = self._key_of(given)
            self._check_served(key[0], key[1])
            owned = _leaf_paths(self._applied_part(given))
            stored = self._objects.get(key)
            if stored is None:
                if given["metadata"].get("resourceVersion") is not None:
                    raise NotFound(f"404 NotFound: {_describe(key)} not found")
                result = self._create(given, fired)
            else:
                merged = _deep_merge(stored, self._applied_part(given))
                merged["metadata"]["resourceVersion"] = given["metadata"].get(
                    "resourceVersion", stored["metadata"]["resourceVersion"]
                )
                managers = self._applied.get(key, {})
                others: set[Path] = set()
                for manager, paths in managers.items():
                    if manager != field_manager:
                        others |= paths
                for path in managers.get(field_manager, set()) - owned - others:
                    _remove_path(merged, path)
                result = self._update(key, merged, fired)
            self._applied.setdefault(key, {})[field_manager] = owned
        self._notify(fired)
        return result

    def delete(self, ref: Ref) -> None:
        self._begin("delete", ref)
        fired: Fired = []
        with self._lock:
            self._check_served(ref.api_version, ref.kind)
            key = self._key(ref.api_version, ref.kind, ref.namespace, ref.name)
            self._require(key)
            self._delete(key, fired)
        self._notify(fired)

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
        self._begin("watch", f"{api_version}/{kind} ns={namespace} rv={resource_version}")
        ns = None if kind in self._cluster_kinds else namespace

        def matches(key: Key) -> bool:
            return key[0] == api_version and key[1] == kind and (ns is None or key[2] == ns)

        with self._lock:
            self._check_served(api_version, kind)
            initial: Fired = []
            if resource_version in (None, "", "0"):
                start = self._rv
                for key in sorted(self._objects, key=lambda k: (k[2] or "", k[3])):
                    if matches(key):
                        initial.append(WatchEvent("ADDED", _copy(self._objects[key])))
                if bookmarks:  # kube-apiserver ends the initial events so when asked for bookmarks
                    end = bookmark(kind, api_version, str(start))
                    end.object["metadata"]["annotations"] = {INITIAL_EVENTS_END: "true"}
                    initial.append(end)
            else:  # too old: 410 on the first read of the stream, as from kube-apiserver
                start = _parse_rv(resource_version)
            epoch = self._drop_epoch
            marks = self._bookmark_epoch if bookmarks else None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s

        def mark(version: int) -> WatchEvent:
            return bookmark(kind, api_version, str(version))

        return self._stream(matches, start, initial, deadline, epoch, marks, mark)

    def event(self, involved: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        self._begin("event", involved)
        fired: Fired = []
        with self._lock:
            now = self._now()
            ev = event_object(
                _copy(involved), reason, message, type_, now=now, component=self._component
            )
            namespace = ev["metadata"]["namespace"]
            for key, stored in self._objects.items():
                if (
                    key[:3] == ("v1", "Event", namespace)
                    and stored.get("involvedObject", {}).get("uid")
                    == ev["involvedObject"].get("uid")
                    and stored.get("involvedObject", {}).get("name")
                    == ev["involvedObject"].get("name")
                    and (stored.get("reason"), stored.get("message"), stored.get("type"))
                    == (reason, message, type_)
                ):
                    new = _copy(stored)
                    new["count"] = int(new.get("count", 1)) + 1
                    new["lastTimestamp"] = format_time(now)
                    self._update(key, new, fired)
                    break
            else:
                base = f"{ev['involvedObject'].get('name', 'event')}.{int(now * 1e9):x}"
                name, n = base, 0
                while ("v1", "Event", namespace, name) in self._objects:
                    n += 1
                    name = f"{base}{n}"
                ev["metadata"]["name"] = name
                self._create(ev, fired)
        self._notify(fired)

    # --- internals (the lock is held) ------------------------------------------------------------

    def _begin(self, method: str, about: object) -> None:
        with self._lock:
            self.calls.append(Call(method, _target(about)))
            self.counts[method] += 1
            pending = self._faults.get(method)
            exc = pending.popleft() if pending else None
        if exc is not None:
            raise exc

    def _check_served(self, api_version: str, kind: str) -> None:
        if (api_version, kind) not in self._served:
            raise unserved(api_version, kind)

    def _key(self, api_version: str, kind: str, namespace: str | None, name: str) -> Key:
        if kind in self._cluster_kinds:
            return (api_version, kind, None, name)
        if not namespace:
            raise KubeError(f"400 BadRequest: {kind} {name!r} is namespaced: give a namespace")
        return (api_version, kind, namespace, name)

    def _key_of(self, obj: Obj) -> Key:
        meta = obj["metadata"]
        return self._key(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])

    def _require(self, key: Key) -> Obj:
        stored = self._objects.get(key)
        if stored is None:
            raise NotFound(f"404 NotFound: {_describe(key)} not found")
        return stored

    def _normalize(self, obj: Obj, *, creating: bool = False) -> Obj:
        """A JSON deep copy of ``obj``, checked for what every write needs."""
        new = _copy(obj)
        if not isinstance(new, dict):
            raise KubeError("400 BadRequest: an object must be a JSON object")
        for field in ("apiVersion", "kind"):
            if not isinstance(new.get(field), str) or not new[field]:
                raise KubeError(f"400 BadRequest: object has no {field}")
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise KubeError("400 BadRequest: metadata must be an object")
        if creating and not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise KubeError(f"400 BadRequest: {new['kind']} has no metadata.name")
        if len(name) > 253 or not _NAME.match(name):
            raise KubeError(
                f"422 Invalid: {new['kind']} name {name!r} is not a lowercase RFC 1123 subdomain"
            )
        if new["kind"] in self._cluster_kinds:
            meta.pop("namespace", None)
        for field in ("labels", "annotations"):
            values = meta.get(field)
            if values is not None and (
                not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
            ):
                raise KubeError(f"422 Invalid: metadata.{field} values must be strings")
        finalizers = meta.get("finalizers")
        if finalizers is not None and (
            not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
        ):
            raise KubeError("422 Invalid: metadata.finalizers must be a list of strings")
        owners = meta.get("ownerReferences")
        if owners is not None and (
            not isinstance(owners, list)
            or not all(isinstance(o, dict) and o.get("uid") and o.get("name") for o in owners)
        ):
            raise KubeError("422 Invalid: every ownerReference needs a uid and a name")
        return new

    def _applied_part(self, obj: Obj) -> Obj:
        part = _clone(obj)
        meta = part["metadata"]
        for field in _SERVER_META_ALL:
            meta.pop(field, None)
        if obj["kind"] in self._status_kinds:
            part.pop("status", None)
        return part

    def _create(self, obj: Obj, fired: Fired) -> Obj:
        new = self._normalize(obj, creating=True)
        key = self._key_of(new)
        self._check_served(key[0], key[1])
        meta = new["metadata"]
        if key in self._objects:
            raise Conflict(f"409 AlreadyExists: {_describe(key)} already exists")
        if meta.get("resourceVersion"):
            raise KubeError("400 BadRequest: resourceVersion should not be set on create")
        if new["kind"] in self._status_kinds:
            new.pop("status", None)
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = format_time(self._now())
        if new["kind"] not in NO_GENERATION_KINDS:
            meta["generation"] = 1
        return self._commit(key, new, "ADDED", fired)

    def _update(self, key: Key, new: Obj, fired: Fired, *, status_only: bool = False) -> Obj:
        stored = self._objects[key]
        meta = new["metadata"]
        rv = meta.get("resourceVersion")
        if rv not in (None, "") and rv != stored["metadata"]["resourceVersion"]:
            raise Conflict(
                f"409 Conflict: the object has been modified; please apply your changes to the "
                f"latest version and try again ({_describe(key)}: resourceVersion {rv} is not "
                f"{stored['metadata']['resourceVersion']})"
            )
        old_meta = stored["metadata"]
        for field in _SERVER_META_ALL:
            meta.pop(field, None)
            if field in old_meta:
                meta[field] = old_meta[field]
        if key[1] in self._status_kinds and not status_only:
            if "status" in stored:
                new["status"] = _copy(stored["status"])
            else:
                new.pop("status", None)
        if "deletionTimestamp" in old_meta:
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise KubeError(
                    f"422 Forbidden: no new finalizers can be added if the object is being "
                    f"deleted (found {sorted(added)})"
                )
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        if new == stored:
            return _clone(stored)
        if "generation" in old_meta and self._spec_part(new) != self._spec_part(stored):
            meta["generation"] = int(old_meta["generation"]) + 1
        if "deletionTimestamp" in meta and not meta.get("finalizers"):
            self._objects[key] = new
            return self._remove(key, fired)
        return self._commit(key, new, "MODIFIED", fired)

    def _spec_part(self, obj: Obj) -> Obj:
        skip = {"apiVersion", "kind", "metadata"}
        if obj["kind"] in self._status_kinds:
            skip.add("status")
        return {k: v for k, v in obj.items() if k not in skip}

    def _delete(self, key: Key, fired: Fired) -> None:
        stored = self._objects[key]
        meta = stored["metadata"]
        if meta.get("finalizers"):
            if "deletionTimestamp" not in meta:
                new = _copy(stored)
                new["metadata"]["deletionTimestamp"] = format_time(self._now())
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                if "generation" in meta:
                    new["metadata"]["generation"] = int(meta["generation"]) + 1
                self._commit(key, new, "MODIFIED", fired)
            return
        self._remove(key, fired)

    def _remove(self, key: Key, fired: Fired) -> Obj:
        """Delete for good, then collect the garbage it leaves (background propagation)."""
        gone = self._commit(key, self._objects[key], "DELETED", fired)
        del self._objects[key]
        self._applied.pop(key, None)
        uid = gone["metadata"]["uid"]
        for dep_key, dep in list(self._objects.items()):
            owners = dep["metadata"].get("ownerReferences") or []
            if dep_key not in self._objects or not any(o.get("uid") == uid for o in owners):
                continue
            left = [o for o in owners if o.get("uid") != uid]
            if left:
                new = _copy(dep)
                new["metadata"]["ownerReferences"] = left
                self._commit(dep_key, new, "MODIFIED", fired)
            else:
                self._delete(dep_key, fired)
        return gone

    def _commit(
        self,
        key: Key,
        obj: Obj,
        type_: Literal["ADDED", "MODIFIED", "DELETED"],
        fired: Fired,
    ) -> Obj:
        self._rv += 1
        stored = _copy(obj)
        stored["metadata"]["resourceVersion"] = str(self._rv)
        if type_ != "DELETED":
            self._objects[key] = stored
        self._log.append(_Entry(self._rv, type_, key, stored))
        while len(self._log) > self._history:
            self._compacted_rv = self._log.popleft().rv
        fired.append(WatchEvent(type_, _copy(stored)))
        self._cond.notify_all()
        return _clone(stored)

    def _notify(self, fired: Fired) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for event in fired:
            for listener in listeners:
                listener(WatchEvent(event.type, _copy(event.object)))

    def _stream(
        self,
        matches: Callable[[Key], bool],
        start: int,
        initial: Fired,
        deadline: float | None,
        epoch: int,
        marks: int | None,
        mark: Callable[[int], WatchEvent],
    ) -> Iterator[WatchEvent]:
        """The events after ``start``; with ``marks`` (the bookmark epoch seen), bookmarks too.

        Like kube-apiserver's watch cache, a bookmark (on :meth:`bookmark` or at the timeout) is
        only sent when the version moved past what the watcher was opened at or last told."""
        with self._lock:
            self._open_watches += 1
            told = max(start, self._rv)
        try:
            yield from initial
            pos, done = start, False
            while not done:
                out: Fired = []
                with self._cond:
                    while True:
                        if self._drop_epoch != epoch:
                            return
                        if pos < self._compacted_rv:
                            raise expired(
                                f"too old resource version: {pos} ({self._compacted_rv + 1})"
                            )
                        batch = [e for e in self._log if e.rv > pos]
                        if batch:
                            pos = batch[-1].rv
                            out = [
                                WatchEvent(e.type, _copy(e.obj)) for e in batch if matches(e.key)
                            ]
                            if out:
                                told = max(told, int(out[-1].object["metadata"]["resourceVersion"]))
                        left = None if deadline is None else deadline - time.monotonic()
                        ticked = marks is not None and marks != self._bookmark_epoch
                        if ticked:
                            marks = self._bookmark_epoch
                        timed_out = left is not None and left <= 0
                        if (timed_out or ticked) and marks is not None and self._rv > told:
                            # the server's bookmark: periodic, and 2 s before a timeout
                            pos = told = max(pos, self._rv)
                            out.append(mark(pos))
                        if timed_out:
                            done = True
                            break
                        if out:
                            break
                        self._cond.wait(left)
                yield from out
        finally:
            with self._lock:
                self._open_watches -= 1


# --- pure helpers --------------------------------------------------------------------------------


def _copy(value: Any) -> Any:
    """A deep copy through JSON: what crossing the wire would do (and fail on)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise KubeError(f"400 BadRequest: object is not JSON-serializable: {exc}") from exc


def _clone(obj: Obj) -> Obj:
    result: Obj = _copy(obj)
    return result


def _target(about: object) -> str:
    if isinstance(about, Ref):
        return f"{about.kind}/{about.namespace}/{about.name}"
    if isinstance(about, dict):
        meta = about.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        return f"{about.get('kind')}/{meta.get('namespace')}/{meta.get('name')}"
    return str(about)


def _describe(key: Key) -> str:
    api_version, kind, namespace, name = key
    where = f"{namespace}/{name}" if namespace else name
    return f'{kind}.{api_version} "{where}"'


def _parse_rv(text: str | None) -> int:
    try:
        return int(text or "0")
    except ValueError as exc:
        raise KubeError(f"400 BadRequest: invalid resourceVersion {text!r}") from exc


def _labels_match(obj: Obj, selector: Mapping[str, str] | None) -> bool:
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test) applied to a copy of ``doc``.

    A failed ``test`` or a bad path raises :class:`KubeError` (the API server answers 422).
    """
    if not isinstance(operations, list):
        raise KubeError("400 BadRequest: a JSON patch must be a list of operations")
    result = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise KubeError(f"422 Invalid: bad JSON patch operation {op!r}")
        kind, path = op.get("op"), _pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise KubeError(f"422 Invalid: JSON patch {kind} at {op['path']} needs a value")
        if kind == "add":
            result = _ptr_add(result, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            result = _ptr_remove(result, path)[0]
        elif kind == "replace":
            result = _ptr_remove(result, path)[0]
            result = _ptr_add(result, path, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            if not isinstance(op.get("from"), str):
                raise KubeError(f"422 Invalid: JSON patch {kind} needs 'from'")
            source = _pointer(op["from"])
            if kind == "move":
                if path[: len(source)] == source and path != source:
                    raise KubeError("422 Invalid: cannot move a value into itself")
                result, value = _ptr_remove(result, source)
            else:
                value = copy.deepcopy(_ptr_get(result, source))
            result = _ptr_add(result, path, value)
        elif kind == "test":
            if _ptr_get(result, path) != op["value"]:
                raise KubeError(f"422 Invalid: JSON patch test failed at {op['path']}")
        else:
            raise KubeError(f"422 Invalid: unknown JSON patch op {kind!r}")
    return result


def _pointer(text: str) -> list[str]:
    if text == "":
        return []
    if not text.startswith("/"):
        raise KubeError(f"422 Invalid: JSON pointer {text!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in text[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit() or (token.startswith("0") and token != "0"):
        raise KubeError(f"422 Invalid: bad array index {token!r}")
    index = int(token)
    if index > len(container) or (not for_add and index == len(container)):
        raise KubeError(f"422 Invalid: array index {index} out of range")
    return index


def _ptr_parent(doc: Any, path: list[str]) -> Any:
    node = doc
    for token in path[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_add=False)]
        else:
            raise KubeError(f"422 Invalid: JSON patch path /{'/'.join(path)} does not exist")
    return node


def _ptr_get(doc: Any, path: list[str]) -> Any:
    if not path:
        return doc
    parent, token = _ptr_parent(doc, path), path[-1]
    if isinstance(parent, dict) and token in parent:
        return parent[token]
    if isinstance(parent, list):
        return parent[_index(parent, token, for_add=False)]
    raise KubeError(f"422 Invalid: JSON patch path /{'/'.join(path)} does not exist")


def _ptr_add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent, token = _ptr_parent(doc, path), path[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, for_add=True), value)
    else:
        raise KubeError(f"422 Invalid: JSON patch path /{'/'.join(path)} has no container")
    return doc


def _ptr_remove(doc: Any, path: list[str]) -> tuple[Any, Any]:
    if not path:
        raise KubeError("422 Invalid: cannot remove the whole document")
    parent, token = _ptr_parent(doc, path), path[-1]
    if isinstance(parent, dict) and token in parent:
        return doc, parent.pop(token)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, token, for_add=False))
    raise KubeError(f"422 Invalid: JSON patch path /{'/'.join(path)} does not exist")


def _deep_merge(base: Obj, over: Obj) -> Obj:
    """``over``'s fields laid onto a copy of ``base``; maps merge, lists and scalars replace."""
    result = copy.deepcopy(base)
    for name, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(name), dict):
            result[name] = _deep_merge(result[name], value)
        else:
            result[name] = copy.deepcopy(value)
    return result


def _leaf_paths(obj: Obj, prefix: Path = ()) -> set[Path]:
    """Paths of the fields an apply sets (lists are atomic, as with ``listType: atomic``)."""
    paths: set[Path] = set()
    for name, value in obj.items():
        path = (*prefix, name)
        if path in {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}:
            continue
        if isinstance(value, dict) and value:
            paths |= _leaf_paths(value, path)
        else:
            paths.add(path)
    return paths


def _remove_path(obj: Obj, path: Path) -> None:
    """Remove the field at ``path`` and the maps it leaves empty."""
    trail: list[tuple[Obj, str]] = []
    node: Any = obj
    for name in path[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(name), dict):
            return
        trail.append((node, name))
        node = node[name]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    for parent, name in reversed(trail):
        if parent[name] == {} and not (parent is obj and name == "metadata"):
            del parent[name]
