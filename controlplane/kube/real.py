"""The KubeClient protocol over a real API server, through the ``kubernetes`` dynamic client.

Owns :class:`RealKube` (built by the controller and the kubectl plugin with
:meth:`RealKube.connect`): errors through :mod:`~controlplane.kube.api_conventions`, an unserved
kind as :class:`~controlplane.errors.Unserved` with rate-limited rediscovery, server-side apply.
See docs/kube-adapter.md, "RealKube"; tested in tests/kube/test_kube_real_offline.py and
tests/kube/test_kube_contract.py.
"""

from __future__ import annotations

import builtins
import importlib
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # what this module depends on, for import-linter ("only kube/ imports the
    # kubernetes client", a protected contract); the modules are imported lazily (_module)
    import kubernetes  # noqa: F401

from controlplane.errors import Conflict, KubeError, NotFound, Unserved
from controlplane.kube.api_conventions import (
    CONNECT_ATTEMPTS,
    DEFAULT_PAGE_SIZE,
    MAX_RETRIES,
    NO_ROUTE,
    retry_after,
    selector_string,
    to_kube_error,
)
from controlplane.kube.client import (
    JsonPatch,
    Obj,
    Ref,
    WatchEvent,
    check_event,
    check_object,
    check_ref,
    event_object,
    unserved,
)
from controlplane.spec.name_checks import check_path_segment, check_ref_names

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
DEFAULT_WATCH_S = 300.0
"""How long a watch asks to last when the caller gives no ``timeout_s``."""


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except KubeError:
        raise
    except Exception as exc:  # the client raises many types; all become KubeError
        raise to_kube_error(exc) from exc


def _plain(value: Any) -> Obj:
    """A ResourceInstance (or dict) as a plain JSON dict."""
    to_dict = getattr(value, "to_dict", None)
    result = to_dict() if callable(to_dict) else value
    if not isinstance(result, dict):
        raise KubeError(f"the API server answered with a non-object: {result!r}"[:300])
    return json.loads(json.dumps(result))  # type: ignore[no-any-return]


class RealKube:
    """KubeClient over ``kubernetes.dynamic.DynamicClient``.

    ``api_client`` is a configured ``kubernetes.client.ApiClient``; discovery happens lazily on
    the first call and is cached in ``discovery_cache`` (a file path; the client's default when
    None). ``monotonic`` measures ``rediscover_after_s`` (inject a test clock); ``sleep`` waits
    out a ``Retry-After`` (:func:`retry_after`).
    """

    def __init__(
        self,
        api_client: Any,
        *,
        component: str = "canary-controller",
        now: Callable[[], float] = time.time,
        discovery_cache: str | None = None,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 30.0,
        watch_slack_s: float = 10.0,
        page_size: int = DEFAULT_PAGE_SIZE,
        connect_attempts: int = CONNECT_ATTEMPTS,
        rediscover_after_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api_client = api_client
        self._component = component
        self._now = now
        self._cache_file = discovery_cache
        self._connect_timeout_s = connect_timeout_s
        self._request_timeout_s = request_timeout_s
        self._watch_slack_s = watch_slack_s
        self._page_size = page_size
        self._connect_attempts = connect_attempts
        self._rediscover_after_s = rediscover_after_s
        self._monotonic = monotonic
        self._sleep = sleep
        self._dynamic: Any = None
        self._resources: dict[tuple[str, str], Any] = {}
        self._unserved: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.discoveries = 0
        """How many times discovery was searched for a kind not yet resolved (for tests)."""

    @classmethod
    def connect(
        cls,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        in_cluster: bool | None = None,
        component: str = "canary-controller",
        request_timeout_s: float = 30.0,
    ) -> RealKube:
        """From the in-cluster service account (``in_cluster=True``), a kubeconfig file and
        context (``False``), or whichever works, kubeconfig first (``None``)."""
        client, config = _module("kubernetes.client"), _module("kubernetes.config")
        configuration = client.Configuration()
        if in_cluster:
            with _translated():
                config.load_incluster_config(client_configuration=configuration)
        else:
            try:
                config.load_kube_config(
                    config_file=kubeconfig, context=context, client_configuration=configuration
                )
            except Exception as kube_config_error:
                if in_cluster is False or kubeconfig or context:
                    raise to_kube_error(kube_config_error) from kube_config_error
                try:
                    config.load_incluster_config(client_configuration=configuration)
                except Exception as in_cluster_error:
                    raise KubeError(
                        f"no usable Kubernetes configuration: kubeconfig: {kube_config_error}; "
                        f"in-cluster: {in_cluster_error}"
                    ) from in_cluster_error
        # urllib3 retries nothing: a request whose connection was never made is sent again by
        # the client itself (_never_connected); one that timed out fails once, and the callers
        # back off and retry
        configuration.retries = 0
        return cls(
            client.ApiClient(configuration),
            component=component,
            request_timeout_s=request_timeout_s,
        )

    # --- plumbing --------------------------------------------------------------------------------

    def _timeout(self, read_s: float) -> tuple[float, float]:
        return (self._connect_timeout_s, read_s)

    def _client(self) -> Any:
        with self._lock:
            if self._dynamic is None:
                with _translated():
                    self._dynamic = _timed_dynamic_client(
                        self._api_client,
                        self._cache_file,
                        self._timeout(self._request_timeout_s),
                        self._sleep,
                        self._connect_attempts,
                    )
            return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        """The discovered resource, or :class:`Unserved` (re-discovered after a while)."""
        key = (api_version, kind)
        cached = self._resources.get(key)
        if cached is not None:
            return cached
        retry_at = self._unserved.get(key)
        if retry_at is not None and self._monotonic() < retry_at:
            raise unserved(api_version, kind)
        self.discoveries += 1
        client = self._client()
        try:
            # The lazy discoverer refreshes its cache itself when a kind is not in it.
            found = client.resources.get(api_version=api_version, kind=kind)
        except Exception as exc:  # the client raises many types; all become KubeError
            if type(exc).__name__ != "ResourceNotFoundError":
                raise to_kube_error(exc) from exc
            self._unserved[key] = self._monotonic() + self._rediscover_after_s
            raise unserved(api_version, kind) from exc
        self._unserved.pop(key, None)
        self._resources[key] = found
        return found

    @contextmanager
    def _call(self, api_version: str, kind: str) -> Iterator[None]:
        """Translate errors; a 404 for the path itself (no such resource) is ``Unserved``."""
        try:
            with _translated():
                yield
        except NotFound as exc:
            if isinstance(exc, Unserved) or not any(text in str(exc) for text in NO_ROUTE):
                raise
            key = (api_version, kind)
            self._resources.pop(key, None)  # the CRD is gone: discover again next time
            self._unserved[key] = self._monotonic() + self._rediscover_after_s
            raise unserved(api_version, kind) from exc

    # --- KubeClient ------------------------------------------------------------------------------

    def get(self, ref: Ref) -> Obj:
        check_ref(ref)
        res = self._resource(ref.api_version, ref.kind)
        with self._call(ref.api_version, ref.kind):
            return _plain(res.get(name=ref.name, namespace=ref.namespace))

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
        res = self._resource(api_version, kind)
        items: builtins.list[Obj] = []
        version: str | None = None
        token: str | None = None
        while True:
            with self._call(api_version, kind):
                answer = _plain(
                    res.get(
                        namespace=namespace,
                        label_selector=selector_string(label_selector),
                        limit=limit or self._page_size,
                        _continue=token,
                    )
                )
            meta = answer.get("metadata") or {}
            if version is None:
                version = str(meta.get("resourceVersion") or "")
            # A list's items carry no apiVersion / kind on the wire; give them back.
            items.extend(
                {"apiVersion": api_version, "kind": kind, **item}
                for item in answer.get("items") or []
            )
            token = meta.get("continue") or None
            if token is None:
                return items, version

    def create(self, obj: Obj) -> Obj:
        check_object(obj, creating=True)
        res = self._resource(obj["apiVersion"], obj["kind"])
        with self._call(obj["apiVersion"], obj["kind"]):
            return _plain(res.create(body=obj, namespace=_namespace(obj)))

    def replace(self, obj: Obj) -> Obj:
        check_object(obj)
        res = self._resource(obj["apiVersion"], obj["kind"])
        with self._call(obj["apiVersion"], obj["kind"]):
            return _plain(res.replace(body=obj, namespace=_namespace(obj)))

    def patch(
        self, ref: Ref, patch: Obj | JsonPatch, *, kind: Literal["merge", "json"] = "merge"
    ) -> Obj:
        if kind not in PATCH_CONTENT_TYPES:
            raise KubeError(f"unknown patch kind {kind!r}; use merge or json")
        check_ref(ref)
        res = self._resource(ref.api_version, ref.kind)
        with self._call(ref.api_version, ref.kind):
            return _plain(
                res.patch(
                    body=patch,
                    name=ref.name,
                    namespace=ref.namespace,
                    content_type=PATCH_CONTENT_TYPES[kind],
                )
            )

    def apply(self, obj: Obj, *, field_manager: str = "canary-controller") -> Obj:
        check_object(obj)
        res = self._resource(obj["apiVersion"], obj["kind"])
        ref = Ref.of(obj)
        with self._call(obj["apiVersion"], obj["kind"]):
            return _plain(
                res.server_side_apply(
                    body=obj,
                    name=ref.name,
                    namespace=ref.namespace,
                    field_manager=field_manager,
                    force_conflicts=True,
                )
            )

    def replace_status(self, obj: Obj) -> Obj:
        check_object(obj)
        res = self._resource(obj["apiVersion"], obj["kind"])
        status = res.subresources.get("status")
        if status is None:
            raise NotFound(f"404 NotFound: {obj['kind']} has no status subresource")
        with self._call(obj["apiVersion"], obj["kind"]):
            return _plain(status.replace(body=obj, namespace=_namespace(obj)))

    def delete(self, ref: Ref) -> None:
        check_ref(ref)
        res = self._resource(ref.api_version, ref.kind)
        with self._call(ref.api_version, ref.kind):
            res.delete(name=ref.name, namespace=ref.namespace, propagation_policy="Background")

    def serves(self, api_version: str, kind: str) -> bool:
        try:
            self._resource(api_version, kind)
        except Unserved:
            return False
        return True

    def service_get(
        self,
        namespace: str,
        service: str,
        port: int,
        path: str,
        params: Mapping[str, str],
        timeout_s: float,
    ) -> bytes:
        check_ref_names(namespace, None)
        check_path_segment(service, "name")
        url = f"/api/v1/namespaces/{namespace}/services/{service}:{int(port)}/proxy{path}"
        with _translated():
            answer = self._client().request(
                "GET",
                url,
                query_params=list(params.items()),
                header_params={"Accept": "application/json"},
                serialize=False,  # the body as it came, not read as a Kubernetes object
                _request_timeout=self._timeout(timeout_s),
            )
            return bytes(answer.data)

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
        check_ref_names(namespace, None)  # now, not on the stream's first read
        res = self._resource(api_version, kind)
        watcher = _module("kubernetes.watch").Watch()
        seconds = max(1, math.ceil(DEFAULT_WATCH_S if timeout_s is None else timeout_s))
        read_timeout = self._timeout(seconds + self._watch_slack_s)

        def stream() -> Iterator[WatchEvent]:
            inner: Any = None
            try:
                with self._call(api_version, kind):
                    inner = watcher.stream(
                        res.get,
                        namespace=namespace,
                        resource_version=resource_version,
                        serialize=False,
                        timeout_seconds=seconds,
                        allow_watch_bookmarks=True if bookmarks else None,
                        _request_timeout=read_timeout,
                    )
                    for raw in inner:
                        obj = raw.get("raw_object")
                        if isinstance(obj, dict):
                            yield WatchEvent(raw["type"], json.loads(json.dumps(obj)))
            finally:
                watcher.stop()
                if inner is not None:
                    inner.close()  # closes the response now, not when collected

        return stream()

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
        ev = event_object(involved, reason, message, type_, now=now, component=self._component)
        ev["metadata"]["name"] = check_event(ev, name)
        if name is None:
            try:
                self.create(ev)
            except Conflict:  # told before: count it on the stored one
                ref = Ref.of(ev)
                stored = self.get(ref)
                self.patch(
                    ref,
                    {
                        "count": int(stored.get("count") or 1) + 1,
                        "lastTimestamp": ev["lastTimestamp"],
                    },
                )
            return True
        try:
            self.create(ev)
        except Conflict:  # 409 on create: AlreadyExists, told before
            return False
        return True


def _never_connected(exc: BaseException) -> bool:
    """``exc`` is urllib3's for a connection that was never made: refused, or no answer to its
    SYN within the connect timeout (a ``MaxRetryError`` whose reason is a
    ``ConnectTimeoutError``, of which ``NewConnectionError`` is one). No byte of the request
    reached the server, so any request may be sent again on a new connection."""
    errors = importlib.import_module("urllib3.exceptions")
    return isinstance(exc, errors.MaxRetryError) and isinstance(
        exc.reason, errors.ConnectTimeoutError
    )


def _timed_dynamic_client(
    api_client: Any,
    cache_file: str | None,
    timeout: Any,
    sleep: Callable[[float], None],
    connect_attempts: int = CONNECT_ATTEMPTS,
) -> Any:
    """A DynamicClient whose every request (discovery and watches included) has
    ``_request_timeout``, is sent again at once on a new connection while its connection was
    never made (:func:`_never_connected`), up to ``connect_attempts`` connections, and is
    retried, up to :data:`MAX_RETRIES` times, after the wait a ``Retry-After`` asks for. Nothing
    is logged per attempt (urllib3's own retries would log a warning for each)."""
    base = _module("kubernetes.dynamic").DynamicClient

    class TimedDynamicClient(base):  # type: ignore[misc, valid-type]
        def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
            params.setdefault("_request_timeout", timeout)
            connects = waits = 0
            while True:
                try:
                    return super().request(method, path, body, **params)
                except Exception as exc:
                    if _never_connected(exc) and connects + 1 < connect_attempts:
                        connects += 1
                        continue
                    wait = retry_after(exc)
                    if wait is None or waits == MAX_RETRIES:
                        raise
                    waits += 1
                    sleep(wait)

    return TimedDynamicClient(api_client, cache_file=cache_file)


def _module(name: str) -> Any:
    """Import a ``kubernetes`` module lazily (untyped: the client ships partial stubs).

    ``kubernetes_validate``, which ``kubernetes.dynamic`` imports when installed and nothing
    here uses, is hidden during the first import: a tenth of a second of every verb."""
    if "kubernetes" in sys.modules or "kubernetes_validate" in sys.modules:
        return importlib.import_module(name)
    sys.modules["kubernetes_validate"] = None  # type: ignore[assignment]
    try:
        return importlib.import_module(name)
    finally:
        if "kubernetes_validate" in sys.modules and sys.modules["kubernetes_validate"] is None:
            del sys.modules["kubernetes_validate"]


def _namespace(obj: Obj) -> str | None:
    namespace = obj.get("metadata", {}).get("namespace")
    return str(namespace) if namespace else None
