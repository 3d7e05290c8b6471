"""The GPUs of a local run: each variant's replicas by the capacity plan, and what they held.

Owns :class:`GpuAccount` and its :class:`CapacityReport`. Pure: the times are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from controlplane.capacity import plan
from controlplane.capacity.estimate import sizes_of
from controlplane.errors import ProfileError
from controlplane.profiles.catalog import Catalog
from controlplane.spec.models import ModelCanary


@dataclass(frozen=True)
class CapacityPoint:
    """What ran from ``time`` on (a point is recorded when any of it changes): the candidate's
    weight and mirror on the router, each variant's replicas in service (in the router) and the
    GPUs held (every replica started and not yet stopped, those draining included)."""

    time: float
    weight: int
    mirror: bool
    stable: int
    candidate: int
    gpus: int

    def to_json(self) -> dict[str, Any]:
        return {
            "time": round(self.time, 3),
            "weight": self.weight,
            "mirror": self.mirror,
            "stable": self.stable,
            "candidate": self.candidate,
            "gpus": self.gpus,
        }


@dataclass
class GpuLedger:
    """GPU-seconds held since the first :meth:`note`, summed at every note (each tick, each start
    and stop of a replica), and the most GPUs held at a note."""

    started_at: float | None = None
    last_at: float = 0.0
    gpus: int = 0
    gpu_seconds: float = 0.0
    peak: int = 0

    def note(self, now: float, gpus: int) -> None:
        if self.started_at is None:
            self.started_at = self.last_at = now
        else:
            self.gpu_seconds += self.gpus * max(0.0, now - self.last_at)
            self.last_at = max(now, self.last_at)
        self.gpus = gpus
        self.peak = max(self.peak, gpus)

    @property
    def seconds(self) -> float:
        """Wall-clock seconds noted."""
        return 0.0 if self.started_at is None else self.last_at - self.started_at


@dataclass(frozen=True)
class CapacityReport:
    """The GPUs of a run: the most held at once, the GPU-hours of the whole rollout in spec time
    (wall time x the time scale), and running both variants at full size for as long: the stable
    at its ``replicas``, the candidate at its size for all the traffic (:meth:`GpuAccount.
    full_size`). ``planned``: the replicas followed the plan (``spec.capacity``), else they were
    fixed; ``budget_gpus`` is the plan's budget (None: none set)."""

    planned: bool
    budget_gpus: int | None
    peak_gpus: int
    gpu_hours: float
    spec_hours: float
    full_size: plan.Replicas
    full_size_gpus: int
    points: list[CapacityPoint] = field(default_factory=list)

    @property
    def full_size_gpu_hours(self) -> float:
        return self.full_size_gpus * self.spec_hours

    def to_json(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "budgetGPUs": self.budget_gpus,
            "peakGPUs": self.peak_gpus,
            "gpuHours": round(self.gpu_hours, 3),
            "specHours": round(self.spec_hours, 3),
            "fullSize": {
                "stable": self.full_size.stable,
                "candidate": self.full_size.candidate,
                "gpus": self.full_size_gpus,
                "gpuHours": round(self.full_size_gpu_hours, 3),
            },
            "timeline": [p.to_json() for p in self.points],
        }


class GpuAccount:
    """The plan's sizes of ``canary`` (None without a plan when the catalogue cannot tell) and
    the GPUs its replicas held while the rollout ran (:meth:`note`)."""

    def __init__(self, canary: ModelCanary, catalog: Catalog) -> None:
        self.canary = canary
        self.planned = canary.spec.plan is not None
        """Whether the replicas follow the capacity plan (``spec.capacity``)."""
        self.sizes = self._sizes(catalog)
        self.ledger = GpuLedger()
        self.points: list[CapacityPoint] = []

    def _sizes(self, catalog: Catalog) -> plan.Sizes | None:
        try:
            return sizes_of(self.canary, catalog)
        except ProfileError:
            if self.planned:
                raise
            return None

    def demand(self) -> float:
        assert self.sizes is not None
        return plan.sized_demand(self.canary, self.sizes)

    def gpus(self, replicas: plan.Replicas) -> int:
        """The GPUs ``replicas`` hold (:meth:`controlplane.capacity.plan.Replicas.gpus`)."""
        if self.sizes is not None:
            return replicas.gpus(self.sizes)
        spec = self.canary.spec
        stable, candidate = spec.stable.gpu_count, spec.candidate.gpu_count
        return replicas.stable * stable + replicas.candidate * candidate

    def wanted(self, share: plan.Share) -> plan.Replicas:
        """Each variant's replicas at ``share``: the plan's, else the fixed ``replicas``."""
        if not self.planned:
            return plan.fixed_replicas(self.canary)
        assert self.sizes is not None
        return plan.replicas_at(self.canary, self.sizes, self.demand(), share)

    def full_size(self) -> plan.Replicas:
        """Both variants at full size: the stable at its ``replicas``, the candidate sized for all
        the traffic the stable was sized for (the plan's for 100 %, at the spec's headroom or
        the default), never below its ``replicas``."""
        if self.sizes is None:
            return plan.fixed_replicas(self.canary)
        spec = self.canary.spec
        capacity = spec.capacity_or_default()
        candidate = plan.needed(self.demand(), 100, self.sizes.candidate, capacity)
        return plan.Replicas(spec.stable.replicas, max(candidate, spec.candidate.replicas))

    def note(
        self, now: float, held: plan.Replicas, serving: plan.Replicas, share: plan.Share
    ) -> None:
        """Note the GPUs ``held``, and a point when anything changed."""
        gpus = self.gpus(held)
        self.ledger.note(now, gpus)
        point = CapacityPoint(
            now, share.weight, share.mirror, serving.stable, serving.candidate, gpus
        )
        if not self.points or replace(self.points[-1], time=now) != point:
            self.points.append(point)

    def report(self, time_scale: float) -> CapacityReport:
        """The GPUs of the rollout so far, in spec time (wall time x ``time_scale``)."""
        full = self.full_size()
        budget = None
        if self.planned and self.sizes is not None:
            budget = plan.budget_gpus(self.canary, self.sizes)
        return CapacityReport(
            planned=self.planned,
            budget_gpus=budget,
            peak_gpus=self.ledger.peak,
            gpu_hours=self.ledger.gpu_seconds * time_scale / 3600.0,
            spec_hours=self.ledger.seconds * time_scale / 3600.0,
            full_size=full,
            full_size_gpus=self.gpus(full),
            points=list(self.points),
        )
