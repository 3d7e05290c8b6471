"""Smoke and model tests of bench/blast_radius.py and bench/common.py.

The benchmark's ``--quick`` mode must run in seconds and write a table with every scenario and
every judge into its own section of a markdown file, leaving other sections alone; its model of
Flagger must roll back exactly when Flagger's scheduler would.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "blast_radius.py"


def _load(name: str, path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_every_scenario_into_its_own_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## Other\n\nkeep me\n", encoding="utf-8")
    cmd = [sys.executable, str(SCRIPT), "--quick", "--output", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert first.returncode == 0, first.stderr
    text = out.read_text(encoding="utf-8")
    assert "## Other\n\nkeep me" in text
    assert text.count("## Blast radius") == 1
    bench = text.split("## Blast radius", 1)[1]
    for scenario in (
        "good (identical)",
        "2x error rate",
        "+30% P99",
        "+50% P99",
        "drift",
        "good, 1% base",
        "2x error rate, 1% base",
    ):
        for judge in ("flagger", "threshold", "sequential", "sequential-vs-stable"):
            assert any(
                f"| {scenario}" in line and f"| {judge} |" in line for line in bench.splitlines()
            ), (scenario, judge)
    assert "python bench/blast_radius.py --quick" in bench
    # A second run replaces the section instead of appending another one.
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert second.returncode == 0, second.stderr
    again = out.read_text(encoding="utf-8")
    assert again.count("## Blast radius") == 1
    assert "## Other\n\nkeep me" in again


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        pytest.param(None, "# Benchmarks", id="creates-file"),
        pytest.param("# B\n\n## X\n\nx\n", "## X\n\nx\n\n## S\n\nnew\n", id="appends"),
        pytest.param(
            "# B\n\n## S\n\nold\n\n## X\n\nx\n", "## S\n\nnew\n\n## X\n\nx\n", id="replaces-middle"
        ),
        pytest.param("# B\n\n## S\n\nold\n", "# B\n\n## S\n\nnew\n", id="replaces-last"),
    ],
)
def test_replace_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: str | None, expected: str
) -> None:
    common = _load("bench_common", REPO / "bench" / "common.py", monkeypatch)
    path = tmp_path / "b.md"
    if before is not None:
        path.write_text(before, encoding="utf-8")
    common.replace_section(path, "## S", "new")
    once = path.read_text(encoding="utf-8")
    assert expected in once
    assert "old" not in once
    common.replace_section(path, "## S", "new")
    assert path.read_text(encoding="utf-8") == once


def _flagger_streams(module: ModuleType, fail_minutes: list[int], horizon: int) -> object:
    """One run whose candidate fails Flagger's success-rate check exactly at fail_minutes."""
    k = len(module.BUCKETS)
    buckets = np.zeros((1, horizon, k), dtype=np.int64)
    buckets[..., 0] = 30  # every request in the fastest bucket: the latency check passes
    n = buckets.sum(-1)
    err = np.zeros((1, horizon), dtype=np.int64)
    for m in fail_minutes:
        err[0, m - 1] = 1  # 1/30 = 3.3 % errors: under 99 % success
    zeros = np.zeros((1, horizon), dtype=np.int64)
    return module.Streams(buckets, n, err, zeros, n * 19, zeros)


@pytest.mark.parametrize(
    ("fails", "rolled_back", "minute"),
    [
        pytest.param([3, 10, 20, 30, 40], True, 41, id="fifth-failure-rolls-back-next-tick"),
        pytest.param([1, 2, 3, 4], False, 64, id="four-failures-delay-promotion"),
        pytest.param([], False, 60, id="clean-run-promotes-after-60-iterations"),
    ],
)
def test_flagger_model(
    monkeypatch: pytest.MonkeyPatch, fails: list[int], rolled_back: bool, minute: int
) -> None:
    module = _load("blast_radius", SCRIPT, monkeypatch)
    streams = _flagger_streams(module, fails, module.STEP_MIN + module.FLAGGER_THRESHOLD)
    out = module.judge_flagger(streams)
    assert bool(out.rolled_back[0]) is rolled_back
    assert int(out.minute[0]) == minute
