"""Blast-radius benchmark: how many candidate requests a bad model serves before rollback.

Owns the simulation behind the "## Blast radius" section of ``docs/benchmarks.md``. Run by hand
or by ``make bench``; ``--quick`` is the CI smoke test (``tests/unit/test_sequential_bench.py``).

One process, numpy, seeded, vectorised across runs. Each run is one 24 h canary step at 5 %
weight: Poisson arrivals (20 req/s in all, so ~1 req/s on the candidate and ~19 req/s on the
stable), lognormal latencies (stable: median 120 ms, P99 180 ms, hence P95 ~160 ms), Bernoulli
errors (stable 0.05 %). Latencies are recorded in a Prometheus-style histogram with a 200 ms
boundary. Per run and minute the script draws bucket counts (Poisson splitting: exact for
Poisson arrivals), so every judge sees the very same request streams:

* ``flagger`` — Flagger's documented analysis (pkg/controller/scheduler.go): interval 1m; per
  interval the request-success-rate check (min 99 %) and the request-duration check (P99 max
  200 ms) over the last 1m; no values counts as failed; a failed interval increments the
  cumulative ``failedChecks`` (never reset during an analysis); at the next interval with
  ``failedChecks >= threshold`` (5) it rolls back. The 5 % step is Flagger's ``iterations``
  analysis: promotion after 1440 *successful* intervals (24 h).
* ``threshold`` — this product's ``judge: threshold`` with the same limits: ``errors above: 1%``
  and ``latency-p99 above: 200ms``, window 5m, ``for: 0`` (first breach rolls back),
  ``minSamples: 100`` (inconclusive below), evaluated every minute; promotion at 24 h.
* ``sequential`` — ``judge: sequential`` (alpha 0.01) with the same limits: errors rate <= 1 %
  and share of requests over 200 ms <= 1 % (= P99 <= 200 ms), on counts since the step began.
* ``sequential-vs-stable`` — as above, but the error check is ``compare: baseline, above: 0%``
  (roll back when the candidate's error rate exceeds the stable's), the one check that makes a
  2x error rate (0.10 % against 0.05 %, far under any 1 % limit) a regression by the spec.

A sequential judge may decide *pass* early (every check's confidence sequence on the good side):
the step then ends at once. A bad candidate that gets promoted has an unbounded blast radius
(it goes to 100 %): it counts as infinite.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import special

try:
    from bench.common import BENCHMARKS_MD, machine_summary, replace_section, today
except ImportError:  # run as a script: bench/ is on sys.path
    from common import (  # type: ignore[no-redef]
        BENCHMARKS_MD,
        machine_summary,
        replace_section,
        today,
    )

from controlplane.analysis.sequential import bernoulli_decisions, two_sample_boundary

F = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

SECTION = "## Blast radius"

# The traffic and the stable variant.
TOTAL_RPS = 20.0
WEIGHT = 0.05
MEDIAN_S = 0.120
P99_S = 0.180
SIGMA = math.log(P99_S / MEDIAN_S) / 2.3263478740408408  # lognormal sigma: P99 = 180 ms
STABLE_ERROR = 0.0005
# The analysis.
STEP_MIN = 24 * 60
FLAGGER_THRESHOLD = 5
ERROR_LIMIT = 0.01  # Flagger: request-success-rate min 99 %
P99_LIMIT_S = 0.200  # Flagger: request-duration max 200 ms (P99)
WINDOW_MIN = 5
MIN_SAMPLES = 100
ALPHA = 0.01
BUCKETS = (
    0.05,
    0.075,
    0.1,
    0.125,
    0.15,
    0.175,
    0.2,
    0.225,
    0.25,
    0.3,
    0.4,
    0.5,
    1.0,
    2.5,
    math.inf,
)
SLOW_FROM = BUCKETS.index(P99_LIMIT_S) + 1  # buckets strictly above 200 ms

JUDGES = ("flagger", "threshold", "sequential", "sequential-vs-stable")


@dataclass(frozen=True)
class Scenario:
    name: str
    bad: bool
    error_factor: float
    latency_factor: Callable[[F], F]  # minute (1-based, mid-minute) -> latency multiplier


def _const(k: float) -> Callable[[F], F]:
    return lambda t: np.full_like(t, k)


SCENARIOS = (
    Scenario("good (identical)", False, 1.0, _const(1.0)),
    Scenario("2x error rate", True, 2.0, _const(1.0)),
    Scenario("+30% P99", True, 1.0, _const(1.3)),
    Scenario("+50% P99", True, 1.0, _const(1.5)),
    Scenario("drift to +50% over 24h", True, 1.0, lambda t: 1.0 + 0.5 * t / STEP_MIN),
)


@dataclass
class Streams:
    """Per run and minute: candidate buckets/requests/errors/slow, stable requests/errors."""

    cand_buckets: Ints  # (R, H, K) non-cumulative bucket counts
    cand_n: Ints  # (R, H)
    cand_err: Ints
    cand_slow: Ints
    stable_n: Ints
    stable_err: Ints


def simulate(scenario: Scenario, runs: int, horizon: int, rng: np.random.Generator) -> Streams:
    t = np.arange(1, horizon + 1, dtype=np.float64) - 0.5
    scale = MEDIAN_S * scenario.latency_factor(t)  # (H,)
    edges = np.log(np.array(BUCKETS[:-1]))[None, :] - np.log(scale)[:, None]
    cdf = special.ndtr(edges / SIGMA)
    probs = np.diff(np.concatenate([np.zeros((horizon, 1)), cdf, np.ones((horizon, 1))], 1), 1)
    lam_c = TOTAL_RPS * WEIGHT * 60.0
    lam_s = TOTAL_RPS * (1.0 - WEIGHT) * 60.0
    buckets = rng.poisson(lam_c * probs, size=(runs, *probs.shape))
    cand_n = buckets.sum(-1)
    return Streams(
        cand_buckets=buckets,
        cand_n=cand_n,
        cand_err=rng.binomial(cand_n, STABLE_ERROR * scenario.error_factor),
        cand_slow=buckets[..., SLOW_FROM:].sum(-1),
        stable_n=(sn := rng.poisson(lam_s, size=(runs, horizon))),
        stable_err=rng.binomial(sn, STABLE_ERROR),
    )


def histogram_quantile(q: float, buckets: Ints) -> F:
    """Prometheus ``histogram_quantile`` over the last axis of bucket counts; NaN if empty."""
    les = np.array(BUCKETS)
    cum = np.cumsum(buckets, axis=-1).astype(np.float64)
    total = cum[..., -1]
    rank = q * total
    i = np.argmax(cum >= rank[..., None], axis=-1)
    upper = les[i]
    lower = np.where(i > 0, les[np.maximum(i - 1, 0)], 0.0)
    below = np.where(i > 0, np.take_along_axis(cum, np.maximum(i - 1, 0)[..., None], -1)[..., 0], 0)
    inside = np.take_along_axis(cum, i[..., None], -1)[..., 0] - below
    with np.errstate(invalid="ignore", divide="ignore"):
        value = lower + (upper - lower) * (rank - below) / inside
    value = np.where(inside > 0, value, upper)
    value = np.where(i == len(les) - 1, les[-2], value)  # +Inf bucket: highest finite bound
    return np.where(total > 0, value, np.nan)


@dataclass
class Outcome:
    rolled_back: npt.NDArray[np.bool_]
    minute: Ints  # decision minute (rollback or promotion)


def judge_flagger(s: Streams) -> Outcome:
    n, err = s.cand_n, s.cand_err
    with np.errstate(invalid="ignore", divide="ignore"):
        success = 100.0 * (1.0 - err / n)
    p99 = histogram_quantile(0.99, s.cand_buckets)
    failed = (n == 0) | (success < 100.0 * (1.0 - ERROR_LIMIT)) | (p99 > P99_LIMIT_S)
    horizon = failed.shape[1]
    fails = np.cumsum(failed, 1)
    oks = np.cumsum(~failed, 1)
    never = horizon + 10
    # failedChecks reaches the threshold at minute k; the next tick (k + 1) rolls back.
    k = np.where((fails >= FLAGGER_THRESHOLD).any(1), np.argmax(fails >= FLAGGER_THRESHOLD, 1), -1)
    rollback = np.where(k >= 0, k + 2, never)  # 1-based minute of the rollback tick
    done = oks >= STEP_MIN
    promote = np.where(done.any(1), np.argmax(done, 1) + 1, never)
    rolled = rollback <= np.minimum(promote, horizon)
    return Outcome(rolled, np.where(rolled, rollback, promote))


def judge_threshold(s: Streams) -> Outcome:
    h = STEP_MIN

    def window(x: Ints) -> Ints:
        c = np.cumsum(x[:, :h], 1)
        out = c.copy()
        out[:, WINDOW_MIN:] -= c[:, :-WINDOW_MIN]
        return out

    cb = np.cumsum(s.cand_buckets[:, :h], 1)
    wb = cb.copy()
    wb[:, WINDOW_MIN:] -= cb[:, :-WINDOW_MIN]
    n, err = window(s.cand_n), window(s.cand_err)
    p99 = histogram_quantile(0.99, wb)
    enough = n >= MIN_SAMPLES
    with np.errstate(invalid="ignore", divide="ignore"):
        breach = enough & ((err / n > ERROR_LIMIT) | (p99 > P99_LIMIT_S))
    rolled = breach.any(1)
    return Outcome(rolled, np.where(rolled, np.argmax(breach, 1) + 1, h))


def judge_sequential(s: Streams, *, vs_stable: bool) -> Outcome:
    h = STEP_MIN
    cn = np.cumsum(s.cand_n[:, :h], 1)
    ce = np.cumsum(s.cand_err[:, :h], 1)
    cs = np.cumsum(s.cand_slow[:, :h], 1)
    sn = np.cumsum(s.stable_n[:, :h], 1)
    se = np.cumsum(s.stable_err[:, :h], 1)
    runs = cn.shape[0]
    rolled = np.zeros(runs, dtype=bool)
    minute = np.full(runs, h, dtype=np.int64)
    active = np.arange(runs)
    for t in range(h):  # one look per minute, only for the runs still undecided
        if active.size == 0:
            break
        latency = bernoulli_decisions(cs[active, t], cn[active, t], 1.0 - 0.99, ALPHA)
        if vs_stable:
            theta0 = two_sample_boundary(cn[active, t], sn[active, t], 0.0)
            ev = ce[active, t] + se[active, t]
            errors = bernoulli_decisions(ce[active, t], ev, theta0, ALPHA)
        else:
            errors = bernoulli_decisions(ce[active, t], cn[active, t], ERROR_LIMIT, ALPHA)
        breach = (latency == 1) | (errors == 1)
        passed = (latency == -1) & (errors == -1)
        decided = breach | passed
        rolled[active[breach]] = True
        minute[active[decided]] = t + 1
        active = active[~decided]
    return Outcome(rolled, minute)


def run_judges(s: Streams) -> dict[str, Outcome]:
    return {
        "flagger": judge_flagger(s),
        "threshold": judge_threshold(s),
        "sequential": judge_sequential(s, vs_stable=False),
        "sequential-vs-stable": judge_sequential(s, vs_stable=True),
    }


@dataclass
class Row:
    scenario: Scenario
    judge: str
    runs: int
    rolled_back: int
    blast: F  # candidate requests served until rollback; inf when a bad candidate is promoted
    detect_min: Ints  # rollback minutes (rolled back runs only)
    promote_min: Ints  # promotion minutes (promoted runs only)


def evaluate(
    runs: int, seed: int, chunk: int = 250, scenarios: tuple[Scenario, ...] = SCENARIOS
) -> list[Row]:
    horizon = STEP_MIN + FLAGGER_THRESHOLD
    seeds = np.random.SeedSequence(seed).spawn(len(scenarios))
    rows: list[Row] = []
    for scenario, ss in zip(scenarios, seeds, strict=True):
        rng = np.random.default_rng(ss)
        parts: dict[str, list[tuple[Outcome, Ints]]] = {j: [] for j in JUDGES}
        done = 0
        while done < runs:
            r = min(chunk, runs - done)
            streams = simulate(scenario, r, horizon, rng)
            served = np.cumsum(streams.cand_n, 1)
            for name, out in run_judges(streams).items():
                parts[name].append((out, served[np.arange(r), out.minute - 1]))
            done += r
        for name in JUDGES:
            rolled = np.concatenate([o.rolled_back for o, _ in parts[name]])
            minute = np.concatenate([o.minute for o, _ in parts[name]])
            served = np.concatenate([v for _, v in parts[name]]).astype(np.float64)
            blast = np.where(rolled, served, math.inf) if scenario.bad else served
            rows.append(
                Row(scenario, name, runs, int(rolled.sum()), blast, minute[rolled], minute[~rolled])
            )
    return rows


# --------------------------------------------------------------------------------------------
# Report


def _q(x: npt.ArrayLike, q: float) -> float:
    a = np.asarray(x, dtype=np.float64)
    return float(np.quantile(a, q, method="inverted_cdf")) if a.size else math.nan


def _req(v: float) -> str:
    if math.isnan(v):
        return "—"
    return "∞ (promoted)" if math.isinf(v) else f"{v:,.0f}"


def _dur(minutes: float) -> str:
    if math.isnan(minutes):
        return "—"
    h, m = divmod(round(minutes), 60)
    return f"{h}h {m:02d}m" if h else f"{m}m"


def table(rows: list[Row]) -> str:
    head = (
        "| scenario | judge | rolled back | blast radius: median | P90 | time to detect: "
        "median (P90) | time to promote: median |\n|---|---|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        rb = f"{r.rolled_back}/{r.runs}"
        if r.scenario.bad:
            med, p90 = _req(_q(r.blast, 0.5)), _req(_q(r.blast, 0.9))
            detect = f"{_dur(_q(r.detect_min, 0.5))} ({_dur(_q(r.detect_min, 0.9))})"
        else:
            med = p90 = "—"
            detect = "—"
        promote = _dur(_q(r.promote_min, 0.5))
        lines.append(
            f"| {r.scenario.name} | {r.judge} | {rb} | {med} | {p90} | {detect} | {promote} |"
        )
    return "\n".join(lines)


def verdict(rows: list[Row]) -> str:
    by = {(r.scenario.name, r.judge): r for r in rows}
    good = next(s for s in SCENARIOS if not s.bad).name
    out = []
    for judge in ("sequential", "sequential-vs-stable"):
        ok_false = by[(good, judge)].rolled_back <= by[(good, "flagger")].rolled_back
        ratios = []
        for s in SCENARIOS:
            if not s.bad or (s.name, judge) not in by:
                continue
            mine, theirs = (
                _q(by[(s.name, judge)].blast, 0.5),
                _q(by[(s.name, "flagger")].blast, 0.5),
            )
            ratios.append((s.name, mine / theirs if theirs > 0 else math.inf))
        met = ok_false and all(x <= 0.2 for _, x in ratios)
        parts = ", ".join(f"{n}: {x:.2g}x" if math.isfinite(x) else f"{n}: ∞" for n, x in ratios)
        out.append(
            f"- `{judge}`: median blast radius relative to Flagger — {parts}; false rollbacks "
            f"{by[(good, judge)].rolled_back} vs Flagger {by[(good, 'flagger')].rolled_back}. "
            f"Target (≤ 0.2x on every bad scenario at no more false rollbacks): "
            f"**{'met' if met else 'not met'}**."
        )
    return "\n".join(out)


def section(rows: list[Row], command: str, seconds: float) -> str:
    runs = rows[0].runs
    return f"""\
Requests a bad candidate serves before it is rolled back, for four judges fed the *same*
simulated request streams (`bench/blast_radius.py`, numpy, seeded). One canary step at 5 %
weight for 24 h; 20 req/s in all, so ≈1 req/s (≈60 a minute, 86,400 a day) on the
candidate; stable latency lognormal with median 120 ms and P99 180 ms (P95 ≈160 ms); stable
error rate 0.05 %; latency histogram buckets with a 200 ms boundary. Limits for every judge:
error rate 1 % (Flagger: success rate ≥ 99 %) and P99 200 ms. `flagger` models Flagger's
documented analysis (interval 1m over the last 1m, failed intervals add to a never-reset
`failedChecks`, rollback at the next interval once it reaches `threshold: 5`, promotion after
1,440 successful `iterations`); `threshold` is this product's `judge: threshold` (window 5m,
`for: 0`, `minSamples: 100`); `sequential` is `judge: sequential` (alpha 0.01) with the same
limits; `sequential-vs-stable` replaces the error limit with `compare: baseline, above: 0%`.
See `docs/judges.md` for the mathematics.

Blast radius = candidate requests served until the rollback (∞ when a bad candidate is
promoted); median and P90 over {runs:,} runs per scenario. Time to detect is over the runs
that rolled back; time to promote over the runs that promoted. "rolled back" on the good
scenario is the false-rollback count.

{table(rows)}

{verdict(rows)}

Reading it honestly: at ≈60 candidate requests per minute, one error in a 1-minute window is a
1.7 % error rate, so Flagger fails ~3 % of intervals of a *good* candidate on errors alone (more
with the P99 of 60 samples); a never-reset `failedChecks` then rolls back nearly every good
candidate long before 1,440 successful intervals. Flagger's short times to detect on bad
scenarios are the same noise, not evidence. Neither fixed-threshold judge can see a 2x error
rate at 0.05 % (it is far under a 1 % limit); only a comparison with the stable can.

- Machine: {machine_summary()}
- Date: {today()}
- Command: `{command}` ({seconds:.0f} s wall)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs per scenario (1000)")
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--quick", action="store_true", help="40 runs per scenario (CI smoke)")
    parser.add_argument(
        "--output",
        type=Path,
        default=BENCHMARKS_MD,
        help="markdown file whose '## Blast radius' section is rewritten (docs/benchmarks.md)",
    )
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    runs = 40 if args.quick else args.runs
    if runs < 1:
        parser.error("--runs must be at least 1")
    start = time.perf_counter()
    rows = evaluate(runs, args.seed)
    seconds = time.perf_counter() - start
    cmd = "python bench/blast_radius.py" + (" --quick" if args.quick else "")
    if not args.quick and args.runs != 1000:
        cmd += f" --runs {args.runs}"
    if args.seed != 20261101:
        cmd += f" --seed {args.seed}"
    print(table(rows))
    print()
    print(verdict(rows))
    if not args.no_write:
        replace_section(args.output, SECTION, section(rows, cmd, seconds))
        print(f"\nwrote the '{SECTION}' section of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
