"""The quality judge in the rollout machine: its reading recorded across steps, a breach rolls
back, and the candidate takes the last step's share only on a pass unless ``undecided:
promote``."""

from __future__ import annotations

from support.canaries import SMALL, canary_dict, model_canary

from controlplane.rollout.actions import Notify, Promote, Rollback
from controlplane.rollout.machine import step
from controlplane.rollout.observations import CheckResult, Observations, QualityReading
from controlplane.rollout.schedule import due_checks, initial_state
from controlplane.rollout.state import RolloutState
from controlplane.spec.models import ModelCanary

T0 = 1_800_000_000.0
MIN = 60.0
QUALITY = {"sample": "5%", "metric": "agreement", "tolerance": 0.1, "alpha": 0.05}
BASE = canary_dict(
    base=SMALL,
    analysis={"interval": "1m", "metrics": [{"name": "latency", "builtin": "e2e-latency"}]},
    steps=[
        {"weight": 10, "duration": "3m", "rollbackOn": [{"metric": "latency", "above": "1s"}]},
        {"weight": 50, "duration": "3m", "rollbackOn": [{"metric": "latency", "above": "1s"}]},
        {"weight": 100},
    ],
)
UNDECIDED = QualityReading(epoch="e", seq=5, pairs=5, total=0.1, log_breach=0.2, log_pass=1.0)
PASSED = QualityReading(epoch="e", seq=60, pairs=60, total=0.5, log_pass=3.1, decided="pass")
BREACHED = QualityReading(epoch="e", seq=9, pairs=9, total=4.0, log_breach=3.2, decided="breach")


def tick(
    spec: ModelCanary, state: RolloutState, minute: float, reading: QualityReading | None
) -> tuple[RolloutState, list[str]]:
    now = T0 + minute * MIN
    checks = {
        d.key: CheckResult(d.key, d.check.metric, "pass", value=0.1, samples=100)
        for d in due_checks(spec, state, now)
    }
    state, actions = step(spec, state, Observations(checks=checks, quality=reading), now)
    said = [f"{a.event.type}: {a.event.message}" for a in actions if isinstance(a, Notify)]
    return state, said + [type(a).__name__ for a in actions if isinstance(a, Promote | Rollback)]


def run(spec: ModelCanary, readings: dict[int, QualityReading], minutes: int) -> list[str]:
    state, said = initial_state(spec, T0), []
    reading = None
    for minute in range(minutes):
        reading = readings.get(minute, reading)
        state, now_said = tick(spec, state, minute, reading)
        said += now_said
    return said


def test_a_breach_rolls_back_at_any_step_with_the_judges_words() -> None:
    said = run(model_canary(base=BASE, quality=QUALITY), {0: UNDECIDED, 2: BREACHED}, 5)
    rolled = [s for s in said if s.startswith("RolledBack")]
    assert len(rolled) == 1
    assert (
        "quality: the candidate's mean disagreement 0.444 over 9 pairs is above the tol"
        in (rolled[0])
    )
    assert "(evidence 24.5 >= 1/alpha 20)" in rolled[0]
    assert "Rollback" in said
    assert "Promote" not in said


def test_the_step_before_the_last_holds_for_the_evidence_then_goes_on_on_a_pass() -> None:
    said = run(model_canary(base=BASE, quality=QUALITY), {0: UNDECIDED, 9: PASSED}, 12)
    held = [s for s in said if s.startswith("Held")]
    assert held == [
        "Held: step 2 is due but waits for quality: the candidate's mean disagreement 0.02 over "
        "5 pairs, tolerance 0.1, no decision yet (evidence above 1.22, within 2.72, either "
        "needs 20)"
    ]
    promoted = [i for i, s in enumerate(said) if s.startswith("Promoted")]
    assert len(promoted) == 1
    assert said.index(held[0]) < promoted[0]
    assert "Promote" in said


def test_the_first_step_does_not_wait_for_the_quality_judge() -> None:
    said = run(model_canary(base=BASE, quality=QUALITY), {0: UNDECIDED}, 5)
    assert any(s.startswith("Advanced") for s in said)
    assert "Promote" not in said


def test_undecided_promote_lets_the_last_step_end_without_a_pass() -> None:
    said = run(
        model_canary(base=BASE, quality={**QUALITY, "undecided": "promote"}), {0: UNDECIDED}, 8
    )
    assert "Promote" in said
    assert not any(s.startswith("Held") for s in said)


def test_a_spec_without_quality_ignores_a_reading() -> None:
    spec = model_canary(base=BASE)
    state = initial_state(spec, T0)
    for minute in range(3):
        state, _ = tick(spec, state, minute, BREACHED)
    assert state.quality is None
    assert state.stage == "steps"


def test_a_failed_read_counts_as_a_provider_error_and_keeps_the_last_reading() -> None:
    spec = model_canary(base=BASE, quality=QUALITY)
    state = initial_state(spec, T0)
    state, _ = tick(spec, state, 0, UNDECIDED)
    state, _ = tick(spec, state, 1, UNDECIDED)
    failed = QualityReading(**{**UNDECIDED.__dict__, "error": "pairer unreachable"})
    state, _ = tick(spec, state, 2, failed)
    assert state.consecutive_errors == 1
    assert state.quality == failed
    assert RolloutState.from_status(state.to_status()) == state


SHADOWED = canary_dict(
    base=BASE,
    analysis={
        "interval": "1m",
        "metrics": [
            {"name": "latency", "builtin": "e2e-latency"},
            {"name": "win-rate", "query": "avg(win_rate)", "unit": "ratio"},
        ],
    },
    shadow={
        "duration": "10m",
        "promoteOn": {"metric": "win-rate", "above": "3%", "for": "5m"},
        "rollbackOn": [{"metric": "latency", "above": "1s"}],
    },
)


def test_the_shadow_phase_records_the_judge_and_a_breach_there_rolls_back() -> None:
    spec = model_canary(base=SHADOWED, quality=QUALITY)
    state = initial_state(spec, T0)
    for minute in range(3):
        state, said = tick(spec, state, minute, UNDECIDED if minute < 2 else BREACHED)
        if minute == 1:
            assert state.stage == "shadow"
            assert state.quality == UNDECIDED  # read in the shadow phase and kept
    assert state.outcome == "rolled_back"
    assert state.reason is not None
    assert state.reason.kind == "quality"
    assert state.step == 0  # before any user was answered by the candidate
    assert "Rollback" in said
