"""The KubeClient protocol over a real API server, through the ``kubernetes`` dynamic client.

Owns :class:`RealKube` (built by the controller's and the kubectl plugin's shells with
:meth:`RealKube.connect`) and the translation of the client's exceptions into the product's
error tree (:func:`to_kube_error`): 404 -> ``NotFound``, 409 -> ``Conflict``, 410 -> the
``410 Gone`` KubeError of :func:`~controlplane.kube.client.is_expired`, anything else ->
``KubeError`` with the status, reason and the server's message. Server-side apply is a PATCH with
``application/apply-patch+yaml``, ``fieldManager`` and ``force=true``; Events are core/v1.

No test here talks to a cluster: the unit tests drive this module against a small recording HTTP
server on loopback; tests/e2e/test_kube_real.py runs it against a real one (``pytest -m e2e``).
"""

from __future__ import annotations

import builtins
import importlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

from controlplane.errors import Conflict, KubeError, NotFound
from controlplane.kube.client import JsonPatch, Obj, Ref, WatchEvent, event_object, expired

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"


def selector_string(label_selector: Mapping[str, str] | None) -> str | None:
    """``{"a": "1", "b": "2"}`` -> ``"a=1,b=2"`` (equality-based label selector)."""
    if not label_selector:
        return None
    return ",".join(f"{k}={v}" for k, v in sorted(label_selector.items()))


def _server_message(body: Any) -> str | None:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return None
    try:
        status = json.loads(body)
    except ValueError:
        return body.strip()[:500] or None
    if isinstance(status, dict) and isinstance(status.get("message"), str):
        return str(status["message"])
    return None


def to_kube_error(exc: BaseException) -> KubeError:
    """The product error for an exception of the ``kubernetes`` client (or its transport)."""
    if isinstance(exc, KubeError):
        return exc
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status > 0:
        reason = str(getattr(exc, "reason", "") or "").strip()
        message = _server_message(getattr(exc, "body", None)) or reason or type(exc).__name__
        text = f"{status} {reason}: {message}" if reason and reason != message else message
        if status == 404:
            return NotFound(text if text.startswith("404") else f"404 {text}")
        if status == 409:
            return Conflict(text if text.startswith("409") else f"409 {text}")
        if status == 410:
            return expired(message)
        return KubeError(text if text.startswith(str(status)) else f"{status} {text}")
    name = type(exc).__name__
    if name == "ResourceNotFoundError":
        return KubeError(f"the API server does not serve this kind: {exc}")
    if name == "ConfigException":
        return KubeError(f"no usable Kubernetes configuration: {exc}")
    return KubeError(f"the API server is unreachable: {name}: {exc}")


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
    None).
    """

    def __init__(
        self,
        api_client: Any,
        *,
        component: str = "canary-controller",
        now: Callable[[], float] = time.time,
        discovery_cache: str | None = None,
    ) -> None:
        self._api_client = api_client
        self._component = component
        self._now = now
        self._cache_file = discovery_cache
        self._dynamic: Any = None
        self._resources: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        in_cluster: bool | None = None,
        component: str = "canary-controller",
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
        return cls(client.ApiClient(configuration), component=component)

    # --- plumbing --------------------------------------------------------------------------------

    def _client(self) -> Any:
        with self._lock:
            if self._dynamic is None:
                dynamic = _module("kubernetes.dynamic")
                with _translated():
                    self._dynamic = dynamic.DynamicClient(
                        self._api_client, cache_file=self._cache_file
                    )
            return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        cached = self._resources.get(key)
        if cached is None:
            with _translated():
                cached = self._client().resources.get(api_version=api_version, kind=kind)
            self._resources[key] = cached
        return cached

    # --- KubeClient ------------------------------------------------------------------------------

    def get(self, ref: Ref) -> Obj:
        res = self._resource(ref.api_version, ref.kind)
        with _translated():
            return _plain(res.get(name=ref.name, namespace=ref.namespace))

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
    ) -> builtins.list[Obj]:
        res = self._resource(api_version, kind)
        with _translated():
            answer = _plain(
                res.get(namespace=namespace, label_selector=selector_string(label_selector))
            )
        items = answer.get("items") or []
        # A list's items carry no apiVersion / kind on the wire; give them back.
        return [{"apiVersion": api_version, "kind": kind, **item} for item in items]

    def create(self, obj: Obj) -> Obj:
        res = self._resource(obj["apiVersion"], obj["kind"])
        with _translated():
            return _plain(res.create(body=obj, namespace=_namespace(obj)))

    def replace(self, obj: Obj) -> Obj:
        res = self._resource(obj["apiVersion"], obj["kind"])
        with _translated():
            return _plain(res.replace(body=obj, namespace=_namespace(obj)))

    def patch(
        self, ref: Ref, patch: Obj | JsonPatch, *, kind: Literal["merge", "json"] = "merge"
    ) -> Obj:
        if kind not in PATCH_CONTENT_TYPES:
            raise KubeError(f"unknown patch kind {kind!r}; use merge or json")
        res = self._resource(ref.api_version, ref.kind)
        with _translated():
            return _plain(
                res.patch(
                    body=patch,
                    name=ref.name,
                    namespace=ref.namespace,
                    content_type=PATCH_CONTENT_TYPES[kind],
                )
            )

    def apply(self, obj: Obj, *, field_manager: str = "canary-controller") -> Obj:
        res = self._resource(obj["apiVersion"], obj["kind"])
        ref = Ref.of(obj)
        with _translated():
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
        res = self._resource(obj["apiVersion"], obj["kind"])
        status = res.subresources.get("status")
        if status is None:
            raise NotFound(f"404 NotFound: {obj['kind']} has no status subresource")
        with _translated():
            return _plain(status.replace(body=obj, namespace=_namespace(obj)))

    def delete(self, ref: Ref) -> None:
        res = self._resource(ref.api_version, ref.kind)
        with _translated():
            res.delete(name=ref.name, namespace=ref.namespace, propagation_policy="Background")

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        resource_version: str | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[WatchEvent]:
        res = self._resource(api_version, kind)
        watcher = _module("kubernetes.watch").Watch()
        timeout = None if timeout_s is None else max(1, int(timeout_s))

        def stream() -> Iterator[WatchEvent]:
            try:
                with _translated():
                    for raw in res.watch(
                        namespace=namespace,
                        resource_version=resource_version,
                        timeout=timeout,
                        watcher=watcher,
                    ):
                        obj = raw.get("raw_object")
                        if isinstance(obj, dict):
                            yield WatchEvent(raw["type"], json.loads(json.dumps(obj)))
            finally:
                watcher.stop()

        return stream()

    def event(self, involved: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        now = self._now()
        ev = event_object(involved, reason, message, type_, now=now, component=self._component)
        name = involved.get("metadata", {}).get("name", "event")
        ev["metadata"]["name"] = f"{name}.{time.time_ns():x}"
        self.create(ev)


def _module(name: str) -> Any:
    """Import a ``kubernetes`` module lazily (and untyped: the client ships partial stubs)."""
    return importlib.import_module(name)


def _namespace(obj: Obj) -> str | None:
    namespace = obj.get("metadata", {}).get("namespace")
    return str(namespace) if namespace else None
