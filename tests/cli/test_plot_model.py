"""What ``--plot`` shows, decided before any pixel: :func:`controlplane.cli.plot.plot_model`.

The runs are built by hand from ``canary/local-demo.yml`` as ``canaryctl up --time-scale 60``
runs it (30 s steps) and from a four-week schedule as ``simulate`` replays it: the axis is in
spec time and the unit that fits, steps are spans with labels, every vertical line has a label,
panels are named by metric and only for the steps reached, and the weight reaches 100 % / 0 %.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.cli.plot import plot_model, time_axis
from controlplane.local.timescale import scale_canary
from controlplane.rollout.state import Event, Reason, RolloutState
from controlplane.simulation import SimulationResult, TracePoint
from controlplane.spec.models import ModelCanary
from controlplane.validation import validated_file

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0
REASON = "ttft 360.0ms > 250ms over 10s at step 1"


def demo(scale: float = 60.0) -> ModelCanary:
    canary = validated_file(ROOT / "canary" / "local-demo.yml")[0]
    return scale_canary(canary, scale, 1.0)[0]


def run(
    canary: ModelCanary,
    events: list[Event],
    stage: str,
    reason: Reason | None = None,
    every: float = 1.0,
) -> SimulationResult:
    """A finished run: its events, and an evaluation every ``every`` seconds until the last."""
    end = events[-1].time
    weights = []
    t = T0 + every
    while t < end:
        weight = [e.weight for e in events if e.time <= t][-1]
        weights.append(TracePoint(t, weight, "steps"))
        t += every
    state = RolloutState(
        spec_hash="x",
        stage=stage,  # type: ignore[arg-type]
        started_at=T0,
        stage_started_at=events[-1].time,
        step_index=events[-1].step - 1,
        weight=events[-1].weight,
        reason=reason,
        history=tuple(events),
    )
    return SimulationResult(canary, T0, end + 5, state, len(weights), weights)


def rolled_back_at_step_1() -> SimulationResult:
    reason = Reason("breach", REASON, T0 + 12, 1, key="steps[0].rollbackOn[0]", metric="ttft")
    events = [
        Event("StepStarted", T0, 1, 10, "step 1 started at weight 10%"),
        Event("Breached", T0 + 12, 1, 10, REASON),
        Event("RolledBack", T0 + 12, 1, 0, REASON),
    ]
    return run(demo(), events, "rolled_back", reason)


def promoted() -> SimulationResult:
    events = [
        Event("StepStarted", T0, 1, 10),
        Event("Advanced", T0 + 30, 2, 50),
        Event("Advanced", T0 + 60, 3, 100),
        Event("Promoted", T0 + 60, 3, 100, "nf4 promoted: last step finished"),
    ]
    return run(demo(), events, "promoted")


@pytest.mark.parametrize(
    ("seconds", "unit"),
    [
        (70, "seconds"),
        (180, "seconds"),
        (70 * 60, "minutes"),
        (5 * 3600, "hours"),
        (28 * 86400, "days"),
    ],
)
def test_the_axis_unit_fits_the_span(seconds: float, unit: str) -> None:
    assert time_axis(T0, T0 + seconds).unit == unit


def test_up_runs_are_drawn_in_spec_time() -> None:
    model = plot_model(promoted(), time_scale=60)
    axis = model.axis
    # 60 s of wall time at --time-scale 60 is an hour of the spec: minutes, no date floats
    assert axis.unit == "minutes"
    assert axis.x(T0 + 30) == pytest.approx(30.0)
    assert axis.x(T0 + 60) == pytest.approx(60.0)
    assert axis.label == "spec time since the start (minutes; the run's seconds x 60)"
    assert model.x_max > 60  # the axis runs on past the outcome


def test_a_replay_is_in_days_and_unscaled() -> None:
    canary = validated_file(ROOT / "canary" / "four-week.yml")[0]
    week = 7 * 86400.0
    events = [
        Event("StepStarted", T0, 1, 5),
        Event("Advanced", T0 + week, 2, 25),
        Event("Advanced", T0 + 2 * week, 3, 75),
        Event("Advanced", T0 + 3 * week, 4, 100),
        Event("Promoted", T0 + 3 * week, 4, 100),
    ]
    model = plot_model(run(canary, events, "promoted", every=3600.0))
    assert model.axis.unit == "days"
    assert model.axis.label == "spec time since the start (days)"
    assert [(s.label, s.x0, s.x1) for s in model.spans] == [
        ("step 1: 5 %", 0.0, 7.0),
        ("step 2: 25 %", 7.0, 14.0),
        ("step 3: 75 %", 14.0, 21.0),
    ]  # the 100 % step that promotion enters and leaves at once is no span


def test_steps_are_spans_and_the_weight_reaches_100_on_promotion() -> None:
    model = plot_model(promoted(), time_scale=60)
    assert [(s.key, s.label, s.x0, s.x1) for s in model.spans] == [
        ("steps[0]", "step 1: 10 %", 0.0, 30.0),
        ("steps[1]", "step 2: 50 %", 30.0, 60.0),
    ]
    weights = list(model.weights)
    assert weights[0] == (0.0, 10)
    assert (30.0, 50) in weights
    assert weights[-1] == (model.x_max, 100)
    assert [w for _, w in weights].count(100) == 2  # from the promotion on, to the right edge
    assert [(m.label, m.x) for m in model.marks] == [("promoted at step 3", 60.0)]


def test_a_rollback_draws_the_weight_to_0_and_labels_its_line() -> None:
    model = plot_model(rolled_back_at_step_1(), time_scale=60)
    assert model.weights[-2:] == ((12.0, 0), (model.x_max, 0))
    (mark,) = model.marks
    assert mark.x == pytest.approx(12.0)
    assert mark.label == f"rolled back at step 1: {REASON}"
    assert model.title == f"local-demo: bf16 -> nf4 - rolled back ({REASON})"


def test_panels_are_named_by_metric_and_only_for_steps_reached() -> None:
    model = plot_model(rolled_back_at_step_1(), time_scale=60)
    # step 1 checks ttft and errors; time-per-token and latency are step 2's: not reached
    assert [p.metric for p in model.panels] == ["ttft", "errors"]
    ttft, errors = model.panels
    assert ttft.title == "ttft: P95 time to first token, checked at step 1 (window 10m)"
    assert "rollbackOn" not in ttft.title
    assert ttft.ylabel == "ttft (ms)"
    assert errors.title.startswith("errors: error rate, checked at step 1")
    assert [(t.value, t.label, t.x0, t.x1) for t in ttft.thresholds] == [
        (pytest.approx(250.0), "step 1: above 250ms", 0.0, 12.0)
    ]


def test_a_metric_checked_at_two_steps_is_one_panel_with_a_threshold_per_step() -> None:
    model = plot_model(promoted(), time_scale=60)
    names = [p.metric for p in model.panels]
    assert names == ["ttft", "errors", "time-per-token", "latency"]
    errors = model.panels[1]
    assert errors.title.startswith("errors: error rate, checked at steps 1, 2")
    assert [(t.label, t.x0, t.x1) for t in errors.thresholds] == [
        ("step 1: above 1%", 0.0, 30.0),
        ("step 2: above 1%", 30.0, 60.0),
    ]
    drift = model.panels[2]
    assert drift.baseline
    assert drift.title.startswith("time-per-token: a custom query, the candidate's drift")
    assert drift.ylabel == "time-per-token drift (%)"
    assert [(t.value, t.label) for t in drift.thresholds] == [
        (pytest.approx(30.0), "step 2: above 30%")
    ]


def test_an_evaluation_after_the_outcome_does_not_pull_the_weight_back() -> None:
    result = promoted()
    late = TracePoint(T0 + 61, 50, "steps")  # an evaluation recorded as the run wound down
    result = SimulationResult(
        result.canary, result.start, result.end, result.state, 0, [*result.trace, late]
    )
    model = plot_model(result, time_scale=60)
    xs = [x for x, _ in model.weights]
    assert xs == sorted(xs)
    assert model.weights[-2:] == ((60.0, 100), (model.x_max, 100))
