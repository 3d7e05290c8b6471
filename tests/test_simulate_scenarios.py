"""The contract's rollout scenarios, replayed by ``simulate`` against a real Prometheus.

Each scenario is synthetic vLLM history for its own canary name, all backfilled into one TSDB
served by the real ``prometheus`` binary (module fixture). Every test replays a spec from
``canary/`` through the same path as ``canaryctl simulate`` (range-query prefetch + the pure state
machine) and asserts the outcome, the step and the time. Expected times are derived from the data
(e.g. the first minute the 5-minute P95 really exceeds 300 ms), not hard-coded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.prometheus import start_shared

from controlplane.local.prometheus import PrometheusServer, backfill, start_prometheus
from controlplane.local.synthetic import DAY, HOUR, Change, Scenario, Variant, history_end
from controlplane.promql import queries
from controlplane.providers.prometheus import PrometheusProvider, from_url
from controlplane.simulation import SimulationResult, prefetched, simulate
from controlplane.spec.models import BudgetSpec, ModelCanary
from controlplane.spec.units import parse_duration
from controlplane.validation import validated_file

pytestmark = [pytest.mark.binary, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
MINUTE = 60.0
WEEK_SCHEDULE = ((0.0, 5.0), (7 * DAY, 25.0), (14 * DAY, 75.0), (21 * DAY, 100.0))
STABLE = Variant("bf16", latency_median_s=0.070, latency_sigma=0.3, error_fraction=0.0004)
HEALTHY = Variant("nf4", latency_median_s=0.060, latency_sigma=0.3, error_fraction=0.0004)
COST_QUERY = 'sum(increase(gpu_cost_dollars_total{canary="{{canary}}",variant="{{variant}}"}[1d]))'


def spec_file(name: str) -> ModelCanary:
    return validated_file(ROOT / "canary" / name)[0]


def renamed(canary: ModelCanary, name: str) -> ModelCanary:
    return canary.model_copy(update={"metadata": canary.metadata.model_copy(update={"name": name})})


def with_spec(canary: ModelCanary, **changes: object) -> ModelCanary:
    return canary.model_copy(update={"spec": canary.spec.model_copy(update=changes)})


def short_steps(canary: ModelCanary, duration: str) -> ModelCanary:
    """The same checks with every step lasting ``duration``."""
    steps = [
        s.model_copy(update={"duration": parse_duration(duration) if s.duration else None})
        for s in canary.spec.steps
    ]
    return with_spec(canary, steps=steps)


@dataclass(frozen=True)
class Case:
    canary: ModelCanary
    scenario: Scenario


def build_cases(end: float) -> dict[str, Case]:
    four_week = spec_file("four-week.yml")
    shadow = spec_file("shadow-winrate.yml")
    cases: dict[str, Case] = {}

    def add(
        key: str,
        base: ModelCanary,
        days: float,
        *,
        candidate: Variant = HEALTHY,
        changes: tuple[Change, ...] = (),
        weights: tuple[tuple[float, float], ...] = WEEK_SCHEDULE,
        families: frozenset[str] = frozenset({"e2e", "success", "kpi"}),
        win_rate: tuple[tuple[float, float], ...] = ((0.0, 0.5),),
    ) -> None:
        canary = renamed(base, f"sc-{key}")
        scenario = Scenario(
            start=end - days * DAY,
            duration=days * DAY,
            stable=STABLE,
            candidate=candidate,
            namespace=canary.metadata.namespace,
            canary=canary.metadata.name,
            weights=weights,
            changes=changes,
            families=families,
            win_rate=win_rate,
        )
        cases[key] = Case(canary, scenario)

    add("healthy", four_week, 21.5)
    add("latency", four_week, 3, changes=(Change(2 * DAY, "candidate", {"latency_median_s": 0.2}),))
    kpi_drop = {"resolved_fraction": 0.70 * 0.92}  # -8 %
    add("kpi-drift", four_week, 10, changes=(Change(9 * DAY, "candidate", kpi_drop),))
    add(
        "kpi-blip",
        four_week,
        11,
        changes=(
            Change(9 * DAY, "candidate", kpi_drop),
            Change(9 * DAY + HOUR, "candidate", {"resolved_fraction": 0.70}),
        ),
    )
    add("p99", four_week, 16, changes=(Change(15 * DAY, "candidate", {"latency_median_s": 0.3}),))
    add("low-traffic", short_steps(four_week, "1h"), 0.25, weights=((0.0, 0.05),))
    add(
        "shadow-pass",
        shadow,
        3,
        weights=((0.0, 100.0),),  # mirrored: the candidate sees every request
        families=frozenset({"e2e", "success", "win"}),
        win_rate=((0.0, 0.54),),
    )
    add(
        "shadow-fail",
        shadow,
        14.5,
        weights=((0.0, 100.0),),
        families=frozenset({"e2e", "success", "win"}),
        win_rate=((0.0, 0.51),),
    )
    budget = BudgetSpec(daily_limit=100, throttle_weight=1, cost_query=COST_QUERY)
    add(
        "budget",
        with_spec(four_week, budget=budget),
        4,
        candidate=Variant("nf4", latency_median_s=0.06, error_fraction=0.0004, cost_per_hour=3),
        changes=(
            Change(1 * DAY, "candidate", {"cost_per_hour": 6.0}),  # $144/day: over the limit
            Change(2 * DAY, "candidate", {"cost_per_hour": 2.0}),  # $48/day: back under
        ),
        families=frozenset({"e2e", "success", "cost"}),
    )
    return cases


@dataclass(frozen=True)
class World:
    end: float
    cases: dict[str, Case]
    server: PrometheusServer

    def replay(self, key: str, canary: ModelCanary | None = None) -> SimulationResult:
        case = self.cases[key]
        canary = canary or case.canary
        source = PrometheusProvider(from_url(self.server.url, timeout_s=60))
        provider = prefetched(canary, source, case.scenario.start, self.end)
        return simulate(canary, provider, case.scenario.start, self.end)

    def first_time_above(self, key: str, query: str, threshold: float, since: float) -> float:
        """The first evaluation time >= ``since`` at which ``query`` exceeds ``threshold``."""
        source = PrometheusProvider(from_url(self.server.url, timeout_s=60))
        for t, value in source.range(query, since, self.end, MINUTE):
            if value > threshold:
                return t
        raise AssertionError(f"{query} never exceeds {threshold} after {since}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    end = history_end(time.time())
    end -= end % MINUTE
    cases = build_cases(end)

    def write(folder: Path) -> list[Path]:
        return [f for key, case in cases.items() for f in case.scenario.write(folder / key)]

    server = start_shared("scenarios", end, tmp_path_factory, write)
    try:
        yield World(end, cases, server)
    finally:
        server.stop()


def event_types(result: SimulationResult) -> list[str]:
    return [e.type for e in result.events]


def test_healthy_candidate_is_promoted_after_the_last_step(world: World) -> None:
    result = world.replay("healthy")
    start = world.cases["healthy"].scenario.start
    assert result.outcome == "promoted"
    assert result.state.step == 4
    assert result.finished_at == pytest.approx(start + 21 * DAY)
    assert "RolledBack" not in event_types(result)
    advanced = [e.time - start for e in result.events if e.type == "Advanced"]
    assert advanced == [7 * DAY, 14 * DAY, 21 * DAY]


def test_latency_over_300ms_from_day_2_rolls_back_at_step_1_within_one_interval(
    world: World,
) -> None:
    case = world.cases["latency"]
    result = world.replay("latency")
    assert result.outcome == "rolled_back"
    assert result.state.step == 1
    assert result.reason is not None
    assert result.reason.metric == "latency"
    assert result.reason.value is not None
    assert result.reason.value > 0.3
    p95 = queries.builtin_query(
        "e2e-latency", queries.selector(case.canary, "nf4"), 300, quantile=0.95
    )
    breach = world.first_time_above("latency", p95, 0.3, case.scenario.start)
    assert breach >= case.scenario.start + 2 * DAY
    assert result.finished_at is not None
    assert breach <= result.finished_at <= breach + MINUTE


def test_kpi_drift_of_8_percent_rolls_back_at_step_2_only_once_the_4h_window_shows_it(
    world: World,
) -> None:
    case = world.cases["kpi-drift"]
    result = world.replay("kpi-drift")
    assert result.outcome == "rolled_back"
    assert result.state.step == 2
    assert result.reason is not None
    assert result.reason.metric == "kpi"
    assert result.reason.window == "4h"
    assert result.reason.value is not None
    assert result.reason.value < -0.05
    change = case.scenario.start + 9 * DAY
    assert result.finished_at is not None
    # not at the change: only when the 4-hour window has drifted past -5 % (-8 % x t/4h >= 5 %)
    assert change + 2 * HOUR <= result.finished_at <= change + 4 * HOUR


def test_a_one_hour_kpi_blip_does_not_roll_back(world: World) -> None:
    result = world.replay("kpi-blip")
    assert result.outcome == "in_progress"
    assert result.state.step == 2
    assert "RolledBack" not in event_types(result)
    assert "Breached" not in event_types(result)


def test_p99_over_500ms_in_week_3_rolls_back_at_step_3(world: World) -> None:
    case = world.cases["p99"]
    result = world.replay("p99")
    assert result.outcome == "rolled_back"
    assert result.state.step == 3
    assert result.reason is not None
    assert result.reason.metric == "latency-p99"
    assert result.finished_at is not None
    assert (
        case.scenario.start + 15 * DAY
        <= result.finished_at
        <= case.scenario.start + 15 * DAY + 10 * MINUTE
    )


def test_too_little_candidate_traffic_holds_and_never_advances(world: World) -> None:
    result = world.replay("low-traffic")
    types = event_types(result)
    assert result.outcome == "in_progress"
    assert result.state.step == 1
    assert "Held" in types
    assert "Advanced" not in types
    assert "RolledBack" not in types
    assert result.state.phase == "holding"


def test_shadow_win_rate_4_percent_for_two_days_promotes_to_the_steps(world: World) -> None:
    case = world.cases["shadow-pass"]
    result = world.replay("shadow-pass")
    passed = [e for e in result.events if e.type == "ShadowPassed"]
    assert len(passed) == 1
    assert passed[0].time - case.scenario.start == pytest.approx(2 * DAY, abs=10 * MINUTE)
    assert result.state.step >= 1
    assert result.outcome == "in_progress"
    assert result.state.weight == 10


def test_shadow_win_rate_1_percent_until_the_end_fails(world: World) -> None:
    case = world.cases["shadow-fail"]
    result = world.replay("shadow-fail")
    assert result.outcome == "rolled_back"
    assert result.state.step == 0
    assert "ShadowPassed" not in event_types(result)
    assert result.finished_at == pytest.approx(case.scenario.start + 14 * DAY, abs=10 * MINUTE)


def test_budget_over_the_limit_throttles_to_1_percent_and_recovers(world: World) -> None:
    case = world.cases["budget"]
    result = world.replay("budget")
    throttled = [e for e in result.events if e.type == "Throttled"]
    recovered = [e for e in result.events if e.type == "Unthrottled"]
    assert len(throttled) == 1
    assert throttled[0].weight == 1
    assert len(recovered) == 1
    assert recovered[0].weight == 5
    start = case.scenario.start
    # $72/day until day 1, then $144/day: the 1-day increase crosses $100 ~ 9 h 20 m later
    assert start + DAY < throttled[0].time < start + 2 * DAY
    assert throttled[0].time < recovered[0].time < start + 4 * DAY
    assert result.outcome == "in_progress"
    assert result.state.weight == 5


def test_prometheus_stopped_mid_run_pauses_after_error_limit_and_never_promotes(
    tmp_path: Path,
) -> None:
    canary = renamed(short_steps(spec_file("four-week.yml"), "1h"), "sc-outage")
    end = history_end(time.time())
    end -= end % MINUTE
    scenario = Scenario(
        start=end - 6 * HOUR,
        duration=6 * HOUR,
        stable=STABLE,
        candidate=HEALTHY,
        namespace=canary.metadata.namespace,
        canary=canary.metadata.name,
        families=frozenset({"e2e", "success", "kpi"}),
    )
    backfill(scenario.write(tmp_path / "om"), tmp_path / "tsdb")
    server = start_prometheus(tmp_path / "tsdb")
    stop_at = scenario.start + 30 * MINUTE
    try:
        provider = PrometheusProvider(from_url(server.url, timeout_s=5))

        def outage(point: object) -> None:
            if getattr(point, "time", 0) >= stop_at:
                server.stop()

        result = simulate(canary, provider, scenario.start, end, on_evaluation=outage)
    finally:
        server.stop()
    types = event_types(result)
    assert result.outcome == "paused"
    assert "Promoted" not in types
    assert "RolledBack" not in types
    paused = [e for e in result.events if e.type == "Paused"]
    assert len(paused) == 1
    # errorLimit 5: the fifth consecutive failed evaluation after the stop pauses
    assert paused[0].time == pytest.approx(stop_at + 5 * MINUTE, abs=MINUTE)
    assert result.reason is not None
    assert result.state.step == 1
