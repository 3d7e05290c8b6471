"""Fixtures of the controller tests: one real Prometheus holding every scenario they need.

Four weeks of 20-minute samples for the single-canary scenarios (``good``, ``slow``, ``errors``,
``drift``, ``tail``; tests reuse ``good`` in their own fake clusters) and one day for the fleet of
fifty (``fleet-00`` ... ``fleet-49``,
``fleet-07`` erroring), backfilled in one promtool run into one TSDB and served by the real
``prometheus`` binary on loopback. ``T0`` is when the single-canary rollouts start; the fleet
starts at ``FLEET_T0``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.controller_scenarios import fleet_scenarios, long_scenarios
from support.controller_world import DAY, HOUR, Metrics, write_combined
from support.prometheus import start_shared
from support.scenario import history_end


@pytest.fixture(scope="session")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Metrics]:
    end = history_end(time.time())
    long_start = end - 26 * DAY
    fleet_start = end - DAY

    def write(folder: Path) -> list[Path]:
        return [
            write_combined(long_scenarios(long_start, 26 * DAY), folder / "long.om"),
            write_combined(fleet_scenarios(fleet_start, DAY), folder / "fleet.om"),
        ]

    server = start_shared("controller", end, tmp_path_factory, write)
    # whole hours, so that evaluation times fall on the sample grid
    t0 = long_start + DAY
    try:
        yield Metrics(server, t0, fleet_start + 4 * HOUR, end)
    finally:
        server.stop()
