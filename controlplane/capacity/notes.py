"""What people read of the capacity plan: the lines ``canaryctl validate`` and ``render`` print.

Owns the words of the plan (:func:`plan_lines`, :func:`point_line`) and, without
``spec.capacity``, the first step where fixed replicas would be overloaded
(:func:`fixed_overload`). Called by ``canaryctl validate`` and ``render``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controlplane.capacity import plan
from controlplane.capacity.estimate import sizes_of
from controlplane.errors import ProfileError
from controlplane.profiles.catalog import Catalog

if TYPE_CHECKING:
    from controlplane.spec.models import ModelCanary


def _replicas(replicas: plan.Replicas, sizes: plan.Sizes) -> str:
    return f"stable {replicas.stable}, candidate {replicas.candidate} ({replicas.gpus(sizes)} GPUs)"


def fixed_overload(canary: ModelCanary, sizes: plan.Sizes) -> str | None:
    """Without ``spec.capacity``: the first step where the candidate's fixed replicas would run
    past what they serve, for the traffic the stable's replicas were sized for; else None."""
    if canary.spec.capacity is not None:
        return None
    demand = plan.sized_demand(canary, sizes)
    fixed = plan.fixed_replicas(canary)
    for i, step in enumerate(canary.spec.steps):
        use = plan.utilisation(sizes, demand, plan.Share(step.weight), fixed)
        if use.candidate is not None and use.candidate > 1.0:
            return (
                f"capacity: at step {i + 1} ({step.weight} %) the candidate's "
                f"{fixed.candidate} replica(s) would run at {use.candidate:.0%} of what they "
                f"serve ({sizes.candidate.source}) for the traffic the stable's {fixed.stable} "
                "were sized for; spec.capacity sizes each variant to its share at every step "
                "(docs/capacity.md)"
            )
    return None


def plan_lines(canary: ModelCanary, catalog: Catalog) -> list[str]:
    """The plan in a few lines (an unknown GPU: none, the spec's problems say why)."""
    try:
        sizes = sizes_of(canary, catalog)
    except ProfileError:
        return []
    if canary.spec.capacity is None:
        line = fixed_overload(canary, sizes)
        return [line] if line is not None else []
    spec = canary.spec.capacity
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
    return lines


def point_line(canary: ModelCanary, catalog: Catalog, replicas: plan.Replicas) -> str | None:
    """``render``'s line for one rollout point: each variant's replicas and GPUs there."""
    if canary.spec.capacity is None:
        return None
    try:
        sizes = sizes_of(canary, catalog)
    except ProfileError:
        return None
    return f"capacity here: {_replicas(replicas, sizes)}"
