"""CLI start-up benchmark: the offline verbs against ``kubectl version --client``, side by side.

Owns the "## CLI start-up" section of ``docs/benchmarks-derivation.md``. Issue 41 asks the
offline verbs to start within 3x of ``kubectl version --client`` (kubectl v1.34.10, built by
``make kube-tools``). Each round runs every command once, in a shuffled order, as a user does:
the installed entry point (``canaryctl`` in the environment's ``bin``), a new process each time,
wall time from ``fork`` to exit. The table gives the median and the slowest over ``--rounds`` and
the ratio of the medians to kubectl's. ``kubectl canary list`` is not here yet: it needs a
cluster (its import graph is issue 41's next step).

Run ``python bench/cli_start.py`` (``--rounds N``, ``--no-write`` prints only).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
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

from harness.cluster.kubeapi import binary

SECTION = "## CLI start-up"
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FOUR_WEEK = "canary/four-week.yml"


def commands() -> list[tuple[str, list[str]]]:
    """(label, argv): kubectl first (the reference), then the offline verbs."""
    canaryctl = str(BIN / "canaryctl")
    return [
        ("kubectl version --client", [str(binary("kubectl")), "version", "--client"]),
        ("canaryctl --help", [canaryctl, "--help"]),
        (
            "canaryctl validate canary/four-week.yml",
            [canaryctl, "validate", "canary/four-week.yml"],
        ),
        ("canaryctl schema", [canaryctl, "schema"]),
    ]


def _once(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, check=False, timeout=120)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-400:]}")
    return elapsed


def measure(rounds: int, seed: int = 41) -> dict[str, list[float]]:
    """Seconds per command, ``rounds`` each, interleaved in a shuffled order every round."""
    cmds = commands()
    times: dict[str, list[float]] = {label: [] for label, _ in cmds}
    rng = random.Random(seed)
    for _label, argv in cmds:  # one warm-up each: the page cache, not the interpreter's
        _once(argv)
    for _ in range(rounds):
        order = list(cmds)
        rng.shuffle(order)
        for label, argv in order:
            times[label].append(_once(argv))
    return times


def table(times: dict[str, list[float]]) -> str:
    ref = statistics.median(next(iter(times.values())))
    rows = ["| command | median | slowest | x kubectl |", "|---|---:|---:|---:|"]
    for label, values in times.items():
        med = statistics.median(values)
        rows.append(
            f"| `{label}` | {med * 1000:.0f} ms | {max(values) * 1000:.0f} ms | {med / ref:.1f}x |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the docs")
    args = parser.parse_args(argv)
    times = measure(args.rounds)
    body = (
        f"Whole-process wall time of each command, {args.rounds} interleaved rounds in a shuffled "
        f"order after one warm-up each; {today()}; {machine_summary(())}.\n\n"
        f"{table(times)}\n\n"
        "Target (issue 41): within 3x of `kubectl version --client`. Reproduce: "
        "`python bench/cli_start.py` (after `make kube-tools`, which builds kubectl)."
    )
    print(body)
    if not args.no_write:
        replace_section(BENCHMARKS_MD, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
