"""Hostile-input benchmark: how long ``canaryctl validate`` takes to refuse a hostile file.

Owns the "## Hostile input" section of ``docs/benchmarks-derivation.md``. The loader's limits
(:mod:`controlplane.spec.load`: bytes, nesting depth, YAML nodes, alias expansion, documents)
bound the *work* a file can cause, and ``tests/spec/test_spec_load.py`` asserts those work
bounds deterministically; this script measures the *seconds* that work takes on this machine,
next to a valid spec for scale: the median and the slowest of ``--runs`` calls of
:func:`controlplane.validation.check_text` per input, and the first problem reported.

Run ``python bench/hostile_input.py`` (``--runs N``, ``--no-write`` prints only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

try:
    from bench.common import BENCHMARKS_MD, machine_summary, replace_section, today
except ImportError:  # run as a script: bench/ is on sys.path
    from common import (  # type: ignore[no-redef]
        BENCHMARKS_MD,
        machine_summary,
        replace_section,
        today,
    )

from controlplane.spec.load import MAX_BYTES, MAX_DOCUMENTS, MAX_EXPANDED, MAX_NODES
from controlplane.validation import check_text

SECTION = "## Hostile input"
REPO = Path(__file__).resolve().parent.parent


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def inputs() -> list[tuple[str, str | bytes]]:
    """(name, source) pairs: a valid spec for scale, then each limit pushed past its edge."""
    return [
        ("valid: canary/four-week.yml", (REPO / "canary" / "four-week.yml").read_text()),
        ("billion laughs (9 levels of 9 aliases)", _bomb(9)),
        ("100,000 nested [ (flow)", "[" * 100_000),
        ("200 nested mappings (block)", "".join("  " * i + f"k{i}:\n" for i in range(200))),
        (f"60,000 nodes (limit {MAX_NODES:,})", "[" + ",".join(["1"] * 60_000) + "]"),
        (f"{MAX_DOCUMENTS + 1} documents", "a: 1\n---\n" * (MAX_DOCUMENTS + 1)),
        (f"{MAX_BYTES // 1024} KiB + 1 byte", "a: " + "x" * (MAX_BYTES - 2)),
        (f"10,000-node flow list (expansion limit {MAX_EXPANDED:,})", "[" + "1," * 10_000 + "]"),
    ]


def measure(source: str | bytes, runs: int) -> tuple[float, float, str]:
    """Median and slowest seconds of ``check_text``, and its first problem (or "valid")."""
    times = []
    first = "valid"
    for _ in range(runs):
        start = time.perf_counter()
        problems = check_text(source, "c.yml")
        times.append(time.perf_counter() - start)
        first = problems[0].message if problems else "valid"
    return statistics.median(times), max(times), first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for name, source in inputs():
        median, slowest, first = measure(source, args.runs)
        rows.append(f"| {name} | {median * 1000:.1f} | {slowest * 1000:.1f} | {first} |")
        print(rows[-1], flush=True)
    body = "\n".join(
        [
            f"`python bench/hostile_input.py --runs {args.runs}` on {today()}: "
            f"{machine_summary(('pyyaml', 'pydantic'))}.",
            "",
            "Time for `check_text` (what `canaryctl validate` runs per file) to refuse each "
            "input; the tests bound the work (nodes composed, nodes walked, depth), not the "
            "seconds.",
            "",
            "| input | median ms | slowest ms | first problem |",
            "|---|---:|---:|---|",
            *rows,
        ]
    )
    if not args.no_write:
        replace_section(BENCHMARKS_MD, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
