"""Smoke test of bench/scale.py against a real Prometheus: every fleet is analysed in one tick,
with as many queries at 10 canaries as at 30 (queries per tick independent of N), and the
``sequential-final`` fleet (the blast-radius verdict's configuration) runs its closing test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.binary

REPO = Path(__file__).resolve().parents[2]


def _load(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))
    spec = importlib.util.spec_from_file_location("scale_bench", REPO / "bench" / "scale.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "scale_bench", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module


def test_every_fleet_in_one_tick_with_queries_independent_of_n(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    scale = _load(monkeypatch)
    found: dict[tuple[int, str], object] = {}
    for n in (10, 30):
        results, setup = scale.run_size(n, 16, 1, tmp_path)
        assert setup["series"] == n * 22
        assert setup["rss_python"] > 0
        # promtool may finish between two samples at this size; prometheus serves every tick
        assert setup["rss_children"]["prometheus"] > 0
        assert setup["rss_total"] >= setup["rss_python"]
        for r in results:
            found[(n, r.label)] = r
    labels = {"threshold"} | {f"{f} ({p})" for f in scale.FLEETS[1:] for p in scale.PATHS}
    assert {j for _, j in found} == labels
    for label in labels:
        small, large = found[(10, label)], found[(30, label)]
        assert small.queries == large.queries  # type: ignore[attr-defined]
        assert large.decided == {"pass": 60}  # type: ignore[attr-defined]
    # The closing test's counts (pinned at the step ends) are queries of their own.
    final = found[(10, "sequential-final (batched)")]
    assert final.queries > found[(10, "sequential (batched)")].queries  # type: ignore[attr-defined]


def test_the_verdict_configuration_is_what_the_blast_radius_judges(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fleet's checks are the spec form of ``sequential-final``: both against the stable,
    latency by the shift test, errors with the blast-radius benchmark's ``finalLook``."""
    scale = _load(monkeypatch)
    from bench import blast_radius  # on the path since _load

    latency, errors = scale.checks_of("sequential-final")
    assert latency["test"] == "shift"
    assert errors["finalLook"] == blast_radius.FINAL_LOOK
    assert {c["compare"] for c in (latency, errors)} == {"baseline"}
    assert scale.template("sequential-final").spec.steps[0].rollback_on[1].final_look == (
        blast_radius.FINAL_LOOK
    )
