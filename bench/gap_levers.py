"""A lever on the judge's gap to the oracle, measured on the tuning seeds: the budget's split.

Owns the "budget's split between the checks" figures of ``docs/judges-derivation.md`` ("Closing the
gap to the oracle"). The verdict's judge (``bench/blast_seeds.py``) splits the false-rollback budget
evenly over its two checks (alpha 0.005 each); the oracle spends all of it on the one check its
scenario needs. This script gives the latency check a larger alpha and leaves the errors check as
the verdict runs it, then reports, on :data:`blast_seeds.TUNING_SEEDS` only, the median blast radius
of the latency rows the verdict does not meet and the false rollbacks of the candidate exactly on
the latency tolerance.

It decides through ``blast_seeds.judge`` itself: only the latency check's codes are taken from
``blast_seeds.judge_checks`` run at another ``ALPHA`` (:func:`split_checks`), so at the verdict's
own alpha it is the verdict's judge exactly (``tests/bench/test_gap_levers.py``). Run by hand::

    python bench/gap_levers.py --runs 400
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

try:
    from bench import blast_seeds as bs
except ImportError:  # run as a script: bench/ is on sys.path
    import blast_seeds as bs  # type: ignore[no-redef]

ROWS = (
    (10.0, "+30% P99"),
    (10.0, "+50% P99"),
    (50.0, "+30% P99"),
    (10.0, "10% slower (P99 440 ms)"),
)
"""The rows the verdict misses on latency, and the candidate on the latency tolerance."""
ALPHAS = (bs.ALPHA, 0.0075, bs.BUDGET)


@contextmanager
def _alpha(value: float) -> Iterator[None]:
    before = bs.ALPHA
    bs.ALPHA = value
    try:
        yield
    finally:
        bs.ALPHA = before


def split_checks(latency_alpha: float) -> Callable[[bs.Streams], tuple[bs.Codes, bs.Codes]]:
    """``blast_seeds.judge_checks`` with the latency check at ``latency_alpha`` and the errors
    check at the verdict's own alpha."""
    checks = bs.judge_checks

    def split(st: bs.Streams) -> tuple[bs.Codes, bs.Codes]:
        err, _ = checks(st)
        with _alpha(latency_alpha):
            _, lat = checks(st)
        return err, lat

    return split


def judge_at(latency_alpha: float, st: bs.Streams) -> bs.Outcome:
    """``blast_seeds.judge`` on ``st`` with the latency check at ``latency_alpha``."""
    checks = bs.judge_checks
    bs.judge_checks = split_checks(latency_alpha)
    try:
        return bs.judge(st)
    finally:
        bs.judge_checks = checks


def measure(
    latency_alpha: float, rps: float, name: str, runs: int, seeds: Sequence[int]
) -> tuple[float, int, int]:
    """(median blast radius, runs rolled back, runs) of one row, pooled over ``seeds``; the
    streams are the verdict's (its seeding per seed, rate and scenario)."""
    k, scenario = next((k, s) for k, s in enumerate(bs.SCENARIOS) if s.name == name)
    served, rolled = [], 0
    for seed in seeds:
        rng = np.random.default_rng([seed, int(rps * 1000), k])
        done = 0
        while done < runs:
            r = min(bs.CHUNK, runs - done)
            outcome = judge_at(latency_alpha, bs.simulate(scenario, r, rps, rng))
            served.append(bs._blast(outcome, scenario.kind == "bad"))
            rolled += int(outcome.rolled.sum())
            done += r
    return bs._median(np.concatenate(served)), rolled, runs * len(seeds)


def table(runs: int, seeds: Sequence[int] = bs.TUNING_SEEDS) -> str:
    lines = [
        "| latency alpha | row | median candidate requests | rolled back |",
        "| ---: | --- | ---: | ---: |",
    ]
    for alpha in ALPHAS:
        for rps, name in ROWS:
            median, rolled, total = measure(alpha, rps, name, runs, seeds)
            row = f"{name}, {rps:g} req/s"
            lines.append(f"| {alpha:g} | {row} | {median:,.0f} | {rolled}/{total} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400, help="runs per row and tuning seed")
    args = parser.parse_args(argv)
    print(table(args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
