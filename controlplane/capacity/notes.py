"""What people read of the capacity plan: the lines ``canaryctl validate`` and ``render`` print.

Owns the words of the plan (:func:`plan_lines`, :func:`point_line`) and, with fixed replicas,
the first step where they would be overloaded (:func:`fixed_overload`, a problem for
validation unless accepted). Called by ``canaryctl validate``, ``render`` and validation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controlplane.capacity import plan
from controlplane.capacity.estimate import sizes_of
from controlplane.errors import ProfileError
from controlplane.profiles.catalog import Catalog
from controlplane.spec.models import SINGLE_SERVICE_ROUTERS

if TYPE_CHECKING:
    from controlplane.spec.models import ModelCanary


def _replicas(replicas: plan.Replicas, sizes: plan.Sizes) -> str:
    return f"stable {replicas.stable}, candidate {replicas.candidate} ({replicas.gpus(sizes)} GPUs)"


def fixed_overload(canary: ModelCanary, sizes: plan.Sizes) -> str | None:
    """With fixed replicas (no plan, :attr:`~controlplane.spec.models.ModelCanarySpec.plan`,
    on a router where the controller sizes them): the first step where the candidate's
    replicas would run past what they serve, for the traffic the stable's replicas were sized
    for; else None."""
    if canary.spec.plan is not None or canary.spec.traffic.router in SINGLE_SERVICE_ROUTERS:
        return None  # planned, or KServe sizes the canary's replicas itself
    demand = plan.sized_demand(canary, sizes)
    fixed = plan.fixed_replicas(canary)
    for i, step in enumerate(canary.spec.steps):  # the last is 100 %: the promotion's load
        share = plan.Share(step.weight)
        pairs = plan.pairing_rps(canary, demand, share)
        use = plan.utilisation(sizes, demand, share, fixed, pairs)
        if use.candidate is not None and use.candidate > 1.0:
            return (
                f"capacity: at step {i + 1} ({step.weight} %) the candidate's {fixed.candidate} "
                f"replica(s) would run at {use.candidate:.0%} of what they serve "
                f"({sizes.candidate.source}) for the traffic the stable's {fixed.stable} were "
                "sized for"
            )
    return None


def plan_lines(canary: ModelCanary, catalog: Catalog) -> list[str]:
    """The plan in a few lines (an unknown GPU: none, the spec's problems say why)."""
    try:
        sizes = sizes_of(canary, catalog)
    except ProfileError:
        return []
    spec = canary.spec.plan
    if spec is None:
        line = fixed_overload(canary, sizes)
        if line is None:
            return []
        if canary.spec.capacity is not None:  # mode fixed: refused unless accepted
            return [f"{line} (acceptOverload)"]
        return [f"{line}; the replicas are the spec's: an adopted stable is not resized"]
    demand = plan.sized_demand(canary, sizes)
    stages = plan.rollout_plan(canary, sizes, demand)
    budget = plan.budget_gpus(canary, sizes)
    peak = max(s.entry.peak_gpus(sizes) for s in stages)
    rollbacks = [s.rollback.peak_gpus(sizes) for s in stages if s.rollback is not None]
    peak = max([peak, *rollbacks])
    lines = [
        f"capacity: one replica serves {sizes.stable.requests_per_s:.1f} req/s stable "
        f"({sizes.stable.source}), {sizes.candidate.requests_per_s:.1f} candidate "
        f"({sizes.candidate.source}); planned for {demand:.1f} req/s at "
        f"{spec.headroom:.0%} headroom",
    ]
    for stage in stages:
        moving = stage.entry.peak_gpus(sizes)
        grows = moving > stage.entry.after.gpus(sizes)
        during = f", {moving} GPUs while moving in" if grows else ""
        lines.append(f"capacity: {stage.name}: {_replicas(stage.entry.after, sizes)}{during}")
    fits = "fits" if budget is None or peak <= budget else "does NOT fit"
    limit = f"the budget of {budget}" if budget is not None else "no budget set"
    end = stages[-1].entry.after.gpus(sizes)
    before = plan.fixed_replicas(canary).stable * sizes.stable.gpus
    lines.append(
        f"capacity: at most {peak} GPUs at once, rollbacks included: {fits} {limit}; "
        f"promoted, the candidate holds {end} GPUs where the stable held {before}"
    )
    hours = gpu_hours_line(canary, sizes, stages)
    return [*lines, hours] if hours is not None else lines


def gpu_hours_line(
    canary: ModelCanary, sizes: plan.Sizes, stages: list[plan.Stage] | None = None
) -> str | None:
    """The GPU-hours the plan holds over the steps with a duration, against the stable alone
    (None when no step has a duration)."""
    if stages is None:
        stages = plan.rollout_plan(canary, sizes, plan.sized_demand(canary, sizes))
    held, alone, hours = plan.step_gpu_hours(canary, stages, sizes)
    if alone <= 0:
        return None
    days = hours / 24.0
    return (
        f"capacity: the steps hold {held:,.0f} GPU-hours over {days:g} days, where the stable "
        f"alone holds {alone:,.0f} ({held / alone - 1:+.0%})"
    )


def point_line(canary: ModelCanary, catalog: Catalog, replicas: plan.Replicas) -> str | None:
    """``render``'s line for one rollout point: each variant's replicas and GPUs there."""
    if canary.spec.plan is None:
        return None
    try:
        sizes = sizes_of(canary, catalog)
    except ProfileError:
        return None
    here = f"capacity here: {_replicas(replicas, sizes)}"
    hours = gpu_hours_line(canary, sizes)
    return here if hours is None else f"{here}; {hours.removeprefix('capacity: ')}"
