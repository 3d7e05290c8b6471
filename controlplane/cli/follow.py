"""Following one ModelCanary over time: ``get -w``, ``status -w`` and the verbs' ``--wait``.

Owns :func:`follow`: list the namespace, then watch from the list's version with bookmarks until
``done(obj)`` or the deadline (the runtime's clock). Watching from the namespace's moving version,
not the object's old one, keeps a quiet canary clear of compaction (410); each watch lasts at most
:attr:`Runtime.poll_s` so times on screen are redrawn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controlplane.cli.cluster import Runtime
from controlplane.errors import Expired, NotFound
from controlplane.kube.client import KubeClient, Obj, event_version
from controlplane.operations import get_canary
from controlplane.spec.constants import API_VERSION, KIND


@dataclass(frozen=True)
class Followed:
    """Where following stopped: the last object seen and whether the deadline passed first."""

    obj: Obj
    timed_out: bool


def follow(
    kube: KubeClient,
    namespace: str,
    name: str,
    runtime: Runtime,
    *,
    done: Callable[[Obj], bool],
    timeout_s: float | None,
    on_update: Callable[[Obj, bool], None],
) -> Followed:
    """Watch ``namespace/name`` until ``done`` or ``timeout_s`` (None: no deadline).

    ``on_update(obj, changed)`` is called with the first read (changed=True), after every change
    and after every quiet watch (changed=False), so views can refresh their clocks.
    """
    clock = runtime.clock
    deadline = None if timeout_s is None else clock() + timeout_s
    obj, version = _read(kube, namespace, name)
    on_update(obj, True)
    while True:
        if done(obj):
            return Followed(obj, False)
        now = clock()
        if deadline is not None and now >= deadline:
            return Followed(obj, True)
        wait = runtime.poll_s if deadline is None else max(min(runtime.poll_s, deadline - now), 0.0)
        try:
            obj, changed, version = _next_change(kube, namespace, name, obj, version, wait)
        except Expired:
            before = _version(obj)
            obj, version = _read(kube, namespace, name)
            changed = _version(obj) != before
        on_update(obj, changed)


def _read(kube: KubeClient, namespace: str, name: str) -> tuple[Obj, str]:
    """The canary and the version to watch its namespace from (the list's)."""
    items, version = kube.list_with_version(API_VERSION, KIND, namespace)
    for item in items:
        if item.get("metadata", {}).get("name") == name:
            return item, version
    return get_canary(kube, namespace, name), version  # NotFound, saying how to list them


def _version(obj: Obj) -> str | None:
    value = obj.get("metadata", {}).get("resourceVersion")
    return None if value is None else str(value)


def _next_change(
    kube: KubeClient, namespace: str, name: str, obj: Obj, version: str, wait: float
) -> tuple[Obj, bool, str]:
    """The object after its next change within ``wait`` seconds (or as it was), whether it
    changed, and the version the next watch starts from."""
    stream = kube.watch(
        API_VERSION, KIND, namespace, resource_version=version, timeout_s=wait, bookmarks=True
    )
    try:
        for event in stream:
            version = event_version(event) or version
            if event.type == "BOOKMARK" or event.object.get("metadata", {}).get("name") != name:
                continue
            if event.type == "DELETED":
                raise NotFound(
                    f"modelcanary {name!r} in namespace {namespace!r} was deleted while watching"
                )
            if event.type in ("ADDED", "MODIFIED"):
                return event.object, True, version
    finally:
        close = getattr(stream, "close", None)
        if callable(close):
            close()  # end the watch now rather than when the generator is collected
    return obj, False, version
