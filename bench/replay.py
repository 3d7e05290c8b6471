"""Replay benchmark: how fast ``canaryctl simulate`` replays four weeks of history.

Owns the "## Replay" section of ``docs/benchmarks-derivation.md``. Four weeks of synthetic vLLM
history for the four-week schedule of ``canary/four-week.yml`` (with its 100 % step baking for a
week, so the replay runs the full 28 days: 40,321 evaluations at a 1-minute interval, 4 metrics, 2
variants) are backfilled into a real Prometheus (``promtool``), then replayed side by side by

* ``range prefetch`` — what ``simulate`` does: every distinct series fetched once with
  ``query_range`` (step = interval), evaluations answered from memory;
* ``instant per evaluation`` — the naive way: one instant query per series per evaluation, run
  over the first day only (1,441 evaluations) and extrapolated linearly to 28 days (marked so).

Both run the same state machine and evaluator. Figures are medians of ``--runs`` runs.

Then, against the same Prometheus, what a user runs: ``canaryctl simulate canary/four-week.yml``
(its own schedule, to the promotion) as a whole process, ``--runs`` times: its wall time, its
CPU time and the CPU time Prometheus spent answering it (issue 41: 1.1 s a week earlier, 5.0-8.1
s since). ``--tree DIR`` runs that command from another checkout of the project (its
``controlplane`` first on ``PYTHONPATH``), to compare a commit before a change with one after.
Run: ``python bench/replay.py`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import BENCHMARKS_MD, machine_summary, replace_section, today  # noqa: E402

from controlplane.local.prometheus import backfill, start_prometheus  # noqa: E402
from controlplane.local.synthetic import DAY, Scenario, Variant, history_end  # noqa: E402
from controlplane.providers.prometheus import PrometheusProvider, from_url  # noqa: E402
from controlplane.simulation import prefetched, simulate  # noqa: E402
from controlplane.spec.models import ModelCanary  # noqa: E402
from controlplane.spec.units import parse_duration  # noqa: E402
from controlplane.validation import validated_file  # noqa: E402

HEADER = "## Replay"


def four_weeks() -> ModelCanary:
    """``canary/four-week.yml`` with the 100 % step baking for 7 days (28 days in all)."""
    canary = validated_file(ROOT / "canary" / "four-week.yml")[0]
    last = canary.spec.steps[-1].model_copy(
        update={
            "duration": parse_duration("7d"),
            "rollback_on": canary.spec.steps[0].rollback_on,
        }
    )
    steps = [*canary.spec.steps[:-1], last]
    return canary.model_copy(update={"spec": canary.spec.model_copy(update={"steps": steps})})


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of the running process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def whole_process(
    tree: Path, url: str, start: float, end: float, prometheus_pid: int, *extra: str
) -> tuple[float, float, float, str]:
    """(wall s, CPU s of the command, CPU s of Prometheus, its output) of one ``canaryctl
    simulate canary/four-week.yml`` run from ``tree``."""
    argv = [sys.executable, "-m", "controlplane.cli.main", "simulate", "canary/four-week.yml"]
    argv += ["--prometheus", url, "--start", str(int(start)), "--end", str(int(end)), *extra]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed package runs: bytecode cached
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    served = _cpu_s(prometheus_pid)
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-400:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, _cpu_s(prometheus_pid) - served, done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the docs")
    parser.add_argument(
        "--tree", type=Path, default=ROOT, help="checkout the whole-process runs use"
    )
    args = parser.parse_args(argv)
    tree = args.tree.resolve()
    canary = four_weeks()
    end = history_end(time.time())
    end -= end % 60
    start = end - 28 * DAY
    scenario = Scenario(
        start=start,
        duration=28 * DAY,
        stable=Variant("bf16", latency_median_s=0.070, latency_sigma=0.3, error_fraction=0.0004),
        candidate=Variant("nf4", latency_median_s=0.060, latency_sigma=0.3, error_fraction=0.0004),
        namespace=canary.metadata.namespace,
        canary=canary.metadata.name,
        weights=((0.0, 5.0), (7 * DAY, 25.0), (14 * DAY, 75.0), (21 * DAY, 100.0)),
        families=frozenset({"e2e", "success", "kpi"}),
    )
    fast: list[float] = []
    naive_day: list[float] = []
    cli: list[tuple[float, float, float, str]] = []
    same = ""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        backfill(scenario.write(work / "om"), work / "tsdb")
        setup = time.perf_counter() - t0
        with start_prometheus(work / "tsdb") as server:
            for _ in range(args.runs):
                source = PrometheusProvider(from_url(server.url, timeout_s=120))
                t0 = time.perf_counter()
                result = simulate(canary, prefetched(canary, source, start, end), start, end)
                fast.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                day = simulate(canary, source, start, start + DAY)
                naive_day.append(time.perf_counter() - t0)
            whole_process(tree, server.url, start, end, server.process.pid)  # warm-up
            for _ in range(args.runs):
                cli.append(whole_process(tree, server.url, start, end, server.process.pid))
            if tree != ROOT:  # the same answer from both checkouts, byte for byte
                outs = [
                    whole_process(where, server.url, start, end, server.process.pid, "-o", "json")
                    for where in (tree, ROOT)
                ]
                equal = outs[0][3] == outs[1][3]
                verdict = "the same, byte for byte" if equal else "DIFFERENT"
                same = f"\n`simulate -o json` from {tree.name} and from this checkout: {verdict}.\n"
    evaluations = result.evaluations
    fast_s = statistics.median(fast)
    naive_s = statistics.median(naive_day) * (evaluations / day.evaluations)
    cli_wall, cli_cpu, cli_served = (statistics.median(float(c[i]) for c in cli) for i in range(3))
    body = f"""\
`canaryctl simulate` over 28 days of history: the four-week schedule of `canary/four-week.yml`
with its 100 % step baking for 7 days, {evaluations:,} evaluations at a 1-minute interval, 4
metrics, 2 variants, against a real Prometheus (Debian package) on loopback. Outcome:
`{result.outcome}` at day {((result.finished_at or end) - start) / DAY:.0f}. Backfilling the
history took {setup:.1f} s (not counted). Medians of {args.runs} runs; {today()};
{machine_summary(("numpy", "prometheus-api-client"))}.

| replay | wall time | per evaluation |
|---|---:|---:|
| range prefetch (what `simulate` does) | {fast_s:.2f} s | {fast_s / evaluations * 1e6:.0f} µs |
| instant query per evaluation (first day, extrapolated to 28 days) | {naive_s:.1f} s | \
{naive_s / evaluations * 1e6:.0f} µs |

Target: under 10 s for the four weeks. Reproduce: `python bench/replay.py` (or `make bench`).

What a user runs against the same Prometheus, as a whole process: `canaryctl simulate
canary/four-week.yml` (its own schedule: promoted at day 21), after one warm-up run; medians
of {args.runs} runs{"" if tree == ROOT else f" from the checkout {tree.name}"}.

| command | wall time | its CPU time | Prometheus CPU time |
|---|---:|---:|---:|
| `canaryctl simulate canary/four-week.yml --prometheus URL --start T --end T` | \
{cli_wall:.2f} s | {cli_cpu:.2f} s | {cli_served:.2f} s |
{same}"""
    print(body)
    if not args.no_write:
        replace_section(BENCHMARKS_MD, HEADER, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
