"""Shared fixtures: a real Prometheus holding a known synthetic vLLM history.

``history`` (session-scoped) backfills :func:`standard_scenario` — two days of per-minute
metrics for the contract example's canary (stable ``bf16``, candidate ``nf4``) — into a temporary
TSDB and serves it from the real ``prometheus`` binary on a loopback port. A missing binary fails
the tests that use it with a clear message (CI installs it). ``tests/`` is on ``sys.path`` through
this file, so tests import helpers as ``support.*``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from support.prometheus import PrometheusServer, PrometheusSetupError, start_from_scenario
from support.scenario import DAY, HOUR, Change, Scenario, Variant, history_end


def standard_scenario(end: float) -> Scenario:
    """Two days ending at ``end``; what each integration test expects is derived from it.

    Candidate ``nf4`` at 25% of 10 req/s: P50 latency 100 ms (log-sd 0.35), 2% errors, KPI 0.63
    (stable 0.70: drift -10%), KV cache 0.4, $1.5/h. From day 1 its latency median is 400 ms
    (+300 ms). From 36 h to 37 h its weight is 0.2% (too few requests for minSamples); from 44 h
    it gets no traffic at all. Shadow win rate 0.55, then 0.60 from day 1.
    """
    return Scenario(
        start=end - 2 * DAY,
        duration=2 * DAY,
        stable=Variant("bf16", error_fraction=0.005, resolved_fraction=0.70),
        candidate=Variant(
            "nf4",
            latency_median_s=0.10,
            latency_sigma=0.35,
            error_fraction=0.02,
            resolved_fraction=0.63,
            kv_cache=0.4,
            cost_per_hour=1.5,
        ),
        weights=((0.0, 25.0), (36 * HOUR, 0.2), (37 * HOUR, 25.0), (44 * HOUR, 0.0)),
        win_rate=((0.0, 0.55), (DAY, 0.60)),
        changes=(Change(DAY, "candidate", {"latency_median_s": 0.40}),),
    )


@dataclass(frozen=True)
class History:
    scenario: Scenario
    server: PrometheusServer

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    scenario = standard_scenario(history_end(time.time()))
    try:
        server = start_from_scenario(scenario, tmp_path_factory.mktemp("prometheus"))
    except PrometheusSetupError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield History(scenario, server)
    finally:
        server.stop()
