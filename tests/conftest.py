"""Shared fixtures: a real Prometheus holding a known synthetic vLLM history.

``history`` (session-scoped) backfills :func:`standard_scenario` — two days of per-minute
metrics for the contract example's canary (stable ``bf16``, candidate ``nf4``) — into a temporary
TSDB and serves it from the real ``prometheus`` binary on a loopback port. A missing binary fails
the tests that use it with a clear message (CI installs it). ``tests/`` is on ``sys.path`` through
this file, so tests import helpers as ``support.*``. The tiers (``binary``, ``slow``, ``e2e``) are
enforced by :mod:`support.tiers`; under ``CI=true`` a skip
fails the run unless :mod:`support.skips` allows its reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from support.history import History, standard_scenario
from support.prometheus import start_shared
from support.scenario import history_end

pytest_plugins = [
    "support.tiers",
    "support.skips",
    "support.realkube",
    "support.shared_stack",
    "support.traffic_summary",
    "pytester",
]


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    scenario = standard_scenario(history_end(time.time()))
    server = start_shared("history", scenario.start, tmp_path_factory, scenario.write)
    try:
        yield History(scenario, server)
    finally:
        server.stop()
