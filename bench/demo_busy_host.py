"""The demo on a busy host: ``make demo``'s verdict, run after run, beside a CPU-heavy neighbour.

Owns the "## The demo on a busy host" section of ``docs/benchmarks-derivation.md``. Runs the
command ``make demo`` runs, ``canaryctl up canary/local-demo.yml --time-scale 60 --load 20``
(simulated engines, the local router, a real Prometheus, the controller's loop) ``--faulty``
times with ``--inject candidate.latency=+300ms``, then ``--runs`` times with a healthy
candidate, one after the other, while a neighbour keeps every core busy for the whole session:
``stress-ng --cpu N`` (N = the cores) when it is on PATH (Debian: ``apt-get install -y
stress-ng``), else N Python busy loops; ``--neighbour none`` runs on a quiet machine. Each run's
verdict, reason, wall time and load average go to ``--json FILE`` as soon as it ends (so a session
cut short keeps what it measured); ``--report FILE`` renders such a file without running.

The healthy candidate must promote every time and the faulty one roll back at step 1 on its time
to first token: docs/local.md, "A busy host", says why a host stall once failed it.

The runs import the code of the tree this script is in (``PYTHONPATH``), so a copy of a commit
measures that commit while its worktree changes. Run ``python bench/demo_busy_host.py`` (about
35 minutes for 20 + 3 runs on 2 cores); ``--no-write`` prints only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import add_record_args, machine_summary, publish, today  # noqa: E402

SECTION = "## The demo on a busy host"
DEMO = ["up", "canary/local-demo.yml", "--time-scale", "60", "--load", "20"]
"""``make demo``'s command, less the executable."""
FAULT = ["--inject", "candidate.latency=+300ms"]
RUN_TIMEOUT_S = 600


def _canaryctl() -> list[str]:
    """The ``canaryctl`` beside this Python (the project's virtual environment)."""
    script = Path(sys.executable).with_name("canaryctl")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from controlplane.cli.main import main; main()"]


def start_neighbour(kind: str) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """Start the CPU-heavy neighbour: its description and its processes (none for ``none``)."""
    cores = os.cpu_count() or 1
    if kind == "none":
        return "none (a quiet machine)", []
    if kind in ("auto", "stress-ng") and shutil.which("stress-ng"):
        argv = ["stress-ng", "--cpu", str(cores), "--quiet"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return f"`stress-ng --cpu {cores}` (every core busy)", [proc]
    if kind == "stress-ng":
        raise SystemExit("stress-ng is not on PATH (Debian: apt-get install -y stress-ng)")
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    return f"{cores} Python busy loops (every core busy)", procs


def stop_neighbour(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_once(faulty: bool) -> dict[str, Any]:
    """One demo; its verdict and reason from ``-o json``."""
    argv = [*_canaryctl(), *DEMO, *(FAULT if faulty else []), "-o", "json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    try:
        proc = subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return {"faulty": faulty, "outcome": "timeout", "exit": None, "reason": None}
    wall = time.monotonic() - started
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        data = {}
    reason = data.get("reason") or {}
    return {
        "faulty": faulty,
        "outcome": data.get("outcome", "error"),
        "exit": proc.returncode,
        "step": reason.get("step"),
        "reason": reason.get("message"),
        "wallSeconds": round(wall, 1),
        "loadAverage": round(os.getloadavg()[0], 2),
        "stderrTail": None if data else proc.stderr[-500:],
    }


def measure(runs: int, faulty: int, neighbour: str, out: Path | None) -> dict[str, Any]:
    described, procs = start_neighbour(neighbour)
    results: dict[str, Any] = {
        "date": today(),
        "machine": machine_summary(()),
        "neighbour": described,
        "runs": [],
    }
    started = time.monotonic()
    try:
        time.sleep(2)  # the neighbour has the cores before the first run starts
        for i in range(runs + faulty):
            one = run_once(faulty=i < faulty)  # the short faulty runs first
            results["runs"].append(one)
            results["wallSeconds"] = round(time.monotonic() - started)
            print(f"run {i + 1}: {one['outcome']} {one['reason'] or ''}".rstrip(), flush=True)
            if out is not None:
                out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        stop_neighbour(procs)
    return results


def _count(runs: list[dict[str, Any]]) -> str:
    tally: dict[str, int] = {}
    for one in runs:
        tally[one["outcome"]] = tally.get(one["outcome"], 0) + 1
    return ", ".join(f"{n} {word.replace('_', ' ')}" for word, n in sorted(tally.items()))


def render(results: dict[str, Any]) -> str:
    runs = results["runs"]
    healthy = [r for r in runs if not r["faulty"]]
    faulty = [r for r in runs if r["faulty"]]
    cmd = "canaryctl " + " ".join(DEMO)
    lines = [
        "What `make demo` concludes, run after run, while another job keeps every core busy: the",
        f"embedded default, `{cmd}` (a healthy NF4 candidate, steps of 30 s),",
        f"and the same with `{' '.join(FAULT)}`. Neighbour: {results['neighbour']}.",
        "Expected: the healthy candidate promoted every time, the faulty one rolled back at step 1",
        'on its time to first token (docs/local.md, "A busy host"). The load average is taken',
        "as each run ends: the neighbour, the demo's own processes and whatever else ran.",
        "",
        "| case | runs | verdicts | as expected |",
        "|---|---:|---|---:|",
    ]
    if healthy:
        good = sum(r["outcome"] == "promoted" for r in healthy)
        lines.append(
            f"| healthy candidate | {len(healthy)} | {_count(healthy)} | {good}/{len(healthy)} |"
        )
    if faulty:
        good = sum(r["outcome"] == "rolled_back" and r["step"] == 1 for r in faulty)
        lines.append(
            f"| `{' '.join(FAULT)}` | {len(faulty)} | {_count(faulty)} | {good}/{len(faulty)} |"
        )
    lines += [
        "",
        f"`python bench/demo_busy_host.py` on {results['date']}: {results['machine']}; "
        f"{len(runs)} runs in {results.get('wallSeconds', 0)} s of wall time.",
        "",
        "| run | candidate | outcome | reason | wall s | load average (1 min) |",
        "|---:|---|---|---|---:|---:|",
    ]
    for i, r in enumerate(runs, start=1):
        kind = "+300ms" if r["faulty"] else "healthy"
        reason = (r["reason"] or "-").replace("|", "\\|")
        lines.append(
            f"| {i} | {kind} | {r['outcome']} | {reason} | {r.get('wallSeconds', '-')} "
            f"| {r.get('loadAverage', '-')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="healthy runs (default 20)")
    parser.add_argument("--faulty", type=int, default=3, help="runs with +300ms (default 3)")
    parser.add_argument(
        "--neighbour", choices=("auto", "stress-ng", "python", "none"), default="auto"
    )
    add_record_args(parser)  # --json keeps each run's result as it ends
    args = parser.parse_args(argv)
    if args.report is not None:
        results = json.loads(args.report.read_text())
    else:
        results = measure(args.runs, args.faulty, args.neighbour, args.json)
    publish(args, SECTION, render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
