"""Tests of bench/demo_busy_host.py: the section counts verdicts as the demo's promise reads.

A healthy run is as expected only when promoted; a faulty one only when rolled back at step 1.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    monkeypatch.delitem(sys.modules, "bench.demo_busy_host", raising=False)
    return importlib.import_module("bench.demo_busy_host")


def one(faulty: bool, outcome: str, step: int | None = None) -> dict[str, Any]:
    reason = "ttft 360.0ms > 250ms over 10s at step 1" if outcome == "rolled_back" else None
    return {
        "faulty": faulty,
        "outcome": outcome,
        "exit": 0,
        "step": step,
        "reason": reason,
        "wallSeconds": 90.0,
        "loadAverage": 4.0,
    }


def test_the_table_counts_what_was_expected(bench: ModuleType) -> None:
    results = {
        "date": "2026-11-25",
        "machine": "Linux x86_64, 2 CPUs",
        "neighbour": "`stress-ng --cpu 2` (every core busy)",
        "wallSeconds": 400,
        "runs": [
            one(False, "promoted"),
            one(False, "rolled_back", 1),
            one(True, "rolled_back", 1),
            one(True, "rolled_back", 2),
        ],
    }
    text = bench.render(results)
    assert "| healthy candidate | 2 | 1 promoted, 1 rolled back | 1/2 |" in text
    assert "| `--inject candidate.latency=+300ms` | 2 | 2 rolled back | 1/2 |" in text
    assert "\n`python bench/demo_busy_host.py` on 2026-11-25" in text
    assert "| 4 | +300ms | rolled_back | ttft 360.0ms > 250ms over 10s at step 1 |" in text
