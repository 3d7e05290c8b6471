"""What ``up`` shows: the live panel, the log lines and the outcome line name the engine."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from rich.console import Console
from support.local import demo

from controlplane.cli.up import outcome_line
from controlplane.local.display import LiveDisplay, LogDisplay, ProgressFrame
from controlplane.local.load import LoadStats
from controlplane.local.stack import UpResult
from controlplane.local.timescale import scale_canary
from controlplane.rollout.machine import step
from controlplane.rollout.observations import Observations
from controlplane.rollout.schedule import initial_state
from controlplane.rollout.state import Reason

T0 = 1_800_000_000.0


def started():
    canary, scaling = scale_canary(demo(), 60, 1.0)
    state, _ = step(canary, initial_state(canary, T0), Observations(), T0)
    return canary, scaling, state


@pytest.mark.parametrize("engine", ["simulated", "transformers"])
def test_views_name_the_engine(engine: str) -> None:
    canary, _, state = started()
    snap = ProgressFrame(canary, state, engine, 60, T0 + 12, LoadStats(), {"nf4": {"errors": "0%"}})
    assert snap.step_line() == "step 1/3 · weight 10% · 18s left (spec time 18m)"
    assert ("SIMULATED" in snap.title) == (engine == "simulated")
    out = io.StringIO()
    log = LogDisplay(Console(file=out, width=200))
    log.update(snap)
    text = out.getvalue()
    assert f"[{engine}]" in text
    assert "StepStarted" in text
    assert "nf4: errors 0%" in text
    out = io.StringIO()
    live = LiveDisplay(Console(file=out, width=160, force_terminal=True))
    live.start([])
    live.update(snap)
    live.stop()
    assert "weight 10%" in out.getvalue()


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("promoted", "PROMOTED: nf4 (bitsandbytes-nf4) replaces bf16 after 3 steps"),
        ("rolled_back", "ROLLED BACK at step 1 (weight was 10%): ttft 480ms > 250ms"),
        ("interrupted", "INTERRUPTED at step 1 (weight 10%)"),
        ("in_progress", "NO OUTCOME after 5s: progressing at step 1"),
    ],
    ids=["promoted", "rolled-back", "interrupted", "no-outcome"],
)
def test_outcome_line(outcome: str, expected: str) -> None:
    canary, scaling, state = started()
    if outcome == "rolled_back":
        reason = Reason("breach", "ttft 480ms > 250ms over 10s at step 1", T0 + 3, 1)
        state = replace(state, stage="rolled_back", reason=reason)
    result = UpResult(outcome, state, canary, scaling, "simulated", 5.0, LoadStats(), {})
    line = outcome_line(result)
    assert line.startswith(expected)
    assert line.endswith("[simulated engine]")


def test_no_outcome_says_which_checks_held_and_why() -> None:
    from controlplane.rollout.observations import CheckResult

    canary, scaling, state = started()
    why = "ttft: too few samples: 3 of minSamples 20 requests in the window"
    key = "steps[0].rollbackOn[0]"
    due = {key: CheckResult(key, "ttft", "inconclusive", message=why)}
    state, _ = step(canary, state, Observations(checks=due), T0 + 60)
    result = UpResult("in_progress", state, canary, scaling, "simulated", 5.0, LoadStats(), {})
    line = outcome_line(result)
    assert line.startswith("NO OUTCOME after 5s: holding at step 1: checks inconclusive: ")
    assert why in line
    assert "errors: no result at this evaluation (step 1)" in line
    assert "rollbackOn[" not in line
