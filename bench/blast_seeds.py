"""Blast-radius verdicts across seeds: how much of the one-fifth verdict is the luck of one draw.

Owns the "## Blast radius across seeds" section of ``docs/benchmarks.md``. It runs the whole
simulation of ``bench/blast_radius.py`` (:func:`blast_radius.evaluate`, the same scenarios,
judges and calibrations) once per seed and tabulates, for every row the target speaks about,
the verdict judge's ratio to Flagger's median blast radius and whether the target is met
(:func:`blast_radius.verdict_of`). Flagger's own false-rollback count is a draw too, and the
matched alpha follows it, so a row met by a narrow margin can flip from seed to seed; this
section says which rows do.

Run ``python bench/blast_seeds.py`` (5 seeds, 1,000 runs per scenario and seed, about 8
minutes on 2 cores) or ``--seeds 3 --runs 300``; ``--no-write`` prints only.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

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
BOUND_RUNS = 400  # the Neyman-Pearson bound only words a miss; it does not decide a verdict

Verdicts = dict[tuple[float, str], tuple[str, bool]]


def verdicts(rows: list[br.Row]) -> Verdicts:
    """Per ``(rps, bad scenario)``: the cell (ratio to Flagger, or why none) and whether the
    target is met; vacuous rows are left out."""
    out: Verdicts = {}
    for rps, scenario, here, good in br.verdict_rows(rows):
        said = br.verdict_of(here, good, br.VERDICT_JUDGE)
        if said.startswith("vacuous"):
            continue
        ref = br.quantile(here["flagger"].blast, 0.5)
        mine = here.get(br.VERDICT_JUDGE)
        if mine is None:
            cell = "no alpha quiet enough"
        elif math.isinf(ref):  # Flagger promotes it: a finite median needs half rolled back
            cell = f"{mine.rolled_back:,} of {mine.runs:,} rolled back"
        else:
            cell = br.ratio_in_words(br.blast_ratio(br.quantile(mine.blast, 0.5), ref))
        out[(rps, scenario.name)] = (cell, said.startswith("**met**"))
    return out


def table(seeds: list[int], found: list[Verdicts]) -> str:
    head = "| req/s (candidate) | bad scenario | " + " | ".join(f"seed {s}" for s in seeds)
    head += " | met in |\n|---|---|" + "---:|" * len(seeds) + "---:|"
    lines = [head]
    keys = list(dict.fromkeys(k for v in found for k in v))
    for rps, name in keys:
        cells = []
        met = 0
        for v in found:
            cell, ok = v.get((rps, name), ("n/a", False))
            met += ok
            cells.append(f"{cell} (met)" if ok else cell)
        rate = f"{rps:g} ({rps * br.WEIGHT:g})"
        lines.append(f"| {rate} | {name} | " + " | ".join(cells) + f" | {met} of {len(found)} |")
    return "\n".join(lines)


def section(seeds: list[int], found: list[Verdicts], runs: int, cmd: str, seconds: float) -> str:
    always = sum(all(v.get(k, ("", False))[1] for v in found) for k in found[0])
    never = sum(not any(v.get(k, ("", False))[1] for v in found) for k in found[0])
    return f"""\
The verdict of "Blast radius" above, re-drawn with {len(seeds)} seeds ({runs:,} runs per
scenario and seed; `bench/blast_seeds.py` runs `bench/blast_radius.py`'s whole simulation per
seed, the first seed being its default). A cell is the ratio of `sequential-final` (alpha
matched to Flagger's false rollbacks on that seed's good runs) to Flagger's median blast radius,
or, where Flagger promotes the bad candidate, how many bad runs were rolled back (a finite
median needs more than half); "(met)" where the target holds. Flagger's false-rollback count is
a draw as well, and the matched alpha follows it.

{table(seeds, found)}

Met on every seed: {always} of {len(found[0])} rows; on none: {never}.

- Machine: {machine_summary()}
- Date: {today()}
- Command: `{cmd}` ({seconds:.0f} s wall)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds (5)")
    parser.add_argument("--runs", type=int, default=1000, help="runs per scenario and seed")
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.runs < 1:
        parser.error("--seeds and --runs must be at least 1")
    seeds = [FIRST_SEED + k for k in range(args.seeds)]
    start = time.perf_counter()
    found = []
    for seed in seeds:
        found.append(verdicts(br.evaluate(args.runs, seed, bound_runs=BOUND_RUNS)))
        print(table(seeds[: len(found)], found), flush=True)
    seconds = time.perf_counter() - start
    cmd = "python bench/blast_seeds.py"
    if args.seeds != 5:
        cmd += f" --seeds {args.seeds}"
    if args.runs != 1000:
        cmd += f" --runs {args.runs}"
    if not args.no_write:
        replace_section(args.output, SECTION, section(seeds, found, args.runs, cmd, seconds))
        print(f"\nwrote the '{SECTION}' section of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
