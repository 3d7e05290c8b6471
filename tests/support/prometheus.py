"""Test-side names for the packaged launchers of Prometheus and Alertmanager
(:mod:`controlplane.local.prometheus`), and backfilled TSDBs shared across one test run.

Backfilling weeks of synthetic history with ``promtool`` is the costliest setup in the suite.
:func:`start_shared` builds each TSDB once per run — the first fixture (in any pytest-xdist
worker) that asks for a ``(name, key)`` builds it under a file lock, the others wait and reuse
it — and starts every Prometheus on a private hard-linked copy, which it may write into freely
(TSDB blocks are immutable: compaction writes new blocks and unlinks old ones).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controlplane.local.prometheus import (
    PrometheusServer,
    PrometheusSetupError,
    backfill,
    start_alertmanager,
    start_prometheus,
)

__all__ = [
    "PrometheusServer",
    "PrometheusSetupError",
    "exposed_sum",
    "shared_tsdb",
    "start_alertmanager",
    "start_prometheus",
    "start_shared",
]

Writer = Callable[[Path], Sequence[Path]]


def exposed_sum(text: str, sample: str, match: Callable[[dict[str, str]], bool]) -> float:
    """The sum of the ``sample`` series (its exposed name: ``..._total`` for a counter) in the
    Prometheus text exposition ``text`` whose labels ``match`` accepts."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and match(s.labels)
    )


def _run_dir(factory: pytest.TempPathFactory) -> Path:
    """A folder every worker of this run sees (xdist gives each its own basetemp below it)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_tsdb(name: str, key: object, factory: pytest.TempPathFactory, write: Writer) -> Path:
    """A private copy of the TSDB that ``write`` (OpenMetrics files into a folder) backfills.

    Built once per run for each ``(name, key)``; ``key`` is what the history depends on (its end
    time, say), so callers that ask for the same history share one backfill.
    """
    digest = hashlib.sha256(repr((name, key)).encode()).hexdigest()[:16]
    cache = _run_dir(factory) / "tsdb-cache" / f"{name}-{digest}"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = cache / "tsdb"
        if not built.exists():
            (cache / "openmetrics").mkdir(exist_ok=True)
            files = write(cache / "openmetrics")
            backfill(files, cache / "tsdb.partial")
            shutil.rmtree(cache / "openmetrics", ignore_errors=True)
            (cache / "tsdb.partial").rename(built)
    copy = factory.mktemp(f"{name}-tsdb")
    shutil.copytree(built, copy, dirs_exist_ok=True, copy_function=os.link)
    return copy


def start_shared(
    name: str, key: object, factory: pytest.TempPathFactory, write: Writer
) -> PrometheusServer:
    """Prometheus on a private copy of the shared TSDB ``(name, key)``; a setup failure fails
    the test with its message (CI installs the binaries)."""
    try:
        return start_prometheus(shared_tsdb(name, key, factory, write))
    except PrometheusSetupError as exc:
        pytest.fail(str(exc), pytrace=False)
