"""``judge: sequential`` end to end against a real Prometheus holding synthetic histories.

Three canaries are backfilled into one TSDB: ``seq-bad`` (candidate error rate 2 %, twice the
stable's 1 %), ``seq-good`` (the same 1 % as the stable) and ``seq-slow`` (candidate latency
median +50 %). Each replays through ``simulate`` (the path of ``canaryctl simulate``) and through
the controller's :class:`BatchEvaluator`; the expected outcomes follow from the data:

* the sequential check rolls the 2x-error candidate back, and *earlier* than the threshold check
  of the same spec (``compare: baseline, above: 50%`` with ``for: 10m``, the usual guard against
  noise) would;
* the good candidate is not rolled back and is promoted when its step ends;
* the batched path gives the same decisions as the single-canary evaluator, with one query per
  kind of count for all canaries whatever their step starts.

A fourth, ``seq-drift``, has a candidate whose latency drifts up by 25 % an hour: the shift test
(``test: shift``, the whole histogram) rolls it back before the tail test at the stable's P99
does, and keeps the good candidate.

A fifth, ``seq-mild``, errs 20 % more than the stable (1.2 % against 1 %): too little for the
anytime test within a 30-minute step, enough for the closing test at its end (``finalLook``).
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.canaries import canary_dict, model_canary
from support.prometheus import start_shared

from controlplane.analysis.evaluator import evaluate
from controlplane.controller.batch import BatchEvaluator, Request
from controlplane.local.prometheus import PrometheusServer
from controlplane.local.synthetic import HOUR, Change, Scenario, Variant, history_end
from controlplane.promql import grouped as grouped_promql
from controlplane.providers.prometheus import PrometheusProvider, from_url
from controlplane.providers.source import PrometheusSource
from controlplane.rollout.observations import DueCheck, Observations
from controlplane.rollout.schedule import stage_checks
from controlplane.rollout.state import RolloutState
from controlplane.simulation import SimulationResult, simulate
from controlplane.spec.models import ModelCanary

pytestmark = pytest.mark.binary

MINUTE = 60.0
STABLE = Variant("bf16", latency_median_s=0.50, latency_sigma=0.3, error_fraction=0.01)
GOOD = Variant("nf4", latency_median_s=0.50, latency_sigma=0.3, error_fraction=0.01)
BAD = Variant("nf4", latency_median_s=0.50, latency_sigma=0.3, error_fraction=0.02)
MILD = Variant("nf4", latency_median_s=0.50, latency_sigma=0.3, error_fraction=0.012)
SPAN = 3 * HOUR


# The canaries of these tests, in ml-serving: errors and latency-p99 of stable bf16 and candidate
# nf4 every minute over 5 minutes; their steps come from one_step().
BASE = canary_dict(
    model={"name": "m", "runtime": "vllm"},
    stable={"name": "bf16", "storageUri": "hf://org/m", "gpu": "nvidia-l40s"},
    candidate={"name": "nf4", "storageUri": "hf://org/m-nf4", "gpu": "nvidia-l40s"},
    traffic={"router": "gateway-api"},
    analysis={
        "interval": "1m",
        "window": "5m",
        "metrics": [
            {"name": "errors", "builtin": "error-rate"},
            {"name": "latency-p99", "builtin": "e2e-latency", "quantile": 0.99},
        ],
    },
    steps=None,
    shadow=None,
    budget=None,
)


def one_step(checks: list[dict[str, Any]], duration: str = "2h") -> list[dict[str, Any]]:
    """``spec.steps``: 25 % for ``duration`` with ``checks``, then 100 %."""
    return [{"weight": 25, "duration": duration, "rollbackOn": checks}, {"weight": 100}]


SEQUENTIAL = {"metric": "errors", "compare": "baseline", "above": "0%", "judge": "sequential"}
THRESHOLD = {"metric": "errors", "compare": "baseline", "above": "50%", "for": "10m"}
LATENCY_SEQ = {"metric": "latency-p99", "above": "1s", "judge": "sequential"}
TAIL = {"metric": "latency-p99", "compare": "baseline", "above": "10%", "judge": "sequential"}
SHIFT = {**TAIL, "above": "0%", "test": "shift"}
DRIFT = tuple(  # +25 % an hour, in 5-minute steps
    Change(k * 5 * MINUTE, "candidate", {"latency_median_s": 0.50 * (1 + 0.25 * k / 12)})
    for k in range(1, 36)
)


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PrometheusServer, float]]:
    end = history_end(time.time())
    start = end - SPAN

    def write(folder: Path) -> list[Path]:
        files: list[Path] = []
        slow = Change(0.0, "candidate", {"latency_median_s": 0.75})
        for name, candidate, changes in (
            ("seq-bad", BAD, ()),
            ("seq-good", GOOD, ()),
            ("seq-slow", GOOD, (slow,)),
            ("seq-drift", GOOD, DRIFT),
            ("seq-mild", MILD, ()),
        ):
            scenario = Scenario(
                start=start,
                duration=SPAN,
                stable=STABLE,
                candidate=candidate,
                namespace="ml-serving",
                canary=name,
                total_rps=50.0,
                weights=((0.0, 25.0),),
                changes=changes,
                families=frozenset({"e2e", "success"}),
            )
            files += scenario.write(folder / name)
        return files

    server = start_shared("sequential-judge", end, tmp_path_factory, write)
    try:
        yield server, start
    finally:
        server.stop()


def replay(server: PrometheusServer, start: float, canary: ModelCanary) -> SimulationResult:
    provider = PrometheusProvider(from_url(server.url))
    # Start after one minute of data so that the first evaluation sees the step's traffic.
    return simulate(canary, provider, start + MINUTE, start + SPAN)


def rollback_time(result: SimulationResult) -> float:
    assert result.outcome == "rolled_back", result.to_json()
    found = result.finished_at
    assert found is not None
    return found


def step_requests(canaries: list[ModelCanary], starts: list[float]) -> list[Request]:
    """One batch request per canary, in step 1 since its own start, with that step's checks."""
    requests = []
    for canary, since in zip(canaries, starts, strict=True):
        state = RolloutState(
            spec_hash="x", stage="steps", started_at=since, stage_started_at=since, step_index=0
        )
        due: list[DueCheck] = stage_checks(canary, state)
        requests.append(Request(canary.metadata.name, canary, due, since=since))
    return requests


def assert_as_evaluator(
    server: PrometheusServer,
    requests: list[Request],
    found: dict[Hashable, Observations],
    now: float,
) -> None:
    """The batched results are the single-canary evaluator's, message for message, and so is
    the demand (one grouped query against each canary's own)."""
    provider = PrometheusProvider(from_url(server.url))
    for req in requests:
        single = evaluate(req.canary, req.due, provider, now, since=req.since)
        assert single.demand_rps is not None
        assert found[req.key].demand_rps == pytest.approx(single.demand_rps)
        for key, result in single.checks.items():
            got = found[req.key].checks[key]
            assert (got.verdict, got.decided, got.message) == (
                result.verdict,
                result.decided,
                result.message,
            )


def test_sequential_rolls_back_a_2x_error_candidate_before_the_threshold_check(
    prometheus: tuple[PrometheusServer, float],
) -> None:
    server, start = prometheus
    seq = replay(server, start, model_canary("seq-bad", base=BASE, steps=one_step([SEQUENTIAL])))
    thr = replay(server, start, model_canary("seq-bad", base=BASE, steps=one_step([THRESHOLD])))
    t_seq, t_thr = rollback_time(seq), rollback_time(thr)
    assert t_seq < t_thr, (t_seq - start, t_thr - start)
    reason = seq.reason
    assert reason is not None
    assert reason.key == "steps[0].rollbackOn[0]"
    assert "sequential) breach" in seq.state.checks[reason.key].message
    # Both checks in one spec: the sequential one decides first.
    both = replay(
        server, start, model_canary("seq-bad", base=BASE, steps=one_step([THRESHOLD, SEQUENTIAL]))
    )
    assert rollback_time(both) == t_seq
    assert both.reason is not None
    assert both.reason.key == "steps[0].rollbackOn[1]"


def test_sequential_keeps_a_good_candidate_and_promotes_it(
    prometheus: tuple[PrometheusServer, float],
) -> None:
    server, start = prometheus
    result = replay(
        server, start, model_canary("seq-good", base=BASE, steps=one_step([SEQUENTIAL]))
    )
    assert result.outcome == "promoted", result.to_json()
    finished = result.finished_at
    assert finished is not None
    # No evidence either way (the rates are equal): the step runs its full 2 hours.
    assert finished - (start + MINUTE) >= 2 * HOUR


def test_sequential_latency_passes_early_or_breaches_on_the_histogram(
    prometheus: tuple[PrometheusServer, float],
) -> None:
    server, start = prometheus
    # P99 of the good candidate: 0.50 * exp(2.326 * 0.3) ~ 1.0 s; of the slow one ~ 1.5 s.
    slow = replay(server, start, model_canary("seq-slow", base=BASE, steps=one_step([LATENCY_SEQ])))
    assert rollback_time(slow) - start < 30 * MINUTE
    relaxed = {**LATENCY_SEQ, "above": "1.5s"}
    good = replay(server, start, model_canary("seq-good", base=BASE, steps=one_step([relaxed])))
    assert good.outcome == "promoted", good.to_json()
    finished = good.finished_at
    assert finished is not None
    assert finished - start < HOUR  # decided early: far below the limit
    assert any("sequential judge decided early" in e.message for e in good.events)


def test_batched_path_matches_the_evaluator_with_one_query_per_kind(
    prometheus: tuple[PrometheusServer, float],
) -> None:
    server, start = prometheus
    now = start + 40 * MINUTE
    checks = [SEQUENTIAL, LATENCY_SEQ]
    canaries = [
        model_canary(name, base=BASE, steps=one_step(checks))
        for name in ("seq-bad", "seq-good", "seq-slow")
    ]
    # Different step starts per canary: different windows, still grouped.
    starts = [start + 5 * MINUTE, start + 7 * MINUTE, start + 11 * MINUTE]
    source = _Recording(server.url)
    batch = BatchEvaluator(source)
    requests = step_requests(canaries, starts)
    found = batch.evaluate(requests, now)
    # errors, requests, buckets: three grouped queries for three canaries; one more for the
    # variants' loads, since a comparison (seq-bad's errors) breached; one for the demand the
    # capacity plan (the default) follows
    assert batch.last.queries == 5
    assert len([q for q in source.queries if "num_requests_running" in q]) == 1
    # An absolute latency check reads the candidate's histogram only: its terms ask for no
    # other variant (the samples and verdicts below still equal the evaluator's).
    (buckets,) = [q for q in source.queries if "_bucket" in q]
    cand = {c.spec.candidate.name for c in canaries}
    assert buckets.count(f'variant=~"{"|".join(sorted(cand))}"') == len(set(starts))
    provider = PrometheusProvider(from_url(server.url))
    for req in requests:
        single = evaluate(req.canary, req.due, provider, now, since=req.since)
        for key, result in single.checks.items():
            got = found[req.key].checks[key]
            assert (got.verdict, got.decided) == (result.verdict, result.decided), key
            assert got.samples == pytest.approx(result.samples)
            assert (got.load_candidate, got.load_stable) == (
                result.load_candidate,
                result.load_stable,
            )
    bad = found["seq-bad"].checks["steps[0].rollbackOn[0]"]
    assert bad.decided == "breach"
    assert found["seq-slow"].checks["steps[0].rollbackOn[1]"].decided == "breach"
    # Without the step start the check cannot be judged, and says so.
    blind = batch.evaluate([Request("x", canaries[0], requests[0].due)], now)["x"]
    assert blind.checks["steps[0].rollbackOn[0]"].verdict == "inconclusive"
    assert "step started" in blind.checks["steps[0].rollbackOn[0]"].message


class _Recording(PrometheusSource):
    """The real source, recording every query's text."""

    def __init__(self, url: str) -> None:
        super().__init__(from_url(url))
        self.queries: list[str] = []

    def vector(self, query: str, at: float) -> list[tuple[dict[str, str], float]]:
        self.queries.append(query)
        return super().vector(query, at)


def test_pinned_answers_are_kept_from_tick_to_tick_and_decide_the_same(
    prometheus: tuple[PrometheusServer, float],
) -> None:
    """The shift test's reference (the stable's buckets before the step, ``@`` its start) no
    longer changes once its time is past: the evaluator asks for it once and keeps it; every
    tick decides exactly as a fresh evaluator does."""
    server, start = prometheus
    canaries = [
        model_canary(name, base=BASE, steps=one_step([SHIFT])) for name in ("seq-good", "seq-slow")
    ]
    requests = step_requests(canaries, [start + 5 * MINUTE, start + 7 * MINUTE])
    source = _Recording(server.url)
    kept = BatchEvaluator(source)
    for now in (start + 20 * MINUTE, start + 21 * MINUTE, start + 22 * MINUTE):
        before = len(source.queries)
        found = kept.evaluate(requests, now)
        fresh = BatchEvaluator(PrometheusSource(from_url(server.url))).evaluate(requests, now)
        for req in requests:
            for key, result in fresh[req.key].checks.items():
                got = found[req.key].checks[key]
                assert (got.verdict, got.decided, got.message) == (
                    result.verdict,
                    result.decided,
                    result.message,
                ), (now, key)
        asked = source.queries[before:]
        references = [q for q in asked if "increase(" in q and " @ " in q]
        if now == start + 20 * MINUTE:
            assert references  # the first tick asks for the reference
        else:
            assert not references, references  # later ticks keep it
    # buckets, the shift's counts and the demand, not the reference
    assert kept.last.queries < 4


def test_shift_test_catches_a_drift_before_the_tail_test_and_keeps_a_good_candidate(
    prometheus: tuple[PrometheusServer, float],
) -> None:
    server, start = prometheus
    shift = replay(server, start, model_canary("seq-drift", base=BASE, steps=one_step([SHIFT])))
    tail = replay(server, start, model_canary("seq-drift", base=BASE, steps=one_step([TAIL])))
    t_shift, t_tail = rollback_time(shift) - start, rollback_time(tail) - start
    assert t_shift < t_tail, (t_shift, t_tail)
    assert t_shift < 30 * MINUTE  # the median is then less than 12 % slower
    reason = shift.reason
    assert reason is not None
    assert reason.key is not None
    assert "of request pairs" in shift.state.checks[reason.key].message
    good = replay(server, start, model_canary("seq-good", base=BASE, steps=one_step([SHIFT])))
    assert good.outcome == "promoted", good.to_json()


def test_batched_shift_test_matches_the_evaluator_with_one_reference_query(
    prometheus: tuple[PrometheusServer, float],
) -> None:
    server, start = prometheus
    now = start + 40 * MINUTE
    canaries = [
        model_canary(name, base=BASE, steps=one_step([SHIFT])) for name in ("seq-good", "seq-drift")
    ]
    starts = [start + 5 * MINUTE, start + 7 * MINUTE]
    batch = BatchEvaluator(PrometheusSource(from_url(server.url)))
    requests = step_requests(canaries, starts)
    found = batch.evaluate(requests, now)
    # the buckets since each step start, the references before; the loads of seq-drift's
    # breach; the demand
    assert batch.last.queries == 4
    assert_as_evaluator(server, requests, found, now)
    assert found["seq-drift"].checks["steps[0].rollbackOn[0]"].decided == "breach"
    assert found["seq-good"].checks["steps[0].rollbackOn[0]"].decided is None


CLOSING = {**SEQUENTIAL, "alpha": 0.05, "finalLook": 0.5}


def test_closing_test_rolls_back_at_the_steps_end_what_the_anytime_test_lets_through(
    prometheus: tuple[PrometheusServer, float],
) -> None:
    server, start = prometheus
    anytime = replay(
        server,
        start,
        model_canary("seq-mild", base=BASE, steps=one_step([{**CLOSING, "finalLook": 0}], "30m")),
    )
    assert anytime.outcome == "promoted", anytime.to_json()
    closing = replay(
        server, start, model_canary("seq-mild", base=BASE, steps=one_step([CLOSING], "30m"))
    )
    # Rolled back at the step's end, not before: the first evaluation 30 minutes in.
    assert rollback_time(closing) == start + MINUTE + 30 * MINUTE
    reason = closing.reason
    assert reason is not None
    assert reason.key is not None
    message = closing.state.checks[reason.key].message
    assert "closing test at the step's end" in message
    assert "<= 0.025" in message
    good = replay(
        server, start, model_canary("seq-good", base=BASE, steps=one_step([CLOSING], "30m"))
    )
    assert good.outcome == "promoted", good.to_json()


def test_batched_closing_test_matches_the_evaluator_and_is_pinned_at_the_steps_end(
    prometheus: tuple[PrometheusServer, float],
) -> None:
    server, start = prometheus
    canaries = [
        model_canary(name, base=BASE, steps=one_step([CLOSING], "30m"))
        for name in ("seq-mild", "seq-good")
    ]
    starts = [start + 5 * MINUTE, start + 7 * MINUTE]
    batch = BatchEvaluator(PrometheusSource(from_url(server.url)))
    seen: dict[float, str] = {}
    # At the end of the first step and while it would be held 10 minutes later: the closing
    # test's data stop at the step's end, so its p-value is the same at both looks.
    for now in (starts[1] + 30 * MINUTE, starts[1] + 40 * MINUTE):
        requests = step_requests(canaries, starts)
        found = batch.evaluate(requests, now)
        # errors and requests since each step start, and both over each whole step; the loads
        # of seq-mild's breached comparison; the demand
        assert batch.last.queries == 6
        assert_as_evaluator(server, requests, found, now)
        mild = found["seq-mild"].checks["steps[0].rollbackOn[0]"]
        assert mild.decided == "breach"
        assert "closing test" in mild.message
        seen[now] = mild.message.split(" <= ")[0]
        assert found["seq-good"].checks["steps[0].rollbackOn[0]"].verdict == "pass"
    assert len(set(seen.values())) == 1, seen
    # Before the end there is no closing test: the anytime test alone, and no breach.
    early = batch.evaluate(step_requests(canaries, starts), starts[1] + 20 * MINUTE)
    assert batch.last.queries == 3  # and the demand
    assert early["seq-mild"].checks["steps[0].rollbackOn[0]"].verdict == "pass"


def test_a_large_fleet_splits_its_grouped_queries_and_decides_the_same(
    prometheus: tuple[PrometheusServer, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above ``grouped_promql.SHARD_CANARIES`` canaries a grouped sequential query is split (at most
    ``workers`` parts per kind): made 1 here, three canaries ask each kind in three parts, a
    fourth worker-bound one in two, and every result (messages included) is the unsplit tick's
    and the per-canary evaluator's."""
    server, start = prometheus
    now = start + 40 * MINUTE
    canaries = [
        model_canary(name, base=BASE, steps=one_step([SEQUENTIAL, SHIFT]))
        for name in ("seq-bad", "seq-good", "seq-slow")
    ]
    requests = step_requests(canaries, [start + 5 * MINUTE, start + 7 * MINUTE, start + 7 * MINUTE])
    whole = BatchEvaluator(PrometheusSource(from_url(server.url)))
    expected = whole.evaluate(requests, now)
    monkeypatch.setattr(grouped_promql, "SHARD_CANARIES", 1)
    split = BatchEvaluator(PrometheusSource(from_url(server.url)))
    found = split.evaluate(requests, now)
    # the sequential kinds are split; the breached comparisons' one load query and the one
    # demand query are not
    assert split.last.queries == 3 * (whole.last.queries - 2) + 2
    pair = BatchEvaluator(PrometheusSource(from_url(server.url)), workers=2)
    assert pair.evaluate(requests, now) == expected
    assert pair.last.queries == 2 * (whole.last.queries - 2) + 2
    assert found == expected
    assert_as_evaluator(server, requests, found, now)
