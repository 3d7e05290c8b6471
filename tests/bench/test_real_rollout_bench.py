"""Tests of bench/real_rollout.py's tables, on a made-up report (no cluster)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.delitem(sys.modules, "bench.real_rollout", raising=False)
    return importlib.import_module("bench.real_rollout")


REPORT: dict[str, Any] = {
    "crash": {
        "history": [["RolledBack", 0, "did not become ready: " + "x" * 400]],
        "phases": [
            {
                "phase": "step 1",
                "weight": 25,
                "seconds": 30.0,
                "requests": 10,
                "failed": {"URLError": 2},
                "variants": {"bf16": 6, "fp8": 2, "none": 2},
                "settling": {"bf16": 1},
            }
        ],
        "fault": {"seconds": 184.0, "candidate_requests": 0, "bad_candidate_requests": 0},
    },
    "steady": {
        "history": [],
        "phases": [],
        "requests": 9,
        "answered": 9,
        "unexplained_failures": 0,
        "faults": [
            {
                "fault": "gateway",
                "at": "step 1",
                "seconds": 3.2,
                "requests": 5,
                "failed": 2,
                "codes": {"URLError": 1, "404": 1},
            },
        ],
    },
}


def test_the_tables_count_the_split_over_answers_that_name_a_variant(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "faults.json").write_text(json.dumps({"crash": REPORT["crash"]}))
    (tmp_path / "resilience.json").write_text(json.dumps({"steady": REPORT["steady"]}))
    monkeypatch.setattr(bench, "machine_summary", lambda _: "a machine")  # no uname here
    text = bench.section(bench.load(tmp_path), "cmd")
    rows = [line for line in text.splitlines() if line.startswith("| crash |")]
    # 2 of the 8 answers with a variant: the failures (no variant) are not in the share
    assert (
        rows[0] == "| crash | step 1 | 25 % | 30.0 | 10 | 6 | 2 | 25.0 % | 1 bf16 | 2 x URLError |"
    )
    fault = rows[1].split(" | ")
    assert fault[2].endswith("x …")
    assert len(fault[2]) == bench.REASON_CHARS + 2
    assert "| gateway | step 1 | 3.2 | 5 | 2 | 1 x 404, 1 x URLError |" in text
    assert "9 requests sent, 9 answered, 0 failed outside" in text
