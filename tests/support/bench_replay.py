"""Benchmark of the fast replay: four weeks of per-minute history, fetched once.

Run from the repository root: ``python -m tests.support.bench_replay``. Generates the contract
example's four weeks (1-minute interval: ~40,000 evaluations; latency, errors, KPI, win rate and
cost; two variants), backfills a real Prometheus, then times
:meth:`~controlplane.analysis.replay.ReplayProvider.prefetch` (the fetch part of ``canaryctl
simulate``) and, for information, every evaluation answered from memory. Prints one JSON line.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from controlplane.analysis import queries
from controlplane.analysis.evaluator import evaluate
from controlplane.analysis.providers.prometheus import PrometheusProvider, from_url
from controlplane.analysis.replay import ReplayProvider, replay_queries
from controlplane.rollout.observations import DueCheck

from .canaries import example_canary
from .prometheus import backfill, start_prometheus
from .scenario import DAY, Change, Scenario, Variant, history_end


def main() -> None:
    canary = example_canary()
    end = history_end(time.time())
    scenario = Scenario(
        start=end - 28 * DAY,
        duration=28 * DAY,
        stable=Variant("bf16"),
        candidate=Variant("nf4", error_fraction=0.0005),
        changes=(Change(9 * DAY, "candidate", {"resolved_fraction": 0.66}),),
        families=frozenset({"e2e", "success", "kpi", "win", "cost"}),
    )
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        files = scenario.write(work / "openmetrics")
        figures["generate_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        backfill(files, work / "tsdb")
        figures["backfill_s"] = time.perf_counter() - t0
        with start_prometheus(work / "tsdb") as server:
            source = PrometheusProvider(from_url(server.url, timeout_s=120))
            plan = replay_queries(canary)
            step = canary.spec.analysis.interval.seconds
            t0 = time.perf_counter()
            replay = ReplayProvider.prefetch(source, plan, scenario.start, scenario.end, step)
            figures["fetch_s"] = time.perf_counter() - t0
            due = [DueCheck(k, c) for k, c in queries.all_checks(canary)]
            ticks = int(scenario.duration // step) + 1
            t0 = time.perf_counter()
            for k in range(ticks):
                evaluate(canary, due, replay, scenario.start + k * step)
            figures["evaluate_all_checks_s"] = time.perf_counter() - t0
    figures = {k: round(v, 2) for k, v in figures.items()}
    print(json.dumps({"evaluations": ticks, "queries": len(plan), **figures}))


if __name__ == "__main__":
    main()
