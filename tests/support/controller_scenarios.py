"""The metric histories of the controller tests (see conftest.py for how they are served)."""

from __future__ import annotations

from support.controller_world import DAY, NS
from support.scenario import Change, Scenario, Variant

LONG_FAMILIES = frozenset({"e2e", "success", "kpi"})
FLEET = 50
FLEET_BAD = 7
STEP = 1200.0


def fleet_name(i: int) -> str:
    return f"fleet-{i:02d}"


def healthy(name: str = "nf4", **changes: float) -> Variant:
    params: dict[str, float] = {
        "latency_median_s": 0.10,
        "latency_sigma": 0.3,
        "error_fraction": 0.0002,
        "resolved_fraction": 0.70,
        **changes,
    }
    return Variant(name, **params)  # type: ignore[arg-type]


def long_scenarios(start: float, duration: float) -> list[Scenario]:
    def scenario(canary: str, *changes: Change, candidate: Variant | None = None) -> Scenario:
        return Scenario(
            start=start,
            duration=duration,
            stable=healthy("bf16"),
            candidate=candidate or healthy(),
            namespace=NS,
            canary=canary,
            step=STEP,
            weights=((0.0, 25.0),),
            changes=changes,
            families=LONG_FAMILIES,
        )

    return [
        scenario("good"),
        # +300 ms latency from day 3 of the rollout: step 1 rolls back on latency
        scenario("slow", Change(DAY + 3 * DAY, "candidate", {"latency_median_s": 0.40})),
        # 2% errors from day 4: step 1 rolls back on errors
        scenario("errors", Change(DAY + 4 * DAY, "candidate", {"error_fraction": 0.02})),
        # KPI 10% under stable throughout: step 2 rolls back on the baseline drift
        scenario("drift", candidate=healthy(resolved_fraction=0.63)),
        # a fat tail from day 16: step 3 rolls back on latency-p99
        scenario("tail", Change(DAY + 16 * DAY, "candidate", {"latency_sigma": 0.9})),
    ]


def fleet_scenarios(start: float, duration: float) -> list[Scenario]:
    return [
        Scenario(
            start=start,
            duration=duration,
            stable=healthy("bf16"),
            candidate=healthy(error_fraction=0.03 if i == FLEET_BAD else 0.0002),
            namespace=NS,
            canary=fleet_name(i),
            step=STEP,
            weights=((0.0, 25.0),),
            families=frozenset({"e2e", "success"}),
        )
        for i in range(FLEET)
    ]
