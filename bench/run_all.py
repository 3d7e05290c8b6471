"""Run every benchmark and rewrite its section of ``docs/benchmarks.md`` (``make bench``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = [
    "replay.py",
    "blast_radius.py",
    "blast_seeds.py",
    "scale.py",
    "hostile_input.py",
    "test_suite.py",
]


def main() -> int:
    for script in SCRIPTS:
        print(f"== bench/{script}", flush=True)
        code = subprocess.call([sys.executable, str(BENCH / script)])
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
