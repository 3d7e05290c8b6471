"""Real-traffic benchmark: whole canaries on a real node, KServe, Traefik and Prometheus.

Owns the "## Real traffic" section of ``docs/benchmarks-derivation.md``. It runs
``tests/routing/test_real_rollout.py`` (the controller, KServe v0.20.0, the engine image on a real
kubelet and containerd, Traefik v3.6.12 and the Prometheus Operator's Prometheus, with OpenAI
completions at 6 requests per second per canary through the gateway), with
``CONTROLPLANE_TRAFFIC_REPORT`` set so that each test writes what it counted
(:mod:`support.traffic_report`), and turns that one run into three tables:

- requests per variant per phase against the step's weight (every canary);
- failed requests per phase;
- for each injected fault, the seconds until the rollback (from the first step for a fault that
  shows in traffic, from the ModelCanary's creation for one that keeps the candidate from
  starting) and the requests the bad candidate served until then, and how many were bad (slower
  than the 2.5 s threshold, or failed).

It runs ``tests/routing/test_real_resilience.py`` in the same pytest call, and adds a fourth
table: each crash of a part of the stack under traffic (the controller at every phase boundary,
Traefik, Prometheus, a candidate pod, kube-apiserver), how long it was down, the requests on
their way meanwhile and the failed ones by code. And
``tests/routing/test_real_kserve_promotion.py``, whose canary ``roll`` (the ``kserve`` router)
is promoted by hand while KServe rolls the stable pods under traffic: its phases join the first
two tables.

Run ``python bench/real_rollout.py`` (about 10 minutes on 2 cores; ``make kube-tools`` first);
``--no-write`` prints only; ``--report DIR`` renders an earlier run's JSON without running.
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
SECTION = "## Real traffic"
REPORT_ENV = "CONTROLPLANE_TRAFFIC_REPORT"
"""Where the tests write what they counted (``support.real_traffic.REPORT_ENV``)."""
TESTS = (
    "tests/routing/test_real_rollout.py",
    "tests/routing/test_real_resilience.py",
    "tests/routing/test_real_kserve_promotion.py",
)
REASON_CHARS = 160
"""The most of a rollback reason a table row shows (vLLM's out-of-memory message is long)."""
FAULTS = {
    "slow": "`--inject=latency=+3s`",
    "errors": "`--inject=errors=10%`",
    "crash": "`--inject=crash-on-start`",
    "never": "`--inject=never-ready`",
}


def run(folder: Path) -> int:
    """The test modules once, each test writing its JSON into ``folder``."""
    env = {**os.environ, REPORT_ENV: str(folder)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    return subprocess.call([*cmd, *TESTS], cwd=ROOT, env=env)


def load(folder: Path) -> dict[str, Any]:
    """Every canary of every test's JSON in ``folder``."""
    canaries: dict[str, Any] = {}
    for path in sorted(folder.glob("*.json")):
        canaries.update(json.loads(path.read_text()))
    return canaries


def _codes(failed: dict[str, int]) -> str:
    return ", ".join(f"{n} x {code}" for code, n in sorted(failed.items())) or "0"


def _variants(served: dict[str, int]) -> str:
    return ", ".join(f"{n} {variant}" for variant, n in sorted(served.items())) or "-"


def section(canaries: dict[str, Any], cmd: str) -> str:
    lines = [
        f"Measured {today()} on {machine_summary(())}; `{cmd}`.",
        "",
        "One run of `tests/routing/test_real_rollout.py`, `test_real_resilience.py` and "
        "`test_real_kserve_promotion.py`: each canary's stable and candidate are "
        "KServe InferenceServices served by the engine image on a real kubelet, behind Traefik "
        "v3.6.12, with OpenAI completions at 6 requests per second per canary from the moment "
        "the stable answers through the gateway. A phase is a span of the status history: "
        "`pending` until the first step, each step, and the time after the promotion or "
        "rollback (including the 20 s cleanup delay and the release of the losing variant). "
        "`roll` is the `kserve` router's: one InferenceService, promoted by hand at its first "
        "step (KServe v0.20.0 routes a canary entry nothing), its stable pods rolled to the "
        "candidate by KServe under load. "
        "An answer counts in `requests` and `failed` always, and in the split only if it was "
        "sent while Traefik's API showed the phase's weights (`settling` otherwise: "
        "`support.real_traffic.Splits`, read every 0.2 s).",
        "",
        "### Requests per variant per phase",
        "",
        "| canary | phase | weight | seconds | requests | stable (bf16) | candidate (fp8) "
        "| candidate share | settling | failed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, data in canaries.items():
        for row in data["phases"]:
            served = row["variants"]
            total = served.get("bf16", 0) + served.get("fp8", 0)  # a failure has no variant
            share = f"{100 * served.get('fp8', 0) / total:.1f} %" if total else "-"
            weight = "-" if row["weight"] is None else f"{row['weight']} %"
            lines.append(
                f"| {name} | {row['phase']} | {weight} | {row['seconds']} | {row['requests']} "
                f"| {served.get('bf16', 0)} | {served.get('fp8', 0)} | {share} "
                f"| {_variants(row.get('settling', {}))} | {_codes(row['failed'])} |"
            )
    lines += [
        "",
        "### Injected faults until rollback",
        "",
        "| canary | fault | reason | seconds | requests the candidate served | bad ones |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, fault in FAULTS.items():
        data = canaries.get(name)
        if data is None or "fault" not in data:
            continue
        reason = next((m for kind, _, m in data["history"] if kind == "RolledBack"), "")
        if len(reason) > REASON_CHARS:
            reason = reason[:REASON_CHARS].rstrip() + " …"
        got = data["fault"]
        lines.append(
            f"| {name} | {fault} | {reason} | {got['seconds']} | {got['candidate_requests']} "
            f"| {got['bad_candidate_requests']} |"
        )
    steady = canaries.get("steady")
    if steady is not None and "faults" in steady:
        lines += [
            "",
            "### Crashes under traffic",
            "",
            f"Canary `steady` promoted 25 -> 75 -> 100 while each part of the stack is killed "
            f"(SIGKILL) and started again; {steady['requests']} requests sent, "
            f"{steady['answered']} answered, {steady['unexplained_failures']} failed outside "
            "the windows where failing is the fault itself (the gateway down; a deleted pod's "
            "address still in the gateway's configuration).",
            "",
            "| fault | at | seconds down | requests on their way | failed | codes |",
            "|---|---|---:|---:|---:|---|",
        ]
        for row in steady["faults"]:
            lines.append(
                f"| {row['fault']} | {row['at']} | {row['seconds']} | {row['requests']} "
                f"| {row['failed']} | {_codes(row['codes'])} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD)
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    parser.add_argument("--report", type=Path, help="render this folder's JSON, run nothing")
    args = parser.parse_args(argv)
    if args.report is not None:
        canaries = load(args.report)
    else:
        with tempfile.TemporaryDirectory(prefix="real-rollout-") as tmp:
            code = run(Path(tmp))
            canaries = load(Path(tmp))
            if code != 0:
                print(f"{' '.join(TESTS)} failed (exit {code}): nothing written", file=sys.stderr)
                return code
    cmd = "python bench/real_rollout.py"
    if args.report is not None:  # the figures came from an earlier run of the same tests
        cmd = (  # section() puts cmd in one code span: this closes and opens one between
            f"{REPORT_ENV}=DIR pytest -p no:randomly {' '.join(TESTS)}`, then "
            f"`python bench/real_rollout.py --report DIR"
        )
    text = section(canaries, cmd)
    print(text)
    if not args.no_write:
        replace_section(args.output, SECTION, text)
        print(f"\nwrote the '{SECTION}' section of {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
