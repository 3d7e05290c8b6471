"""Smoke and model tests of bench/blast_radius.py and bench/common.py.

The benchmark's ``--quick`` mode must run in seconds and write a table with every scenario and
every judge into its own section of a markdown file, leaving other sections alone; its model of
Flagger must roll back exactly when Flagger's scheduler would.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "blast_radius.py"


def _load(name: str, path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.binary
def test_quick_run_writes_every_scenario_into_its_own_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## Other\n\nkeep me\n", encoding="utf-8")
    cmd = [sys.executable, str(SCRIPT), "--quick", "--output", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert first.returncode == 0, first.stderr
    text = out.read_text(encoding="utf-8")
    assert "## Other\n\nkeep me" in text
    assert text.count("## Blast radius") == 1
    bench = text.split("## Blast radius", 1)[1]
    for scenario in (
        "good (identical)",
        "2x error rate",
        "+30% P99",
        "+50% P99",
        "drift",
        "good, 1% base",
        "2x error rate, 1% base",
    ):
        judges = ["flagger", "threshold", "sequential", "sequential-vs-stable", "sequential-shift"]
        judges += ["oracle"] if "good" not in scenario else []
        for judge in judges:
            assert any(
                f"| {scenario}" in line and f"| {judge} |" in line for line in bench.splitlines()
            ), (scenario, judge)
    sized = [line for line in bench.splitlines() if "knows the drift's shape" in line]
    assert len(sized) == 3 * 3  # three size ranges at each of three rates, drift rows only
    assert all("| drift to +50% over 1h |" in line for line in sized)
    assert "python bench/blast_radius.py --quick" in bench
    assert "target: <= 0.2x `flagger` at no more false rollbacks" in bench  # the summary
    # A second run replaces the section instead of appending another one.
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert second.returncode == 0, second.stderr
    again = out.read_text(encoding="utf-8")
    assert again.count("## Blast radius") == 1
    assert "## Other\n\nkeep me" in again


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        pytest.param(None, "# Benchmarks", id="creates-file"),
        pytest.param("# B\n\n## X\n\nx\n", "## X\n\nx\n\n## S\n\nnew\n", id="appends"),
        pytest.param(
            "# B\n\n## S\n\nold\n\n## X\n\nx\n", "## S\n\nnew\n\n## X\n\nx\n", id="replaces-middle"
        ),
        pytest.param("# B\n\n## S\n\nold\n", "# B\n\n## S\n\nnew\n", id="replaces-last"),
    ],
)
def test_replace_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: str | None, expected: str
) -> None:
    common = _load("bench_common", REPO / "bench" / "common.py", monkeypatch)
    path = tmp_path / "b.md"
    if before is not None:
        path.write_text(before, encoding="utf-8")
    common.replace_section(path, "## S", "new")
    once = path.read_text(encoding="utf-8")
    assert expected in once
    assert "old" not in once
    common.replace_section(path, "## S", "new")
    assert path.read_text(encoding="utf-8") == once


def _flagger_streams(module: ModuleType, fail_minutes: list[int], horizon: int) -> object:
    """One run whose candidate fails Flagger's success-rate check exactly at fail_minutes."""
    k = len(module.BUCKETS)
    buckets = np.zeros((1, horizon, k), dtype=np.int64)
    buckets[..., 0] = 30  # every request in the fastest bucket: the latency check passes
    n = buckets.sum(-1)
    err = np.zeros((1, horizon), dtype=np.int64)
    for m in fail_minutes:
        err[0, m - 1] = 1  # 1/30 = 3.3 % errors: under 99 % success
    zeros = np.zeros((1, horizon), dtype=np.int64)
    return module.Streams(buckets, n, err, zeros, n * 19, zeros)


@pytest.mark.parametrize(
    ("fails", "rolled_back", "minute"),
    [
        pytest.param([3, 10, 20, 30, 40], True, 41, id="fifth-failure-rolls-back-next-tick"),
        pytest.param([1, 2, 3, 4], False, 64, id="four-failures-delay-promotion"),
        pytest.param([], False, 60, id="clean-run-promotes-after-60-iterations"),
    ],
)
def test_flagger_model(
    monkeypatch: pytest.MonkeyPatch, fails: list[int], rolled_back: bool, minute: int
) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    streams = _flagger_streams(module, fails, module.STEP_MIN + module.FLAGGER_THRESHOLD)
    out = module.judge_flagger(streams)
    assert bool(out.rolled_back[0]) is rolled_back
    assert int(out.minute[0]) == minute


def _streams_with_llr(module: ModuleType, llr: list[float]) -> object:
    horizon = len(llr)
    zeros = np.zeros((1, horizon), dtype=np.int64)
    buckets = np.zeros((1, horizon, len(module.BUCKETS)), dtype=np.int64)
    return module.Streams(
        buckets, zeros, zeros, zeros, zeros, zeros, oracle_llr=np.array([llr], dtype=np.float64)
    )


def test_oracle_rolls_back_when_the_likelihood_ratio_reaches_log_one_over_alpha(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    llr = [0.0] * module.STEP_MIN
    llr[2], llr[5], llr[9] = 2.0, 2.5, 0.2  # cumulative 2.0, 4.5, 4.7 > log(100) = 4.605
    out = module.judge_oracle(_streams_with_llr(module, llr), 0.01)
    assert bool(out.rolled_back[0])
    assert int(out.minute[0]) == 10
    # At a looser alpha the same evidence is enough earlier: log(1/0.05) = 3.0 < 4.5.
    assert int(module.judge_oracle(_streams_with_llr(module, llr), 0.05).minute[0]) == 6
    # alpha = 1 (a reference that rolls back everything) rolls back at the first look.
    assert int(module.judge_oracle(_streams_with_llr(module, llr), 1.0).minute[0]) == 1
    # 60 x 0.05 = 3.0 < log(100): never enough.
    never = module.judge_oracle(_streams_with_llr(module, [0.05] * module.STEP_MIN), 0.01)
    assert not bool(never.rolled_back[0])
    assert int(never.minute[0]) == module.STEP_MIN


def test_tail_counts_requests_above_each_runs_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    buckets = np.array([[[1, 2, 3, 4]], [[1, 2, 3, 4]], [[5, 0, 0, 9]]], dtype=np.int64)
    index = np.array([0, 2, 3], dtype=np.int64)  # strictly above bucket 0, bucket 2, the last
    assert module._tail(buckets, index).tolist() == [[9], [4], [0]]


def test_simulated_streams_are_what_the_judges_assume(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    rng = np.random.default_rng(3)
    good = module.simulate(module.SCENARIOS[0], 200, 60, rng, 50.0)
    bad = module.simulate(module.SCENARIOS[3], 200, 60, rng, 50.0)  # +50 % latency
    # The baseline boundary is the stable's P99 (400 ms): the stable's tail above it is ~1 %.
    share = good.stable_tail.sum() / good.stable_n.sum()
    assert 0.005 < share < 0.02
    # Identical candidate: the oracle has no evidence; a bad one piles it up.
    assert np.allclose(good.oracle_llr, 0.0)
    assert np.median(bad.oracle_llr.sum(1)) > 100
    # The candidate's tail share grows under +50 % latency (P(>400 ms) ~ 17 %).
    assert 0.12 < bad.cand_tail.sum() / bad.cand_n.sum() < 0.22


def test_sequential_vs_stable_catches_a_slower_candidate_and_spares_a_good_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    rng = np.random.default_rng(11)
    horizon = module.STEP_MIN
    good = module.judge_sequential(
        module.simulate(module.SCENARIOS[0], 300, horizon, rng, 10.0), vs_stable=True
    )
    bad = module.judge_sequential(
        module.simulate(module.SCENARIOS[3], 300, horizon, rng, 10.0), vs_stable=True
    )
    assert int(good.rolled_back.sum()) <= 6  # two checks at alpha 1 %: at most ~2 % expected
    assert bool(bad.rolled_back.all())
    assert float(np.median(bad.minute)) <= 2.0


def test_the_shift_test_catches_the_drift_sooner_and_spares_a_good_candidate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    rng = np.random.default_rng(13)
    horizon = module.STEP_MIN
    drift = module.simulate(module.SCENARIOS[4], 200, horizon, rng, 200.0)
    assert np.all(np.diff(drift.scores, axis=-1) > 0)  # mid-ranks rise with latency
    shift = module.judge_sequential(drift, vs_stable=True, shift=True)
    tail = module.judge_sequential(drift, vs_stable=True)
    assert bool(shift.rolled_back.all())
    # at 600 candidate requests a minute the drift is 6 % slower at minute 7
    assert float(np.median(shift.minute)) <= 7.0
    assert float(np.median(shift.minute)) < float(np.median(tail.minute)) - 3
    good = module.simulate(module.SCENARIOS[0], 300, horizon, rng, 10.0)
    spared = module.judge_sequential(good, vs_stable=True, shift=True)
    assert int(spared.rolled_back.sum()) <= 6  # two checks at alpha 1 %: at most ~2 % expected


def _cumulative(module: ModuleType, counts: np.ndarray) -> dict[float, float]:
    return dict(zip(module.BUCKETS, np.cumsum(counts).astype(float).tolist(), strict=True))


@pytest.mark.parametrize(("scenario", "alpha"), [(0, 0.3), (1, 0.2), (4, 0.05)])
def test_the_bench_decides_as_the_products_judges_do(
    monkeypatch: pytest.MonkeyPatch, scenario: int, alpha: float
) -> None:
    """``sequential-final`` in the bench (one vectorised :func:`decide` on alpha-free evidence)
    against the controller's own judges called look by look: ``judge_counts`` for errors at
    ``alpha * (1 - finalLook)`` with its fixed-horizon p-value at the last look, ``judge_shift``
    for latency at ``alpha``."""
    from controlplane.analysis.sequential.count_judges import judge_counts
    from controlplane.analysis.sequential.latency_judges import judge_shift

    module = _load("blast_radius", SCRIPT, monkeypatch)
    s = module.simulate(
        module.SCENARIOS[scenario], 6, module.STEP_MIN, np.random.default_rng(5), 50.0
    )
    final = module.FINAL_LOOK
    got = module.decide(module.sequential_evidence(s, vs_stable=True, shift=True), alpha, final)
    h = module.STEP_MIN
    decisions = {"breach": 0, "pass": 0}
    for run in range(6):
        reference = _cumulative(module, s.reference[run])
        rolled, minute = False, h
        for t in range(h):
            cand = _cumulative(module, s.cand_buckets[run, : t + 1].sum(0))
            stable = _cumulative(module, s.stable_buckets[run, : t + 1].sum(0))
            counts = [
                float(s.cand_err[run, : t + 1].sum()),
                float(s.cand_n[run, : t + 1].sum()),
                float(s.stable_err[run, : t + 1].sum()),
                float(s.stable_n[run, : t + 1].sum()),
            ]
            errors = judge_counts(*counts, 0.0, alpha * (1 - final))
            latency = judge_shift(cand, stable, reference, alpha)
            breach = "breach" in (errors.decision, latency.decision)
            if t == h - 1:  # the closing test, on the whole step's counts
                closing = judge_counts(*counts, 0.0, alpha * final, fixed=True)
                breach |= closing.p_fixed <= alpha * final
            if breach or errors.decision == latency.decision == "pass":
                rolled, minute = breach, t + 1
                decisions["breach" if breach else "pass"] += 1
                break
        assert (bool(got.rolled_back[run]), int(got.minute[run])) == (rolled, minute), run
    assert sum(decisions.values()) > 0  # the runs decide within the step: a real comparison


def test_a_size_oracle_is_the_mixture_of_the_oracles_of_each_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    drift = module.SCENARIOS[4]
    assert drift.drift
    s = module.simulate(drift, 50, module.STEP_MIN, np.random.default_rng(9), 50.0)
    # One size, the true one: exactly the oracle that knows the drift.
    np.testing.assert_allclose(module.size_paths(s, 0.5, 0.5, 1), module.oracle_paths(s))
    # Several: the log of the mean ratio, between the best size's minus log(count) and it.
    sizes = np.geomspace(0.125, 2.0, 5)
    each = np.stack([module.size_paths(s, k, k, 1) for k in sizes])
    mixed = module.size_paths(s, 0.125, 2.0, 5)
    assert np.all(mixed <= each.max(0) + 1e-9)
    assert np.all(mixed >= each.max(0) - math.log(5) - 1e-9)
    assert np.median(mixed[:, -1]) < np.median(module.oracle_paths(s)[:, -1])  # it pays


def _row(module: ModuleType, judge: str, rolled: int, blast: float, bad: bool = True) -> object:
    scenario = module.SCENARIOS[3] if bad else module.SCENARIOS[0]
    runs = 1000
    values = np.full(runs, blast, dtype=np.float64)
    empty = np.array([], dtype=np.int64)
    return module.Row(scenario, 10.0, judge, runs, rolled, values, empty, empty)


@pytest.mark.parametrize(
    ("flagger", "mine", "bound", "good_fp", "expected"),
    [
        pytest.param(1000.0, 150.0, 0.9, (100, 50), "**met** (0.15x)", id="met"),
        pytest.param(1000.0, math.inf, 0.9, (100, 50), "right minute: 90 %", id="feasible"),
        pytest.param(1000.0, 400.0, 0.3, (100, 50), "**no test can**: at most 30 %", id="out"),
        pytest.param(1000.0, 100.0, 0.9, (10, 20), "more false rollbacks", id="noisier"),
        pytest.param(1000.0, 100.0, 0.9, (1000, 5), "vacuous", id="reference-rolls-all"),
        pytest.param(math.inf, 5000.0, 0.9, (0, 0), "**met** (0x)", id="only-mine-catches"),
        pytest.param(math.inf, math.inf, 0.2, (5, 0), "before promotion", id="nobody"),
    ],
)
def test_verdict_of_the_target(
    monkeypatch: pytest.MonkeyPatch,
    flagger: float,
    mine: float,
    bound: float,
    good_fp: tuple[int, int],
    expected: str,
) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    judge = module.VERDICT_JUDGE
    reference = _row(module, "flagger", 1000, flagger)
    reference.bound = bound
    rows = {
        "flagger": reference,
        judge: _row(module, judge, 1000, mine),
        "oracle-matched": _row(module, "oracle-matched", 1000, 0.5 * flagger),
    }
    good = {
        "flagger": _row(module, "flagger", good_fp[0], 0.0, bad=False),
        judge: _row(module, judge, good_fp[1], 0.0, bad=False),
    }
    assert expected in module.verdict_of(rows, good, judge)


def test_max_power_is_the_neyman_pearson_power(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    rng = np.random.default_rng(5)
    null = rng.normal(0.0, 1.0, 200_000)
    alt = rng.normal(2.0, 1.0, 200_000)
    # one-sided z-test at 5 %: power = P(N(2, 1) > 1.645) = 0.639
    assert module.max_power(null, alt, 0.05) == pytest.approx(0.639, abs=0.01)
    # discrete statistics: the randomised test spends exactly alpha
    counts0 = rng.poisson(0.35, 100_000).astype(float)
    counts1 = rng.poisson(0.70, 100_000).astype(float)
    p0_pos = 1 - math.exp(-0.35)
    gamma = (0.335 - p0_pos) / math.exp(-0.35)
    expected = (1 - math.exp(-0.70)) + gamma * math.exp(-0.70)
    assert module.max_power(counts0, counts1, 0.335) == pytest.approx(expected, abs=0.01)


def test_neyman_pearson_bound_is_alpha_without_a_difference_and_grows_with_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    good, slower = module.SCENARIOS[0], module.SCENARIOS[3]  # +50 % latency
    seed = np.random.SeedSequence(3)
    same = module.neyman_pearson_bound(good, good, 10.0, 0.1, 300.0, seed, runs=2000)
    assert same == pytest.approx(0.1, abs=0.03)  # nothing to see: power equals the level
    bound = module.neyman_pearson_bound(slower, good, 10.0, 0.01, 30.0, seed, runs=2000)
    early = module.neyman_pearson_bound(slower, good, 10.0, 0.01, 5.0, seed, runs=2000)
    assert bound > 0.9  # +50 % latency shows in the first minute's 30 requests
    assert early < bound  # fewer requests, less evidence


def test_the_closing_test_catches_more_2x_error_runs_at_the_same_false_rollbacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    rng = np.random.default_rng(17)
    horizon = module.STEP_MIN
    bad = module.simulate(module.SCENARIOS[1], 400, horizon, rng, 200.0)  # 2x errors
    good = module.simulate(module.SCENARIOS[0], 400, horizon, rng, 200.0)
    kw = {"vs_stable": True, "shift": True, "alpha": 0.005}
    anytime = module.judge_sequential(bad, **kw)
    closing = module.judge_sequential(bad, final_errors=0.5, **kw)
    assert int(closing.rolled_back.sum()) > int(anytime.rolled_back.sum()) + 20
    # The closing test only adds rollbacks at the step's last look.
    extra = closing.rolled_back & ~anytime.rolled_back
    assert extra.any()
    assert set(closing.minute[extra].tolist()) == {horizon}
    assert int(module.judge_sequential(good, final_errors=0.5, **kw).rolled_back.sum()) <= 8


def test_calibrated_threshold_rolls_back_exactly_the_allowed_good_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    rng = np.random.default_rng(19)
    paths = rng.normal(0.0, 1.0, (500, module.STEP_MIN)).cumsum(1) / 5
    for allowed in (0, 7, 120):
        c = module.calibrated_threshold(paths, allowed)
        assert int(module.threshold_outcome(paths, c).rolled_back.sum()) == allowed
    assert module.calibrated_threshold(paths, 500) == -np.inf


def test_matched_alpha_is_the_largest_as_quiet_as_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    counts = {0.001: 0, 0.01: 3, 0.05: 9, 0.1: 15, 0.2: 40}
    assert module.matched_alpha(counts, 15) == 0.1
    assert module.matched_alpha(counts, 14) == 0.05
    assert module.matched_alpha(counts, 0) == 0.001
    assert module.matched_alpha({0.001: 2}, 1) is None


def test_matching_spends_the_slack_the_anytime_tests_leave(monkeypatch: pytest.MonkeyPatch) -> None:
    """On one rate's good and 2x-error runs, the matched judge rolls back no more good runs than
    Flagger, at an alpha from the grid above the guaranteed half-rate, and catches more bad runs
    than at that guaranteed alpha."""
    module = _load("blast_radius", SCRIPT, monkeypatch)
    good, bad = module.SCENARIOS[0], module.SCENARIOS[1]
    rows = module.evaluate(300, 7, scenarios=(good, bad), rates=(50.0,), bound_runs=200)
    by = {(r.scenario.name, r.judge): r for r in rows}
    matched = by[(good.name, "sequential-final-matched")]
    assert matched.alpha in module.ALPHA_GRID
    assert matched.rolled_back <= by[(good.name, "flagger")].rolled_back
    guaranteed = by[(good.name, "sequential-final-at-flagger")]
    assert guaranteed.alpha is not None
    assert matched.alpha > guaranteed.alpha / 2
    caught = by[(bad.name, "sequential-final-matched")].rolled_back
    assert caught > by[(bad.name, "sequential-final-at-flagger")].rolled_back


def test_the_matched_oracle_rolls_back_as_many_good_runs_as_allowed_and_more_bad_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    good, drift = module.SCENARIOS[0], module.SCENARIOS[4]
    seed = np.random.SeedSequence(23)
    threshold = module.oracle_threshold(drift, good, 50.0, 20, 500, seed)
    # The same seed draws the same good runs: exactly 20 of them reach the threshold.
    rng = np.random.default_rng(seed)
    again = module.simulate(good, 500, module.STEP_MIN, rng, 50.0, drift)
    paths = module.oracle_paths(again)
    assert int(module.threshold_outcome(paths, threshold).rolled_back.sum()) == 20
    # Ville's inequality leaves slack: the calibrated threshold is below log(1 / (20 / 500)).
    assert threshold < math.log(500 / 20)
    bad = module.simulate(drift, 500, module.STEP_MIN, np.random.default_rng(29), 50.0)
    nominal = module.judge_oracle(bad, 20 / 500)
    matched = module.threshold_outcome(module.oracle_paths(bad), threshold)
    # The same paths against a lower threshold: never later, and earlier in some runs.
    assert bool(np.all(matched.minute <= nominal.minute))
    assert int(matched.minute.sum()) < int(nominal.minute.sum())


def test_verdict_without_an_alpha_as_quiet_as_flagger(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    rows = {"flagger": _row(module, "flagger", 1000, 1000.0)}
    good = {"flagger": _row(module, "flagger", 0, 0.0, bad=False)}
    said = module.verdict_of(rows, good, module.VERDICT_JUDGE)
    assert said == "not met: no alpha of the grid is as quiet as Flagger (0 false rollbacks)"
