"""The capacity plan: how many replicas each variant runs at each weight, and in which order.

Owns one pure decision of (spec, weights, demand, per-replica capacity): the replicas at a
weight, the order of a change (scale up before the weights move, down after, as Argo Rollouts'
``setCanaryScale`` / ``dynamicStableScale``), the GPU budget and the whole rollout's plan; and,
without ``spec.capacity``, the fixed replicas and their utilisation. Called by validation,
``canaryctl render`` / ``validate``, the controller's capacity effect and the local stack.
See docs/capacity.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controlplane.spec.models import CapacitySpec, ModelCanary


EPSILON = 1e-9
"""Shares are computed in floating point: ``ceil(2.0000000001)`` must stay 2."""


@dataclass(frozen=True)
class ReplicaCapacity:
    """What one replica of a variant serves and holds: requests per second at full batch (before
    headroom), its GPUs, and where the figure comes from (shown to people)."""

    requests_per_s: float
    gpus: int
    source: str

    @property
    def valid(self) -> bool:
        return self.requests_per_s > 0 and self.gpus >= 1


@dataclass(frozen=True)
class Sizes:
    """Both variants' per-replica capacities."""

    stable: ReplicaCapacity
    candidate: ReplicaCapacity


@dataclass(frozen=True)
class Replicas:
    """Replicas of each variant at one moment."""

    stable: int
    candidate: int

    def gpus(self, sizes: Sizes) -> int:
        """GPUs both variants hold."""
        return self.stable * sizes.stable.gpus + self.candidate * sizes.candidate.gpus

    def at_least(self, other: Replicas) -> Replicas:
        """Each variant's larger count of the two."""
        return Replicas(max(self.stable, other.stable), max(self.candidate, other.candidate))

    def __str__(self) -> str:
        return f"stable {self.stable}, candidate {self.candidate}"


@dataclass(frozen=True)
class Share:
    """Where traffic goes: the candidate's weight in percent, and whether it gets a mirror of
    all traffic besides (shadow: it serves every request, its answers thrown away)."""

    weight: int
    mirror: bool = False

    @property
    def candidate_percent(self) -> int:
        return 100 if self.mirror else self.weight

    @property
    def stable_percent(self) -> int:
        return 100 - self.weight


@dataclass(frozen=True)
class Change:
    """One change of weights: ``before`` must be Ready before the weights move (every variant
    whose share rises scaled up, nothing scaled down yet), ``after`` is what runs once they
    moved; ``ceiling_before`` / ``ceiling_after`` the most replicas an autoscaling variant may
    reach meanwhile (equal to the others for a variant that does not autoscale). ``budget`` is
    None when the spec sets none."""

    source: Share
    target: Share
    before: Replicas
    after: Replicas
    budget: int | None
    ceiling_before: Replicas | None = None
    ceiling_after: Replicas | None = None

    def peak_gpus(self, sizes: Sizes) -> int:
        """The most GPUs held during the change (``before``, or what autoscaling may reach:
        nothing shrinks until after)."""
        top = self.ceiling_before if self.ceiling_before is not None else self.before
        return top.gpus(sizes)

    def fits(self, sizes: Sizes) -> bool:
        return self.budget is None or self.peak_gpus(sizes) <= self.budget


def usable_rps(capacity: ReplicaCapacity, spec: CapacitySpec) -> float:
    """What one replica is planned to serve: its capacity less the headroom."""
    return capacity.requests_per_s * (1.0 - spec.headroom)


def sized_demand(canary: ModelCanary, sizes: Sizes) -> float:
    """The requests per second the stable's ``replicas`` were sized for, at the headroom."""
    spec = _spec(canary)
    return canary.spec.stable.replicas * usable_rps(sizes.stable, spec)


def demand_of(canary: ModelCanary, sizes: Sizes, observed_rps: float | None) -> float:
    """The demand a plan is made for: ``observed_rps`` when known, else :func:`sized_demand`."""
    if observed_rps is not None and observed_rps >= 0:
        return observed_rps
    return sized_demand(canary, sizes)


def needed(
    demand_rps: float,
    percent: int,
    capacity: ReplicaCapacity,
    spec: CapacitySpec,
    extra_rps: float = 0.0,
) -> int:
    """Replicas that serve ``percent`` of ``demand_rps`` and ``extra_rps`` besides (the quality
    judge's pairs: :func:`pairing_rps`) within the headroom; at least one while the share is
    above zero (a variant that receives traffic must run)."""
    if percent <= 0:
        return 0
    load = demand_rps * percent / 100.0 + extra_rps
    return max(1, math.ceil(load / usable_rps(capacity, spec) - EPSILON))


def pairing_rps(canary: ModelCanary, demand_rps: float, share: Share) -> float:
    """The requests per second the quality judge's pairer adds to each variant at ``share``
    (``spec.quality``). A pair is one request to each variant, so each gets the pairs' rate:
    ``sample`` of the demand, at most ``perMinute`` a minute (in the shadow phase, sampled from
    the stable's, which takes it all). None where the route sends the pairer nothing: no
    ``spec.quality``, or a weight of 0 or 100 outside the shadow phase. Each paired
    request is counted as a whole request of the demand's, though it answers at most 64 tokens:
    an upper bound on its cost."""
    quality = canary.spec.quality
    if quality is None or not (share.mirror or 0 < share.weight < 100):
        return 0.0
    return min(demand_rps * quality.sample.value, quality.per_minute / 60.0)


def replicas_at(canary: ModelCanary, sizes: Sizes, demand_rps: float, share: Share) -> Replicas:
    """Each variant's replicas at ``share``: the stable sized to its share (none at 100 %), the
    candidate to its share and never below ``candidate.replicas`` (the fewest it runs: at
    weight 0 it still has to be Ready), each with the quality judge's pairs besides
    (:func:`pairing_rps`). Without ``spec.capacity``: :func:`fixed_replicas`."""
    spec = canary.spec.plan
    if spec is None:
        return fixed_replicas(canary)
    pairs = pairing_rps(canary, demand_rps, share)
    stable = needed(demand_rps, share.stable_percent, sizes.stable, spec, pairs)
    candidate = needed(demand_rps, share.candidate_percent, sizes.candidate, spec, pairs)
    return Replicas(stable, max(candidate, canary.spec.candidate.replicas))


def ceilings(canary: ModelCanary, share: Share, floor: Replicas) -> Replicas:
    """The most replicas each variant may autoscale to at ``share``: with ``autoscaling``, its
    ``maxReplicas`` times its share (all of it without ``spec.capacity``: nothing follows
    traffic), never below ``floor``; without, its floor (pinned)."""

    def one(role: str, percent: int, floor_count: int) -> int:
        variant = canary.spec.variant(role)
        if variant.autoscaling is None:
            return floor_count
        top = variant.autoscaling.max_replicas
        if canary.spec.plan is None:
            return max(floor_count, top)
        if percent <= 0:
            return floor_count
        return max(floor_count, math.ceil(top * percent / 100.0 - EPSILON))

    return Replicas(
        one("stable", share.stable_percent, floor.stable),
        one("candidate", share.candidate_percent, floor.candidate),
    )


def fixed_replicas(canary: ModelCanary) -> Replicas:
    """What runs without ``spec.capacity``: each variant's ``replicas``, at every weight."""
    return Replicas(canary.spec.stable.replicas, canary.spec.candidate.replicas)


def budget_gpus(canary: ModelCanary, sizes: Sizes) -> int | None:
    """The GPUs the rollout may hold at once: ``maxGPUs``, and the stable's full size plus
    ``maxSurgeGPUs``, whichever is less; None when the spec sets neither."""
    spec = canary.spec.plan
    if spec is None:
        return None
    limits: list[int] = []
    if spec.max_gpus is not None:
        limits.append(spec.max_gpus)
    if spec.max_surge_gpus is not None:
        limits.append(canary.spec.stable.replicas * sizes.stable.gpus + spec.max_surge_gpus)
    return min(limits) if limits else None


def change(
    canary: ModelCanary, sizes: Sizes, demand_rps: float, source: Share, target: Share
) -> Change:
    """The order of moving the weights from ``source`` to ``target``: ``before`` holds each
    variant at the larger of its two sizes (up first), ``after`` at its size for ``target``.
    A rollback (``target`` weight 0) restores the stable before traffic returns to it, the
    same way."""
    was = replicas_at(canary, sizes, demand_rps, source)
    will = replicas_at(canary, sizes, demand_rps, target)
    top_was, top_will = ceilings(canary, source, was), ceilings(canary, target, will)
    budget = budget_gpus(canary, sizes)
    before = was.at_least(will)
    return Change(source, target, before, will, budget, top_was.at_least(top_will), top_will)


@dataclass(frozen=True)
class Stage:
    """One stage of the plan: its name as people read it (``step 2``, ``promotion``), the change
    that enters it, and, for a stage with traffic on the candidate, the rollback from it."""

    name: str
    entry: Change
    rollback: Change | None


def rollout_plan(canary: ModelCanary, sizes: Sizes, demand_rps: float) -> list[Stage]:
    """Every stage in order: the candidate deployed (weight 0), the shadow phase when there is
    one, each step, and the promotion (all traffic) when the last step is not at 100 %. A
    stage with traffic on the candidate has its rollback to weight 0, but for a step at 100 %
    without checks of its own: nothing rolls it back but a person's abort, which waits for
    the stable's GPUs like any change."""
    stages: list[Stage] = []
    current = Share(0)
    shares: list[tuple[str, Share, bool]] = [("deploy", Share(0), False)]
    if canary.spec.shadow is not None:
        shares.append(("shadow", Share(0, mirror=True), True))
    for i, step in enumerate(canary.spec.steps):
        rolls_back = step.weight < 100 or bool(step.rollback_on)
        shares.append((f"step {i + 1}", Share(step.weight), rolls_back and step.weight > 0))
    if canary.spec.steps[-1].weight != 100:
        shares.append(("promotion", Share(100), False))
    for name, share, rolls_back in shares:
        entry = change(canary, sizes, demand_rps, current, share)
        back = change(canary, sizes, demand_rps, share, Share(0)) if rolls_back else None
        stages.append(Stage(name, entry, back))
        current = share
    return stages


def step_gpu_hours(
    canary: ModelCanary, stages: list[Stage], sizes: Sizes
) -> tuple[float, float, float]:
    """The GPU-hours the plan holds over the steps that have a duration (each step at its
    ``after`` replicas for its whole duration), what the stable alone held at its full size
    over the same time (the price of the rollout against not running one), and that time in
    hours."""
    steps = {f"step {i + 1}": s for i, s in enumerate(canary.spec.steps)}
    held = hours = 0.0
    for stage in stages:
        step = steps.get(stage.name)
        if step is None or step.duration is None:
            continue
        held += stage.entry.after.gpus(sizes) * step.duration.seconds / 3600.0
        hours += step.duration.seconds / 3600.0
    return held, canary.spec.stable.replicas * sizes.stable.gpus * hours, hours


def first_overrun(stages: list[Stage], sizes: Sizes) -> tuple[Stage, Change] | None:
    """The first change of the plan (an entry or a rollback) that holds more GPUs than the
    budget, with its stage; None when every change fits."""
    for stage in stages:
        for moved in (stage.entry, stage.rollback):
            if moved is not None and not moved.fits(sizes):
                return stage, moved
    return None


@dataclass(frozen=True)
class Utilisation:
    """The share of its capacity each variant's replicas run at (1.0: full batch; None: no
    traffic or no replica)."""

    stable: float | None
    candidate: float | None


def utilisation(
    sizes: Sizes, demand_rps: float, share: Share, replicas: Replicas, extra_rps: float = 0.0
) -> Utilisation:
    """What ``replicas`` run at, as a share of their capacity, at ``share`` of ``demand_rps``
    with ``extra_rps`` besides on each variant that serves (the pairs: :func:`pairing_rps`)."""

    def one(percent: int, count: int, capacity: ReplicaCapacity) -> float | None:
        if percent <= 0 or count <= 0:
            return None
        return (demand_rps * percent / 100.0 + extra_rps) / (count * capacity.requests_per_s)

    return Utilisation(
        one(share.stable_percent, replicas.stable, sizes.stable),
        one(share.candidate_percent, replicas.candidate, sizes.candidate),
    )


def _spec(canary: ModelCanary) -> CapacitySpec:
    return canary.spec.capacity_or_default()
