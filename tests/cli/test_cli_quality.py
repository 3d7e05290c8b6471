"""``kubectl canary get`` with ``spec.quality``: what the quality judge has read of the pairer,
from the status the controller writes."""

from __future__ import annotations

import io
import math
from typing import Any

from support.canaries import canary_dict
from support.cli import plain_console

from controlplane.cli.live import render
from controlplane.rollout.observations import QualityReading
from controlplane.rollout.state import RolloutState
from controlplane.view.canary import snapshot

NOW = 1_800_000_000.0
QUALITY = {"sample": "5%", "metric": "agreement", "tolerance": 0.1, "alpha": 0.05}


def shown(quality: Any, reading: QualityReading | None) -> str:
    """What ``get`` prints for a canary with ``quality`` whose state holds ``reading``."""
    state = RolloutState("h", "steps", NOW - 60, NOW - 30, step_index=0, weight=25, quality=reading)
    status = {**state.to_status(), "phase": "progressing"}
    view = snapshot(canary_dict(quality=quality, status=status))
    out = io.StringIO()
    console = plain_console(out)
    console.width = 400
    console.print(render(view, NOW))
    return out.getvalue()


def test_get_shows_the_mean_against_the_tolerance_and_the_evidence() -> None:
    reading = QualityReading(
        epoch="e1",
        seq=40,
        lost=3,
        pairs=40,
        total=2.0,
        log_breach=math.log(2.0),
        log_pass=math.log(4.0),
        error="pairer unreachable",
    )
    text = shown(QUALITY, reading)
    assert "Quality" in text
    assert (
        "quality: the candidate's mean disagreement 0.05 over 40 pairs, tolerance 0.1, no "
        "decision yet (evidence above 2, within 4, either needs 20); 3 pairs lost unread; the "
        "last read failed: pairer unreachable"
    ) in text


def test_get_says_the_decision_once_reached() -> None:
    reading = QualityReading(pairs=9, total=4.0, log_breach=math.log(25.0), decided="breach")
    assert "is above the tolerance 0.1 (evidence 25 >= 1/alpha 20)" in shown(QUALITY, reading)


def test_before_any_pair_and_without_a_quality_section() -> None:
    assert "quality: no pair scored yet (tolerance 0.1)" in shown(QUALITY, None)
    assert "Quality" not in shown(None, None)
    assert "quality: its spec cannot be read" in shown({"sample": "90%"}, None)
