"""Blast-radius verdicts across seeds: how much of the one-fifth verdict is the luck of one draw.

Owns the "## Blast radius across seeds" section of ``docs/benchmarks.md``. It runs the whole
simulation of ``bench/blast_radius.py`` (:func:`blast_radius.evaluate`, the same scenarios,
judges and calibrations) once per seed and tabulates, for every row the target speaks about,
the verdict judge's ratio to Flagger's median blast radius and whether the target is met
(:func:`blast_radius.verdict_of`). Flagger's own false-rollback count is a draw too, and the
matched alpha follows it, so a row met by a narrow margin can flip from seed to seed; this
section says which rows do.

Run ``python bench/blast_seeds.py`` (10 seeds, 1,000 runs per scenario and seed, about 8
minutes on 2 cores) or ``--seeds 3 --runs 300``; ``--no-write`` prints only.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    from bench import blast_radius as br
    from bench.common import BENCHMARKS_MD, machine_summary, replace_section, today
except ImportError:  # run as a script: bench/ is on sys.path
    import blast_radius as br  # type: ignore[no-redef]
    from common import (  # type: ignore[no-redef]
        BENCHMARKS_MD,
        machine_summary,
        replace_section,
        today,
    )

SECTION = "## Blast radius across seeds"
FIRST_SEED = 20261101  # blast_radius.py's default seed comes first
SEEDS = 10
BOUND_RUNS = 400  # the Neyman-Pearson bound only words a miss; it does not decide a verdict


@dataclass(frozen=True)
class Cell:
    """One row's verdict on one seed: the verdict judge's ratio to Flagger's median blast radius
    (``kind`` "ratio"), or, where Flagger promotes the bad candidate, how many bad runs it
    rolled back (``kind`` "rolled", of ``runs``); ``kind`` "none" when no alpha is as quiet
    as Flagger."""

    kind: str
    value: float
    runs: int
    met: bool

    def __str__(self) -> str:
        return _words(self.kind, self.value, self.runs) + (" (met)" if self.met else "")


Verdicts = dict[tuple[float, str], Cell]


def _words(kind: str, value: float, runs: int) -> str:
    if kind == "none":
        return "no alpha quiet enough"
    if kind == "rolled":
        return f"{value:,.0f} of {runs:,} rolled back"
    return br.ratio_in_words(value)


def verdicts(rows: list[br.Row]) -> Verdicts:
    """Per ``(rps, bad scenario)``: the verdict judge's :class:`Cell`; vacuous rows are left
    out."""
    out: Verdicts = {}
    for rps, scenario, here, good in br.verdict_rows(rows):
        said = br.verdict_of(here, good, br.VERDICT_JUDGE)
        if said.startswith("vacuous"):
            continue
        met = said.startswith("**met**")
        ref = br.quantile(here["flagger"].blast, 0.5)
        mine = here.get(br.VERDICT_JUDGE)
        runs = here["flagger"].runs
        if mine is None:
            cell = Cell("none", math.nan, runs, met)
        elif math.isinf(ref):  # Flagger promotes it: a finite median needs half rolled back
            cell = Cell("rolled", float(mine.rolled_back), runs, met)
        else:
            cell = Cell("ratio", br.blast_ratio(br.quantile(mine.blast, 0.5), ref), runs, met)
        out[(rps, scenario.name)] = cell
    return out


def _keys(found: list[Verdicts]) -> list[tuple[float, str]]:
    return list(dict.fromkeys(k for v in found for k in v))


def _spread(cells: list[Cell]) -> tuple[str, str]:
    """The median and the range over the seeds, in the cells' own words."""
    kinds = {c.kind for c in cells}
    if len(kinds) != 1 or kinds == {"none"}:
        return "—", "—"
    kind, runs = cells[0].kind, cells[0].runs
    values = sorted(c.value for c in cells)
    median = float(np.median(values))
    low, high = _words(kind, values[0], runs), _words(kind, values[-1], runs)
    if kind == "rolled":
        return _words(kind, median, runs), f"{values[0]:,.0f}–{values[-1]:,.0f} of {runs:,}"
    return _words(kind, median, runs), f"{low}–{high}"


def summary_table(found: list[Verdicts]) -> str:
    """Per row: on how many seeds the target is met, the median and the range over them."""
    lines = [
        "| req/s (candidate) | bad scenario | met in | median over the seeds | range |",
        "|---|---|---:|---:|---:|",
    ]
    for rps, name in _keys(found):
        cells = [v[(rps, name)] for v in found if (rps, name) in v]
        met = sum(c.met for c in cells)
        median, spread = _spread(cells)
        rate = f"{rps:g} ({rps * br.WEIGHT:g})"
        lines.append(f"| {rate} | {name} | {met} of {len(found)} | {median} | {spread} |")
    return "\n".join(lines)


def table(seeds: list[int], found: list[Verdicts]) -> str:
    """Every row on every seed."""
    head = "| req/s (candidate) | bad scenario | " + " | ".join(f"seed {s}" for s in seeds)
    head += " | met in |\n|---|---|" + "---:|" * len(seeds) + "---:|"
    lines = [head]
    for rps, name in _keys(found):
        cells = [v.get((rps, name)) for v in found]
        met = sum(c.met for c in cells if c is not None)
        shown = " | ".join("n/a" if c is None else str(c) for c in cells)
        rate = f"{rps:g} ({rps * br.WEIGHT:g})"
        lines.append(f"| {rate} | {name} | {shown} | {met} of {len(found)} |")
    return "\n".join(lines)


ORACLES = ("oracle-matched", *(name for name, *_ in br.SIZE_PRIORS))
Bounds = dict[tuple[float, str, str], float]  # (rps, scenario, oracle) -> ratio to Flagger


def oracle_ratios(rows: list[br.Row]) -> Bounds:
    """What the rows the target misses ask of a judge: per rate, each oracle's median blast
    radius over Flagger's (all as quiet as Flagger) on the drift, and on the 2x error rate
    where Flagger's median is finite (where it promotes, a ratio says nothing)."""
    by = {(r.rps, r.scenario.name, r.judge): r for r in rows}
    out: Bounds = {}
    for r in rows:
        s = r.scenario
        errors = s.error_factor != 1.0 and s.base_error == br.STABLE_ERROR
        if r.judge not in ORACLES or not (s.drift or errors):
            continue
        mine, theirs = (
            br.quantile(r.blast, 0.5),
            br.quantile(by[(r.rps, s.name, "flagger")].blast, 0.5),
        )
        if math.isfinite(theirs):
            out[(r.rps, s.name, r.judge)] = br.blast_ratio(mine, theirs)
    return out


def _knows(oracle: str) -> str:
    if oracle == "oracle-matched":
        return "the scenario exactly (`oracle-matched`)"
    low, high = br.SIZES[oracle]
    return f"a ramp from the step's start, its size within +{low:.0%} to +{high:.0%}"


def oracle_table(bounds: list[Bounds]) -> str:
    """Per rate, scenario and oracle: on how many seeds it meets the target, the median and the
    range."""
    lines = [
        "| req/s (candidate) | bad scenario | the oracle knows | meets the target in "
        "| median over the seeds | range |",
        "|---|---|---|---:|---:|---:|",
    ]
    for rps, name, oracle in sorted(dict.fromkeys(k for b in bounds for k in b), key=_order):
        values = sorted(b[(rps, name, oracle)] for b in bounds if (rps, name, oracle) in b)
        met = sum(v <= br.TARGET for v in values)
        median = br.ratio_in_words(float(np.median(values)))
        spread = f"{br.ratio_in_words(values[0])}–{br.ratio_in_words(values[-1])}"
        rate = f"{rps:g} ({rps * br.WEIGHT:g})"
        lines.append(
            f"| {rate} | {name} | {_knows(oracle)} | {met} of {len(values)} | {median} | {spread} |"
        )
    return "\n".join(lines)


def _order(key: tuple[float, str, str]) -> tuple[float, int, int]:
    rps, name, oracle = key
    scenarios = [s.name for s in br.SCENARIOS]
    return rps, scenarios.index(name), ORACLES.index(oracle)


def section(
    seeds: list[int],
    found: list[Verdicts],
    runs: int,
    cmd: str,
    seconds: float,
    bounds: list[Bounds] | None = None,
) -> str:
    keys = _keys(found)
    always = sum(all(k in v and v[k].met for v in found) for k in keys)
    never = sum(not any(k in v and v[k].met for v in found) for k in keys)
    return f"""\
The verdict of "Blast radius" above, re-drawn with {len(seeds)} seeds ({runs:,} runs per
scenario and seed; `bench/blast_seeds.py` runs `bench/blast_radius.py`'s whole simulation per
seed, the first seed being its default). A cell is the ratio of `sequential-final` (alpha
matched to Flagger's false rollbacks on that seed's good runs) to Flagger's median blast radius,
or, where Flagger promotes the bad candidate, how many bad runs were rolled back (a finite
median needs more than half). Flagger's false-rollback count is a draw as well, and the
matched alpha follows it.

{summary_table(found)}

Met on every seed: {always} of {len(keys)} rows; on none: {never}.

{_oracles_part(bounds or [])}<details><summary>Every seed</summary>

"(met)" where the target holds.

{table(seeds, found)}

</details>

- Machine: {machine_summary()}
- Date: {today()}
- Command: `{cmd}` ({seconds:.0f} s wall)
"""


def _oracles_part(bounds: list[Bounds]) -> str:
    if not bounds or not bounds[0]:
        return ""
    return f"""\
What the rows the target misses ask of a judge: the same seeds' oracles (not deployable), each
as quiet as Flagger. The SPRT that knows the bad scenario exactly (on the 2x error rate only
where Flagger's median is finite), and, on the drift, the size oracles, which know the latency
distribution and that the drift is a ramp from the step's start, but only a range for its size
(`bench/blast_radius.py`).

{oracle_table(bounds)}

"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=SEEDS, help=f"how many seeds ({SEEDS})")
    parser.add_argument("--runs", type=int, default=1000, help="runs per scenario and seed")
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.runs < 1:
        parser.error("--seeds and --runs must be at least 1")
    seeds = [FIRST_SEED + k for k in range(args.seeds)]
    start = time.perf_counter()
    found: list[Verdicts] = []
    bounds: list[Bounds] = []
    for seed in seeds:
        rows = br.evaluate(args.runs, seed, bound_runs=BOUND_RUNS)
        found.append(verdicts(rows))
        bounds.append(oracle_ratios(rows))
        print(table(seeds[: len(found)], found), flush=True)
        print(oracle_table(bounds), flush=True)
    seconds = time.perf_counter() - start
    cmd = "python bench/blast_seeds.py"
    if args.seeds != SEEDS:
        cmd += f" --seeds {args.seeds}"
    if args.runs != 1000:
        cmd += f" --runs {args.runs}"
    if not args.no_write:
        replace_section(
            args.output, SECTION, section(seeds, found, args.runs, cmd, seconds, bounds)
        )
        print(f"\nwrote the '{SECTION}' section of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
