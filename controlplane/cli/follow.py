"""Following one ModelCanary over time: ``get -w``, ``status -w`` and the verbs' ``--wait``.

Owns :func:`follow`: read the canary, then watch it (from the resourceVersion read, so no change
is missed between two watches) until ``done(obj)`` holds or the deadline passes. Each watch lasts
at most :attr:`Runtime.poll_s`, so the caller is called back at least that often to redraw times
that move with the clock. A watch that is too old (410 Gone) re-reads the object; a deleted
canary is a :class:`~controlplane.errors.NotFound` that says so. The deadline is measured on the
runtime's clock, so tests drive it with a fake one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controlplane.cli.cluster import Runtime
from controlplane.errors import Expired, NotFound
from controlplane.kube.client import KubeClient, Obj
from controlplane.operations import get_canary
from controlplane.spec.models import API_VERSION, KIND


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
    obj = get_canary(kube, namespace, name)
    on_update(obj, True)
    while True:
        if done(obj):
            return Followed(obj, False)
        now = clock()
        if deadline is not None and now >= deadline:
            return Followed(obj, True)
        wait = runtime.poll_s if deadline is None else max(min(runtime.poll_s, deadline - now), 0.0)
        try:
            obj, changed = _next_change(kube, namespace, name, obj, wait)
        except Expired:
            obj, changed = get_canary(kube, namespace, name), True
        on_update(obj, changed)


def _next_change(
    kube: KubeClient, namespace: str, name: str, obj: Obj, wait: float
) -> tuple[Obj, bool]:
    """The object after its next change within ``wait`` seconds, or as it was."""
    version = obj.get("metadata", {}).get("resourceVersion")
    stream = kube.watch(API_VERSION, KIND, namespace, resource_version=version, timeout_s=wait)
    try:
        for event in stream:
            if event.object.get("metadata", {}).get("name") != name:
                continue
            if event.type == "DELETED":
                raise NotFound(
                    f"modelcanary {name!r} in namespace {namespace!r} was deleted while watching"
                )
            if event.type in ("ADDED", "MODIFIED"):
                return event.object, True
    finally:
        close = getattr(stream, "close", None)
        if callable(close):
            close()  # end the watch now rather than when the generator is collected
    return obj, False
