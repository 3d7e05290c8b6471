"""A faithful in-memory API server behind the :class:`~controlplane.kube.client.KubeClient`.

Owns :class:`FakeKube`, used by the controller, kubectl-plugin and router tests (and by
``canaryctl`` demos that need a cluster-shaped thing without a cluster): the object store and its
verbs (create, get, list with pages, replace, the status subresource, patch, apply, delete with
finalizers and garbage collection, Events), the call log and fault injection. Its other halves
are modules of their own: the kinds it serves (:mod:`harness.kube.fake_kinds`), what a
stored object is and the checks every write passes (:mod:`harness.kube.fake_objects`), the
patch formats (:mod:`harness.kube.fake_patch`), the resourceVersion clock and the watch
event log (:mod:`harness.kube.fake_watch`), TokenReview and SubjectAccessReview
(:mod:`harness.kube.fake_auth`); a fake KServe controller runs on it
(:mod:`harness.kube.fake_kserve`). It models what its callers rely on, the way
kube-apiserver does it:

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
- the Service proxy (:meth:`FakeKube.service_get`, :mod:`harness.kube.fake_proxy`) to the HTTP
  server a test names as a Service port's endpoint (:meth:`FakeKube.serve_service`);
- fault injection (:meth:`FakeKube.fail_next`) and a call log (:attr:`FakeKube.calls`);
- the name fence of :mod:`controlplane.kube.client` on every verb, as RealKube: a name with
  ``/``, ``..``, ``?``, ``#`` or ``%``, or a namespace that is no DNS-1123 label, is
  :class:`~controlplane.errors.InvalidName` before the call is logged or anything is read (the
  real adapter sends no request: the fake cannot see a path traversal, so it refuses the same);
- ``create`` of TokenReview and SubjectAccessReview answered like kube-apiserver: tokens
  registered with :meth:`FakeKube.add_token`, RBAC evaluated over the stored Roles and bindings
  (:mod:`harness.kube.fake_auth`; :meth:`FakeKube.grant` stores a role and its binding).

Everything is deep-copied through JSON in and out, so callers can never mutate stored state and
non-JSON values fail like they would on the wire. tests/kube/test_kube_contract.py runs the same
tests against this fake and a real kube-apiserver. What it does not model: docs/kube-adapter.md.
"""

from __future__ import annotations

import builtins
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from controlplane.errors import Conflict, KubeError, NotFound
from controlplane.kube.client import (
    JsonPatch,
    Obj,
    Ref,
    WatchEvent,
    aggregate_name,
    bookmark,
    check_event,
    check_object,
    check_ref,
    event_object,
    expired,
    unserved,
)
from controlplane.spec.name_checks import check_ref_names
from controlplane.status.times import format_time
from harness.kube.fake_auth import REVIEW_KINDS, Reviews, grant_objects
from harness.kube.fake_kinds import (
    CLUSTER_SCOPED_KINDS,
    NO_GENERATION_KINDS,
    SERVED_KINDS,
    STATUS_SUBRESOURCE_KINDS,
)
from harness.kube.fake_objects import (
    SERVER_META_ALL,
    Key,
    clone,
    describe,
    normalize,
    wire_copy,
)
from harness.kube.fake_patch import (
    FieldPath,
    deep_merge,
    json_patch,
    leaf_paths,
    merge_patch,
    remove_path,
)
from harness.kube.fake_proxy import proxy_get
from harness.kube.fake_watch import (
    INITIAL_EVENTS_END,
    Entry,
    EventLog,
    Fired,
    WriteType,
    parse_rv,
)

METHODS: frozenset[str] = frozenset(
    {"get", "list", "create", "replace", "replace_status", "patch", "apply", "delete", "watch"}
    | {"event"}
)


@dataclass(frozen=True)
class Call:
    """One API call the fake received: the method and what it was about."""

    method: str
    target: str


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
        self._status_kinds = set(status_subresource_kinds)
        self._cluster_kinds = set(cluster_scoped_kinds)
        self._component = component
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._events = EventLog(self._cond, history)
        self._objects: dict[Key, Obj] = {}
        self._applied: dict[Key, dict[str, set[FieldPath]]] = {}
        self._faults: dict[str, deque[BaseException]] = {}
        self._listeners: list[Callable[[WatchEvent], None]] = []
        self._endpoints: dict[tuple[str, str, int], str | None] = {}
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
            self._events.tick_bookmark()

    def fail_next(self, method: str, exc: BaseException, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` raise ``exc`` before touching any state."""
        if method not in METHODS:  # a mistake in a test, not a product error
            raise ValueError(f"unknown method {method!r}; one of {sorted(METHODS)}")
        with self._lock:
            self._faults.setdefault(method, deque()).extend([exc] * times)

    def drop_watches(self) -> None:
        """End every open watch (as when the API server restarts or a connection drops)."""
        with self._cond:
            self._events.drop()

    def compact(self) -> None:
        """Forget the event log: every resourceVersion before now answers 410 Gone to a watch."""
        with self._cond:
            self._events.compact()

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
            return str(self._events.rv)

    @property
    def open_watches(self) -> int:
        with self._lock:
            return self._events.open_watches

    def add_listener(self, listener: Callable[[WatchEvent], None]) -> None:
        """Call ``listener`` after every write (outside the lock, on the writer's thread).

        This is how simulated controllers (:mod:`harness.kube.fake_kserve`) learn about
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
            return wire_copy(stored) if stored is not None else None

    def system_replace_status(self, ref: Ref, status: Obj) -> Obj:
        """Write ``status`` as another controller would: no call log, no injected faults."""
        fired: Fired = []
        with self._lock:
            key = self._key(ref.api_version, ref.kind, ref.namespace, ref.name)
            stored = self._require(key)
            new = wire_copy(stored)
            new["status"] = wire_copy(status)
            result = self._update(key, new, fired, status_only=True)
        self._notify(fired)
        return result

    # --- KubeClient ------------------------------------------------------------------------------

    def get(self, ref: Ref) -> Obj:
        check_ref(ref)
        self._begin("get", ref)
        with self._lock:
            self._check_served(ref.api_version, ref.kind)
            key = self._key(ref.api_version, ref.kind, ref.namespace, ref.name)
            return clone(self._require(key))

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
        check_ref_names(namespace, None)
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
                snapshot, rest = self._events.rv, [wire_copy(o) for o in found]
            else:
                kept = self._continues.pop(token, None)
                if kept is None or kept[0] < self._events.compacted_rv:
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
        check_object(obj, creating=True)
        self._begin("create", obj)
        if isinstance(obj, dict) and (obj.get("apiVersion"), obj.get("kind")) in REVIEW_KINDS:
            with self._lock:  # create-only kinds: answered, never stored, no watch event
                review = wire_copy(obj)
                self._check_served(review["apiVersion"], review["kind"])
                return clone(self._reviews.answer(review, list(self._objects.values())))
        fired: Fired = []
        with self._lock:
            result = self._create(obj, fired)
        self._notify(fired)
        return result

    def replace(self, obj: Obj) -> Obj:
        check_object(obj)
        self._begin("replace", obj)
        fired: Fired = []
        with self._lock:
            new = normalize(obj, self._cluster_kinds)
            key = self._key_of(new)
            self._check_served(key[0], key[1])
            self._require(key)
            result = self._update(key, new, fired)
        self._notify(fired)
        return result

    def replace_status(self, obj: Obj) -> Obj:
        check_object(obj)
        self._begin("replace_status", obj)
        fired: Fired = []
        with self._lock:
            given = normalize(obj, self._cluster_kinds)
            key = self._key_of(given)
            self._check_served(key[0], key[1])
            if key[1] not in self._status_kinds:
                raise NotFound(f"404 NotFound: {key[1]} has no status subresource")
            stored = self._require(key)
            new = wire_copy(stored)
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
        check_ref(ref)
        self._begin("patch", ref)
        fired: Fired = []
        with self._lock:
            self._check_served(ref.api_version, ref.kind)
            key = self._key(ref.api_version, ref.kind, ref.namespace, ref.name)
            stored = self._require(key)
            body = wire_copy(patch)
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
            new = normalize(patched, self._cluster_kinds)
            if self._key_of(new) != key:
                raise KubeError("422 Invalid: a patch may not change apiVersion, kind or name")
            result = self._update(key, new, fired)
        self._notify(fired)
        return result

    def apply(self, obj: Obj, *, field_manager: str = "canary-controller") -> Obj:
        check_object(obj)
        self._begin("apply", obj)
        fired: Fired = []
        with self._lock:
            given = normalize(obj, self._cluster_kinds)
            key = self._key_of(given)
            self._check_served(key[0], key[1])
            owned = leaf_paths(self._applied_part(given))
            stored = self._objects.get(key)
            if stored is None:
                if given["metadata"].get("resourceVersion") is not None:
                    raise NotFound(f"404 NotFound: {describe(key)} not found")
                result = self._create(given, fired)
            else:
                merged = deep_merge(stored, self._applied_part(given))
                merged["metadata"]["resourceVersion"] = given["metadata"].get(
                    "resourceVersion", stored["metadata"]["resourceVersion"]
                )
                managers = self._applied.get(key, {})
                others: set[FieldPath] = set()
                for manager, paths in managers.items():
                    if manager != field_manager:
                        others |= paths
                for path in managers.get(field_manager, set()) - owned - others:
                    remove_path(merged, path)
                result = self._update(key, merged, fired)
            self._applied.setdefault(key, {})[field_manager] = owned
        self._notify(fired)
        return result

    def delete(self, ref: Ref) -> None:
        check_ref(ref)
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
        check_ref_names(namespace, None)
        self._begin("watch", f"{api_version}/{kind} ns={namespace} rv={resource_version}")
        ns = None if kind in self._cluster_kinds else namespace

        def matches(key: Key) -> bool:
            return key[0] == api_version and key[1] == kind and (ns is None or key[2] == ns)

        with self._lock:
            self._check_served(api_version, kind)
            initial: Fired = []
            if resource_version in (None, "", "0"):
                start = self._events.rv
                for key in sorted(self._objects, key=lambda k: (k[2] or "", k[3])):
                    if matches(key):
                        initial.append(WatchEvent("ADDED", wire_copy(self._objects[key])))
                if bookmarks:  # kube-apiserver ends the initial events so when asked for bookmarks
                    end = bookmark(kind, api_version, str(start))
                    end.object["metadata"]["annotations"] = {INITIAL_EVENTS_END: "true"}
                    initial.append(end)
            else:  # too old: 410 on the first read of the stream, as from kube-apiserver
                start = parse_rv(resource_version)
            epoch = self._events.drop_epoch
            marks = self._events.bookmark_epoch if bookmarks else None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s

        def mark(version: int) -> WatchEvent:
            return bookmark(kind, api_version, str(version))

        return self._events.stream(matches, start, initial, deadline, epoch, marks, mark)

    def event(
        self,
        involved: Obj,
        reason: str,
        message: str,
        type_: str = "Normal",
        *,
        name: str | None = None,
    ) -> bool:
        now = self._now()
        ev = event_object(
            wire_copy(involved), reason, message, type_, now=now, component=self._component
        )
        check_event(ev, name)  # as RealKube: before anything is asked
        self._begin("event", involved)
        fired: Fired = []
        with self._lock:
            namespace = ev["metadata"]["namespace"]
            if name is not None:  # as the API server: the name is taken, or it is created
                if ("v1", "Event", namespace, name) in self._objects:
                    return False
                ev["metadata"]["name"] = name
                self._create(ev, fired)
            else:
                self._aggregate_event(ev, now, fired)
        self._notify(fired)
        return True

    def _aggregate_event(self, ev: Obj, now: float, fired: Fired) -> None:
        """An unnamed Event, as the real client records it: under :func:`aggregate_name`,
        created, or counted on the stored one of that name."""
        name = aggregate_name(ev)
        key = ("v1", "Event", ev["metadata"]["namespace"], name)
        stored = self._objects.get(key)
        if stored is None:
            ev["metadata"]["name"] = name
            self._create(ev, fired)
            return
        new = wire_copy(stored)
        new["count"] = int(new.get("count") or 1) + 1
        new["lastTimestamp"] = format_time(now)
        self._update(key, new, fired)

    # --- the Service proxy ------------------------------------------------------------------------

    def serve_service(self, namespace: str, service: str, port: int, base_url: str | None) -> None:
        """Where :meth:`service_get` reaches ``service``'s ``port``: the HTTP server at
        ``base_url``, as a ready pod's endpoint would be (None: no ready endpoint)."""
        with self._lock:
            self._endpoints[(namespace, service, int(port))] = base_url

    def service_get(
        self,
        namespace: str,
        service: str,
        port: int,
        path: str,
        params: Mapping[str, str],
        timeout_s: float,
    ) -> bytes:
        ref = Ref("v1", "Service", namespace, service)
        check_ref(ref)
        self._begin("service_get", ref)
        with self._lock:
            self._require(self._key(ref.api_version, ref.kind, namespace, service))
            base_url = self._endpoints.get((namespace, service, int(port)))
        return proxy_get(base_url, service, path, params, timeout_s)

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
            raise NotFound(f"404 NotFound: {describe(key)} not found")
        return stored

    def _applied_part(self, obj: Obj) -> Obj:
        part = clone(obj)
        meta = part["metadata"]
        for field in SERVER_META_ALL:
            meta.pop(field, None)
        if obj["kind"] in self._status_kinds:
            part.pop("status", None)
        return part

    def _create(self, obj: Obj, fired: Fired) -> Obj:
        new = normalize(obj, self._cluster_kinds, creating=True)
        key = self._key_of(new)
        self._check_served(key[0], key[1])
        meta = new["metadata"]
        if key in self._objects:
            raise Conflict(f"409 AlreadyExists: {describe(key)} already exists")
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
                f"latest version and try again ({describe(key)}: resourceVersion {rv} is not "
                f"{stored['metadata']['resourceVersion']})"
            )
        old_meta = stored["metadata"]
        for field in SERVER_META_ALL:
            meta.pop(field, None)
            if field in old_meta:
                meta[field] = old_meta[field]
        if key[1] in self._status_kinds and not status_only:
            if "status" in stored:
                new["status"] = wire_copy(stored["status"])
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
            return clone(stored)
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
                new = wire_copy(stored)
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
                new = wire_copy(dep)
                new["metadata"]["ownerReferences"] = left
                self._commit(dep_key, new, "MODIFIED", fired)
            else:
                self._delete(dep_key, fired)
        return gone

    def _commit(
        self,
        key: Key,
        obj: Obj,
        type_: WriteType,
        fired: Fired,
    ) -> Obj:
        rv = self._events.next_version()
        stored = wire_copy(obj)
        stored["metadata"]["resourceVersion"] = str(rv)
        if type_ != "DELETED":
            self._objects[key] = stored
        self._events.append(Entry(rv, type_, key, stored))
        fired.append(WatchEvent(type_, wire_copy(stored)))
        return clone(stored)

    def _notify(self, fired: Fired) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for event in fired:
            for listener in listeners:
                listener(WatchEvent(event.type, wire_copy(event.object)))


# --- helpers -----------------------------------------------------------------------------------


def _target(about: object) -> str:
    if isinstance(about, Ref):
        return f"{about.kind}/{about.namespace}/{about.name}"
    if isinstance(about, dict):
        meta = about.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        return f"{about.get('kind')}/{meta.get('namespace')}/{meta.get('name')}"
    return str(about)


def _labels_match(obj: Obj, selector: Mapping[str, str] | None) -> bool:
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())
