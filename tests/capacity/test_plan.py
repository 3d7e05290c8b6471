"""The capacity plan (controlplane.capacity.plan): replicas per weight, the order of a change,
the GPU budget, and the whole rollout's plan, table-driven on explicit per-replica capacities."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.capacity import plan
from controlplane.capacity.plan import ReplicaCapacity, Replicas, Share, Sizes
from tests.support.canaries import CANDIDATE, STABLE, canary_dict, model_canary

# a stable replica serves 10 req/s; the candidate 20 (a faster quantized variant) or 8 (slower)
FAST = Sizes(ReplicaCapacity(10.0, 1, "test"), ReplicaCapacity(20.0, 1, "test"))
SLOW = Sizes(ReplicaCapacity(10.0, 1, "test"), ReplicaCapacity(8.0, 1, "test"))


BASE = canary_dict(
    stable={**STABLE, "replicas": 2}, candidate={**CANDIDATE, "replicas": 1}, shadow=None
)
"""The example with a stable of two replicas, a candidate of one and no shadow phase."""


@pytest.mark.parametrize(
    ("sizes", "headroom", "demand", "share", "want"),
    [
        # 16 req/s, 20 % headroom: a stable replica plans 8, a fast candidate replica 16
        (FAST, 0.2, 16.0, Share(0), Replicas(2, 1)),
        (FAST, 0.2, 16.0, Share(5), Replicas(2, 1)),
        (FAST, 0.2, 16.0, Share(25), Replicas(2, 1)),
        (FAST, 0.2, 16.0, Share(75), Replicas(1, 1)),
        (FAST, 0.2, 16.0, Share(100), Replicas(0, 1)),
        # the slower candidate (6.4 planned per replica) needs two at 75 %, three at 100 %
        (SLOW, 0.2, 16.0, Share(75), Replicas(1, 2)),
        (SLOW, 0.2, 16.0, Share(100), Replicas(0, 3)),
        # shadow: the candidate serves a mirror of everything, the stable all of it too
        (SLOW, 0.2, 16.0, Share(0, mirror=True), Replicas(2, 3)),
        # twice the traffic observed: twice the stable
        (FAST, 0.2, 32.0, Share(0), Replicas(4, 1)),
        (FAST, 0.2, 32.0, Share(50), Replicas(2, 1)),
        # no headroom: exactly at capacity still fits one replica per 10 / 20 req/s
        (FAST, 0.0, 20.0, Share(50), Replicas(1, 1)),
        (FAST, 0.0, 20.1, Share(50), Replicas(2, 1)),
    ],
)
def test_replicas_follow_each_variants_share(
    sizes: Sizes, headroom: float, demand: float, share: Share, want: Replicas
) -> None:
    spec = model_canary(base=BASE, capacity={"headroom": headroom})
    assert plan.replicas_at(spec, sizes, demand, share) == want


def test_the_candidate_never_runs_fewer_than_its_replicas() -> None:
    spec = model_canary(base=BASE, capacity={}, candidate={**CANDIDATE, "replicas": 2})
    assert plan.replicas_at(spec, FAST, 16.0, Share(5)).candidate == 2


def test_with_mode_fixed_replicas_are_fixed() -> None:
    spec = model_canary(base=BASE, capacity={"mode": "fixed"})
    for weight in (0, 5, 75, 100):
        assert plan.replicas_at(spec, SLOW, 16.0, Share(weight)) == Replicas(2, 1)


def test_without_a_capacity_block_the_default_plan_sizes_each_step() -> None:
    spec = model_canary(base=BASE)
    assert spec.spec.plan == model_canary(base=BASE, capacity={}).spec.plan
    assert plan.replicas_at(spec, SLOW, 16.0, Share(0)) == Replicas(2, 1)
    at_75 = plan.replicas_at(spec, SLOW, 16.0, Share(75))
    assert at_75.candidate >= at_75.stable
    assert plan.replicas_at(spec, SLOW, 16.0, Share(100)).stable == 0


@pytest.mark.parametrize("router", ["kserve", "kserve-knative"])
def test_a_single_service_router_keeps_fixed_replicas_by_default(router: str) -> None:
    spec = model_canary(base=BASE, router=router)
    assert spec.spec.plan is None
    assert plan.replicas_at(spec, SLOW, 16.0, Share(75)) == Replicas(2, 1)


def test_the_default_demand_is_what_the_stables_replicas_were_sized_for() -> None:
    spec = model_canary(base=BASE, capacity={"headroom": 0.2})
    assert plan.sized_demand(spec, FAST) == pytest.approx(16.0)
    assert plan.demand_of(spec, FAST, None) == pytest.approx(16.0)
    assert plan.demand_of(spec, FAST, 3.0) == 3.0
    # at weight 0 the stable keeps exactly its replicas
    assert plan.replicas_at(spec, FAST, plan.sized_demand(spec, FAST), Share(0)).stable == 2


@pytest.mark.parametrize(
    ("source", "target", "before", "after"),
    [
        # a rising candidate is scaled up before, the stable down only after
        (Share(25), Share(75), Replicas(2, 2), Replicas(1, 2)),
        (Share(75), Share(100), Replicas(1, 3), Replicas(0, 3)),
        # a rollback restores the stable before traffic returns; the candidate goes after
        (Share(75), Share(0), Replicas(2, 2), Replicas(2, 1)),
        (Share(0), Share(5), Replicas(2, 1), Replicas(2, 1)),
    ],
)
def test_a_change_scales_up_before_and_down_after(
    source: Share, target: Share, before: Replicas, after: Replicas
) -> None:
    spec = model_canary(base=BASE, capacity={})
    moved = plan.change(spec, SLOW, 16.0, source, target)
    assert (moved.before, moved.after) == (before, after)
    assert moved.peak_gpus(SLOW) == before.gpus(SLOW)


@pytest.mark.parametrize(
    ("capacity", "stable_gpus", "budget"),
    [
        ({}, 1, None),
        ({"maxGPUs": 3}, 1, 3),
        ({"maxSurgeGPUs": 1}, 1, 3),  # stable's 2 GPUs plus 1
        ({"maxSurgeGPUs": 1}, 2, 5),  # stable's 2 x 2 GPUs plus 1
        ({"maxGPUs": 3, "maxSurgeGPUs": 4}, 1, 3),  # the lesser
    ],
)
def test_the_budget(capacity: dict[str, Any], stable_gpus: int, budget: int | None) -> None:
    sizes = Sizes(ReplicaCapacity(10.0, stable_gpus, "t"), ReplicaCapacity(20.0, 1, "t"))
    assert plan.budget_gpus(model_canary(base=BASE, capacity=capacity), sizes) == budget


def test_the_rollout_plan_names_every_stage_with_its_rollback() -> None:
    spec = model_canary(base=BASE, capacity={"maxGPUs": 4})
    stages = plan.rollout_plan(spec, SLOW, 16.0)
    assert [s.name for s in stages] == ["deploy", "step 1", "step 2", "step 3", "step 4"]
    assert stages[0].rollback is None
    step3 = stages[3]
    assert (step3.entry.before, step3.entry.after) == (Replicas(2, 2), Replicas(1, 2))
    assert step3.rollback is not None
    assert step3.rollback.before == Replicas(2, 2)
    assert step3.entry.fits(SLOW)
    assert step3.entry.peak_gpus(SLOW) == 4
    # the promotion step: 3 candidate replicas beside the 1 stable still serving 25 %
    assert stages[4].entry.before == Replicas(1, 3)
    assert stages[4].rollback is None  # 100 % without checks: only a person's abort
    assert plan.first_overrun(stages, SLOW) is None


def test_a_step_at_100_percent_with_checks_needs_the_stables_gpus_back() -> None:
    steps = [
        {"weight": 50, "duration": "1h"},
        {"weight": 100, "duration": "1h", "rollbackOn": [{"metric": "latency", "above": "300ms"}]},
    ]
    spec = model_canary(capacity={"maxGPUs": 4}, shadow=None, steps=steps)
    stages = plan.rollout_plan(spec, SLOW, 16.0)
    overrun = plan.first_overrun(stages, SLOW)
    assert overrun is not None
    assert overrun[0].name == "step 2"
    assert overrun[1] is overrun[0].rollback
    assert overrun[1].before == Replicas(2, 3)


def test_a_budget_that_cannot_fit_names_the_first_change_over_it() -> None:
    spec = model_canary(base=BASE, capacity={"maxGPUs": 3})
    stages = plan.rollout_plan(spec, SLOW, 16.0)
    overrun = plan.first_overrun(stages, SLOW)
    assert overrun is not None
    stage, moved = overrun
    assert stage.name == "step 3"
    assert moved is stage.entry
    assert moved.peak_gpus(SLOW) == 4
    assert moved.budget == 3


def test_a_faster_candidate_ends_on_fewer_gpus_than_the_stable_had() -> None:
    spec = model_canary(base=BASE, capacity={})
    stages = plan.rollout_plan(spec, FAST, plan.sized_demand(spec, FAST))
    assert stages[-1].entry.after == Replicas(0, 1)
    assert stages[-1].entry.after.gpus(FAST) < Replicas(2, 0).gpus(FAST)


def test_a_shadow_phase_sizes_the_candidate_for_the_whole_mirror() -> None:
    spec = model_canary(capacity={})  # the example has a shadow phase
    stages = plan.rollout_plan(spec, SLOW, 16.0)
    assert stages[1].name == "shadow"
    assert stages[1].entry.after == Replicas(2, 3)


def test_utilisation_shows_the_fixed_candidate_overloaded() -> None:
    spec = model_canary(base=BASE)
    use = plan.utilisation(SLOW, 16.0, Share(75), plan.fixed_replicas(spec))
    assert use.stable == pytest.approx(4.0 / 20.0)
    assert use.candidate == pytest.approx(12.0 / 8.0)
    none = plan.utilisation(SLOW, 16.0, Share(0), plan.fixed_replicas(spec))
    assert none.candidate is None


def autoscaling(stable: int | None = None, candidate: int | None = None) -> dict[str, Any]:
    """Stable and candidate sections, each autoscaling up to the given ``maxReplicas``."""

    def one(base: dict[str, Any], replicas: int, top: int | None) -> dict[str, Any]:
        section = {**base, "replicas": replicas}
        if top is not None:
            section["autoscaling"] = {"maxReplicas": top}
        return section

    return {"stable": one(STABLE, 2, stable), "candidate": one(CANDIDATE, 1, candidate)}


@pytest.mark.parametrize(
    ("share", "floor", "want"),
    [
        # the stable autoscales to 6 at all the traffic, the candidate to 4: each its share
        (Share(0), Replicas(2, 1), Replicas(6, 1)),
        (Share(25), Replicas(2, 1), Replicas(5, 1)),
        (Share(75), Replicas(1, 2), Replicas(2, 3)),
        (Share(100), Replicas(0, 3), Replicas(0, 4)),
        # never below the plan's minimum
        (Share(5), Replicas(2, 2), Replicas(6, 2)),
    ],
)
def test_autoscaling_bounds_follow_each_variants_share(
    share: Share, floor: Replicas, want: Replicas
) -> None:
    spec = model_canary(capacity={}, shadow=None, **autoscaling(stable=6, candidate=4))
    assert plan.ceilings(spec, share, floor) == want


def test_fixed_autoscaling_keeps_its_whole_range_and_others_are_pinned() -> None:
    spec = model_canary(shadow=None, capacity={"mode": "fixed"}, **autoscaling(stable=6))
    assert plan.ceilings(spec, Share(75), Replicas(2, 1)) == Replicas(6, 1)


def test_the_budget_holds_what_autoscaling_may_reach() -> None:
    pinned = model_canary(base=BASE, capacity={"maxGPUs": 4})
    assert plan.first_overrun(plan.rollout_plan(pinned, SLOW, 16.0), SLOW) is None
    spec = model_canary(capacity={"maxGPUs": 4}, shadow=None, **autoscaling(candidate=4))
    overrun = plan.first_overrun(plan.rollout_plan(spec, SLOW, 16.0), SLOW)
    assert overrun is not None
    stage, moved = overrun
    assert stage.name == "step 3"
    assert moved.ceiling_before == Replicas(2, 3)
    assert moved.peak_gpus(SLOW) == 5


JUDGED = canary_dict(base=BASE, capacity={"headroom": 0.2}, router="gateway-api")
"""The example on a router that runs the quality judge, at 20 % headroom."""
PAIRED = {"sample": "20%", "perMinute": 6000, "tolerance": 0.1}
"""Pairs of 20 % of the traffic, capped at 100 a second."""


def test_the_pairs_load_each_variant_at_the_sample_up_to_the_cap() -> None:
    """A pair is one request to each variant: each gets ``sample`` of the demand, at most
    ``perMinute`` a minute, and nothing where the route sends the pairer nothing."""
    assert plan.pairing_rps(model_canary(base=BASE), 16.0, Share(50)) == 0.0
    spec = model_canary(base=JUDGED, quality=PAIRED)
    assert plan.pairing_rps(spec, 16.0, Share(50)) == pytest.approx(3.2)
    capped = model_canary(base=JUDGED, quality={**PAIRED, "perMinute": 60})
    assert plan.pairing_rps(capped, 16.0, Share(50)) == pytest.approx(1.0)
    for share in (Share(0), Share(100)):
        assert plan.pairing_rps(spec, 16.0, share) == 0.0
    # the shadow phase pairs the stable's sample, which is all the demand's
    assert plan.pairing_rps(spec, 16.0, Share(0, mirror=True)) == pytest.approx(3.2)


def test_the_plan_sizes_each_variant_for_its_share_and_the_pairs() -> None:
    # at 50 % of 16 req/s a stable replica plans 8 (its share, exactly); the pairs' 3.2 req/s
    # more need a second one; the fast candidate's one replica plans 16 and has room for both
    without = model_canary(base=BASE, capacity={"headroom": 0.2})
    assert plan.replicas_at(without, FAST, 16.0, Share(50)) == Replicas(1, 1)
    judged = model_canary(base=JUDGED, quality=PAIRED)
    assert plan.replicas_at(judged, FAST, 16.0, Share(50)) == Replicas(2, 1)
    # at 100 % the pairer is gone: the promotion's replicas are the same
    assert plan.replicas_at(judged, FAST, 16.0, Share(100)) == Replicas(0, 1)


def test_utilisation_counts_the_pairs() -> None:
    use = plan.utilisation(FAST, 16.0, Share(50), Replicas(1, 1), 3.2)
    assert use.stable == pytest.approx(11.2 / 10)
    assert use.candidate == pytest.approx(11.2 / 20)
