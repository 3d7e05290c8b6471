"""Sessions on the real node: conversations pinned to a variant, and split per request.

Owns the "## Sessions on the real node" section of ``docs/benchmarks-derivation.md``. It runs
the sessions test of ``tests/routing/test_real_vllm_canary.py`` (the real vLLM CPU build with its
prefix cache on, behind KServe v0.20.0 and Traefik v3.6.12 on the real node) with
``CONTROLPLANE_TRAFFIC_REPORT`` set, and turns its ``real-vllm-sessions.json`` into two tables:
new pinned conversations on the candidate at each weight against the candidate's share of the
session buckets, and, at 50 %, each variant's prefix-cache hit rate and mean time to first token
(vLLM's own counters) while the conversations were pinned and while they were split per request.

Run ``python bench/real_sessions.py`` (about 8 minutes on 2 cores; ``make kube-tools vllm``
first); ``--no-write`` prints only; ``--report FILE`` renders an earlier run's JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

try:
    from bench.common import BENCHMARKS_MD, machine_summary, replace_section, today
except ImportError:  # run as a script: bench/ is on sys.path
    from common import (  # type: ignore[no-redef]
        BENCHMARKS_MD,
        machine_summary,
        replace_section,
        today,
    )

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Sessions on the real node"
REPORT_ENV = "CONTROLPLANE_TRAFFIC_REPORT"
TEST = "tests/routing/test_real_vllm_canary.py"
SELECT = "conversations_stay_on_one_variant"
REPORT = "real-vllm-sessions.json"
BUCKETS = 256


def run(folder: Path) -> int:
    env = {**os.environ, REPORT_ENV: str(folder)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    return subprocess.call([*cmd, TEST, "-k", SELECT], cwd=ROOT, env=env)


def section(got: dict[str, Any], cmd: str) -> str:
    shares = got["new pinned conversations on the candidate, by weight"]
    lines = [
        "Conversations of 4 turns, one started a second through Traefik, on the real vLLM (its",
        "prefix cache on) with `traffic.session: {header: x-session-id, turns: 4}`: 25 % for a",
        "minute, 50 % for two (pinned for the first half, split per request for the second),",
        "then promoted. New pinned conversations served first by the candidate, against its share",
        "of the 256 session buckets:",
        "",
        "| weight | candidate's buckets | new conversations on the candidate |",
        "|---:|---:|---:|",
    ]
    for weight, seen in shares.items():
        held = round(int(weight) * BUCKETS / 100)
        lines.append(f"| {weight} % | {held} of {BUCKETS} ({held / BUCKETS:.1%}) | {seen} |")
    lines += [
        "",
        "At 50 %, as each engine counted it (vLLM's `prefix_cache_hits` / `prefix_cache_queries`",
        "and `time_to_first_token_seconds`, over each half less its first 20 s):",
        "",
        "| conversations | variant | requests | prefix cache hit rate | mean TTFT |",
        "|---|---|---:|---:|---:|",
    ]
    for how, variants in got["at 50%, by variant"].items():
        for variant, row in variants.items():
            lines.append(
                f"| {how} | {variant} | {row['requests']} | "
                f"{row['prefix cache hit rate']:.1%} | {row['mean TTFT ms']:.2f} ms |"
            )
    counts = got["conversations"]
    lines += [
        "",
        f"Measured {today()} on {machine_summary(())}; `{cmd}`. {counts['pinned']} pinned and "
        f"{counts['per request']} per-request conversations, no turn failed, no pinned "
        "conversation moved back to the stable or twice.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD)
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    parser.add_argument("--report", type=Path, help="render this JSON file, run nothing")
    args = parser.parse_args(argv)
    cmd = "python bench/real_sessions.py"
    if args.report is not None:
        got = json.loads(args.report.read_text())
        cmd = (
            f"{REPORT_ENV}=DIR pytest -p no:randomly {TEST} -k {SELECT}`, then "
            f"`python bench/real_sessions.py --report DIR/{REPORT}"
        )
    else:
        with tempfile.TemporaryDirectory(prefix="real-sessions-") as tmp:
            code = run(Path(tmp))
            if code != 0:
                print(f"{TEST} failed (exit {code}): nothing written", file=sys.stderr)
                return code
            got = json.loads((Path(tmp) / REPORT).read_text())
    text = section(got, cmd)
    print(text)
    if not args.no_write:
        replace_section(args.output, SECTION, text)
        print(f"\nwrote the '{SECTION}' section of {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
