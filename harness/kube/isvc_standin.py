"""KServe's status writes on a real API server, until the real KServe controller runs there.

:class:`IsvcStandin` is :class:`~harness.kube.fake_kserve.FakeKServe` for a
:class:`~controlplane.kube.real.RealKube`: the loopback kube-apiserver has KServe's CRDs but no
KServe controller, so nothing would ever mark an ``InferenceService`` or ``LLMInferenceService``
Ready. Instead of the fake's listener hook it *lists* the served kinds of its namespaces (on its
own client: its requests are not the controller's) and, ``ready_after_s`` after it first saw a
``metadata.generation`` without a matching ``status.observedGeneration``, writes through the
status subresource the very status documents FakeKServe writes (conditions Ready /
PredictorReady / IngressReady, ``url``, ``address(es)``, ``components.predictor``,
``observedGeneration``) and, in Standard mode, the predictor Deployments with ready replicas
FakeKServe keeps: the same controller sees the same world on the fake and the real server.

Tick-driven like the fake (:meth:`tick` applies what is due, :meth:`pending` says when the next
is), on an injected clock; :meth:`never_ready` scripts a candidate that never loads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.errors import Conflict, KubeError, NotFound
from controlplane.kube.client import KubeClient, Obj, Ref, WatchEvent
from harness.kube.fake_kserve import FakeKServe, member_routes, standard

SERVED = (
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("serving.kserve.io/v1alpha2", "LLMInferenceService"),
)


class _NoListener:
    """What FakeKServe's constructor needs of a FakeKube (its renderer is all we use)."""

    def add_listener(self, listener: Callable[[WatchEvent], None]) -> None:
        del listener


class _Writes:
    """What FakeKServe's Deployment bookkeeping (``_deployments``) asks of a FakeKube, on a
    real client: the predictor Deployments KServe keeps, with their status written as ready
    (no kube-controller-manager runs here to roll them out)."""

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    def list(self, api_version: str, kind: str, namespace: str, **kwargs: Any) -> list[Obj]:
        return self._kube.list(api_version, kind, namespace, **kwargs)

    def delete(self, ref: Ref) -> None:
        with contextlib.suppress(NotFound):
            self._kube.delete(ref)

    def apply(self, obj: Obj, *, field_manager: str) -> Obj:
        return self._kube.apply(obj, field_manager=field_manager)

    def system_replace_status(self, ref: Ref, status: Obj) -> None:
        live = self._kube.get(ref)
        self._kube.replace_status({**live, "status": status})


@dataclass
class _Pending:
    generation: int
    due: float


class IsvcStandin:
    """Marks the InferenceServices / LLMInferenceServices of ``namespaces`` Ready
    ``ready_after_s`` after each new generation, measured on ``now``."""

    def __init__(
        self,
        kube: KubeClient,
        namespaces: Sequence[str],
        *,
        now: Callable[[], float],
        ready_after_s: float = 0.0,
    ) -> None:
        self._kube = kube
        self._namespaces = list(namespaces)
        self._now = now
        self.ready_after_s = ready_after_s
        # the fake's status documents (and its Knative revision bookkeeping), byte for byte
        render: Any = FakeKServe(_NoListener(), now=now)  # type: ignore[arg-type]
        render._kube = _Writes(kube)  # its Deployments go to the real server
        self._render = render
        self._pending: dict[Ref, _Pending] = {}
        self._handled: dict[Ref, int] = {}  # the generation last made Ready
        self._never: set[str] = set()
        self.writes = 0

    def never_ready(self, name: str) -> None:
        """Objects named ``name`` never become Ready."""
        self._never.add(name)

    def heal(self, name: str) -> None:
        self._never.discard(name)

    def _scan(self) -> dict[Ref, Obj]:
        """Every served object, and a pending entry for each generation not yet observed."""
        now = self._now()
        found: dict[Ref, Obj] = {}
        for api_version, kind in SERVED:
            for ns in self._namespaces:
                try:
                    items = self._kube.list(api_version, kind, ns)
                except KubeError:
                    continue  # the kind is not served here
                for obj in items:
                    found[Ref.of(obj)] = obj
        for ref in [r for r in self._pending if r not in found]:
            del self._pending[ref]  # deleted
        for ref in [r for r in self._handled if r not in found]:
            del self._handled[ref]
        for ref, obj in found.items():
            if obj["metadata"].get("deletionTimestamp"):
                self._pending.pop(ref, None)
                continue
            generation = int(obj["metadata"].get("generation", 1))
            pending = self._pending.get(ref)
            if self._handled.get(ref) == generation or (
                pending and pending.generation == generation
            ):
                continue
            self._pending[ref] = _Pending(generation, now + self.ready_after_s)
        return found

    def pending(self) -> dict[Ref, float]:
        """Objects waiting for readiness and when each is due."""
        self._scan()
        return {ref: p.due for ref, p in self._pending.items() if ref.name not in self._never}

    def tick(self) -> list[Ref]:
        """Write Ready status for every object whose time has come; return their refs."""
        now = self._now()
        found = self._scan()
        due = [(r, p) for r, p in self._pending.items() if p.due <= now]
        done: list[Ref] = []
        for ref, pending in sorted(due, key=lambda item: (item[1].due, item[0].name)):
            obj = found[ref]
            if ref.name in self._never:
                continue
            if int(obj["metadata"].get("generation", 1)) != pending.generation:
                continue
            body = {**obj, "status": self._render._ready_status(ref, obj, now)}
            try:
                self._kube.replace_status(body)
            except (Conflict, NotFound):
                continue  # changed or gone since the list: the next tick sees it
            self.writes += 1
            self._handled[ref] = pending.generation
            del self._pending[ref]
            done.append(ref)
            if ref.kind == "InferenceService" and standard(obj):
                self._render._deployments(obj)  # the replicas the capacity plan waits for
            if ref.kind == "LLMInferenceService":
                self._member_routes(ref.namespace or "default")
        return done

    def _member_routes(self, namespace: str) -> None:
        """The LLMInferenceService routes FakeKServe writes (:func:`member_routes`)."""
        members = self._kube.list("serving.kserve.io/v1alpha2", "LLMInferenceService", namespace)
        routes, gone = member_routes(members, namespace)
        for ref in gone:
            with contextlib.suppress(NotFound):
                self._kube.delete(ref)
        for route in routes:
            self._kube.apply(route, field_manager="kserve-controller")
