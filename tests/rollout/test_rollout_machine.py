"""Table-driven tests of every transition and check rule of the rollout state machine.

The canaries come from the one builder (``model_canary(base=BASE, ...)``); observations are built
by hand from the due checks with a one-letter code per check (P pass, B breach, I inconclusive,
E provider error, D decided pass, X decided breach). Times are minutes after T0, evaluated every
minute.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from support.canaries import SMALL, canary_dict, model_canary

from controlplane.rollout.actions import (
    Action,
    Deploy,
    Notify,
    Pause,
    Promote,
    Rollback,
    SetWeights,
)
from controlplane.rollout.intents import Intent
from controlplane.rollout.machine import step
from controlplane.rollout.observations import CheckResult, Observations
from controlplane.rollout.schedule import (
    due_checks,
    evaluation_due,
    initial_state,
    next_evaluation,
)
from controlplane.rollout.state import HISTORY_LIMIT, RolloutState, spec_hash
from controlplane.spec.models import ModelCanary

T0 = 1_800_000_000.0
MIN = 60.0

# The canary of these tests: steps of 10 % and 50 % for ten minutes, then 100 %, evaluated every
# minute; no shadow and no budget unless a test adds SHADOW or BUDGET.
ANALYSIS: dict[str, Any] = {
    "interval": "1m",
    "errorLimit": 3,
    "metrics": [
        {"name": "latency", "builtin": "e2e-latency"},
        {"name": "errors", "builtin": "error-rate"},
        {"name": "win-rate", "query": "vector(0)"},
    ],
}
BASE = canary_dict(
    base=SMALL,
    analysis=ANALYSIS,
    steps=[
        {
            "weight": 10,
            "duration": "10m",
            "rollbackOn": [
                {"metric": "latency", "above": "200ms"},
                {"metric": "errors", "above": "1%"},
            ],
        },
        {
            "weight": 50,
            "duration": "10m",
            "rollbackOn": [{"metric": "latency", "above": "200ms"}],
        },
        {"weight": 100},
    ],
)
SHADOW = {
    "duration": "30m",
    "promoteOn": {"metric": "win-rate", "above": "3%", "for": "5m"},
    "rollbackOn": [{"metric": "errors", "above": "1%"}],
}
BUDGET = {"dailyLimit": 100, "throttleWeight": 2}


def result(key: str, metric: str, code: str, value: float | None = None) -> CheckResult:
    verdict = {"P": "pass", "B": "breach", "D": "pass", "X": "breach"}.get(code, "inconclusive")
    return CheckResult(
        key=key,
        metric=metric,
        verdict=verdict,  # type: ignore[arg-type]
        value=value if value is not None else (0.3 if verdict == "breach" else 0.1),
        provider_error=code == "E",
        message=f"{metric}: {code}",
        decided={"D": "pass", "X": "breach"}.get(code),  # type: ignore[arg-type]
    )


def observe(
    spec: ModelCanary,
    state: RolloutState,
    now: float,
    codes: str | Mapping[str, str] = "P",
    **extra: Any,
) -> Observations:
    """Answer every due check: one code for all, or a code per key (default P)."""
    checks = {}
    for due in due_checks(spec, state, now):
        code = codes if isinstance(codes, str) else codes.get(due.key, "P")
        checks[due.key] = result(due.key, due.check.metric, code)
    return Observations(checks=checks, **extra)


class Run:
    """Drives one rollout minute by minute from T0 (the candidate is ready at T0)."""

    def __init__(self, spec: ModelCanary, *, ready: bool = True) -> None:
        self.spec = spec
        self.state = initial_state(spec, T0)
        self.actions: list[Action] = []
        self.tick(0, ready=ready)

    def tick(
        self,
        minute: float,
        codes: str | Mapping[str, str] = "P",
        intents: Sequence[Intent] = (),
        *,
        ready: bool = True,
        **extra: Any,
    ) -> list[Action]:
        now = T0 + minute * MIN
        obs = observe(self.spec, self.state, now, codes, candidate_ready=ready, **extra)
        self.state, actions = step(self.spec, self.state, obs, now, intents)
        self.actions += actions
        return actions

    def ticks(self, first: int, codes: str, **extra: Any) -> None:
        """One tick per letter of ``codes`` (applied to every check) from minute ``first``."""
        for offset, code in enumerate(codes):
            self.tick(first + offset, code, **extra)

    @property
    def where(self) -> tuple[str, int]:
        return self.state.phase, self.state.step


def events(actions: Sequence[Action]) -> list[str]:
    return [a.event.type for a in actions if isinstance(a, Notify)]


def intent(verb: str, minute: float, user: str = "") -> Intent:
    return Intent(verb, T0 + minute * MIN - 1, user)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pending


@pytest.mark.parametrize(
    ("shadow", "ready", "phase", "expected"),
    [
        pytest.param(False, False, "pending", [Deploy("nf4")], id="not-ready-stays-pending"),
        pytest.param(
            False,
            True,
            "progressing",
            [Deploy("nf4"), SetWeights(10, False), "StepStarted"],
            id="ready-starts-step-1",
        ),
        pytest.param(
            True,
            True,
            "shadow",
            [Deploy("nf4"), SetWeights(0, True), "ShadowStarted"],
            id="ready-starts-shadow",
        ),
    ],
)
def test_pending_starts_when_candidate_ready(
    shadow: bool, ready: bool, phase: str, expected: list[Any]
) -> None:
    spec = model_canary(base=BASE, shadow=SHADOW) if shadow else model_canary(base=BASE)
    run = Run(spec, ready=ready)
    got = [a.event.type if isinstance(a, Notify) else a for a in run.actions]
    assert got == expected
    assert run.state.phase == phase


def test_pending_deploys_once_and_waits_without_observations() -> None:
    spec = model_canary(base=BASE)
    state = initial_state(spec, T0)
    state, first = step(spec, state, None, T0)
    state, second = step(spec, state, Observations(candidate_ready=False), T0 + MIN)
    assert first == [Deploy("nf4")]
    assert second == []
    assert state.phase == "pending"
    state, third = step(spec, state, Observations(), T0 + 2 * MIN)
    assert events(third) == ["StepStarted"]
    assert state.stage_started_at == T0 + 2 * MIN


# --------------------------------------------------------------------------- steps


@pytest.mark.parametrize(
    ("codes", "where", "last_events"),
    [
        pytest.param("P" * 9, ("progressing", 1), [], id="duration-not-elapsed"),
        pytest.param("P" * 10, ("progressing", 2), ["Advanced"], id="advance-at-duration"),
        pytest.param("P" * 9 + "I", ("holding", 1), ["Held"], id="inconclusive-holds"),
        pytest.param("P" * 9 + "II", ("holding", 1), [], id="held-event-once"),
        pytest.param("P" * 9 + "IIP", ("progressing", 2), ["Advanced"], id="hold-then-advance"),
        pytest.param("IIIIIIIIIP", ("progressing", 2), ["Advanced"], id="only-latest-counts"),
        pytest.param("P" * 9 + "EP", ("progressing", 2), ["Advanced"], id="error-holds"),
        pytest.param(
            "P" * 20, ("promoted", 3), ["Advanced", "Promoted"], id="last-step-promotes-on-reach"
        ),
    ],
)
def test_step_advances_only_when_elapsed_and_all_passed(
    codes: str, where: tuple[str, int], last_events: list[str]
) -> None:
    run = Run(model_canary(base=BASE))
    run.ticks(1, codes[:-1])
    last = run.tick(len(codes), codes[-1])
    assert run.where == where
    assert events(last) == last_events


def test_one_inconclusive_check_holds_the_step() -> None:
    run = Run(model_canary(base=BASE))
    run.ticks(1, "P" * 9)
    run.tick(10, {"steps[0].rollbackOn[1]": "I"})
    assert run.where == ("holding", 1)
    assert run.state.weight == 10
    held = run.state.history[-1]
    assert (held.type, held.message) == (
        "Held",
        "step 1 is due but waits for errors (inconclusive: I)",
    )


def test_advance_then_promote_emits_weights_in_order() -> None:
    run = Run(model_canary(base=BASE))
    run.ticks(1, "P" * 9)
    assert run.tick(10) == [
        SetWeights(50, False),
        Notify(run.state.history[-1]),
    ]
    run.ticks(11, "P" * 9)
    actions = run.tick(20)
    assert [type(a).__name__ for a in actions] == [
        "SetWeights",
        "Notify",
        "Promote",
        "Notify",
    ]
    assert events(actions) == ["Advanced", "Promoted"]
    assert actions[0] == SetWeights(100, False)
    assert run.state.outcome == "promoted"


def test_last_step_with_duration_and_checks_holds_at_100_first() -> None:
    steps = copy.deepcopy(BASE["spec"]["steps"])
    steps[-1] = {
        "weight": 100,
        "duration": "5m",
        "rollbackOn": [{"metric": "errors", "above": "1%"}],
    }
    run = Run(model_canary(base=BASE, steps=steps))
    run.ticks(1, "P" * 20)
    assert run.where == ("progressing", 3)
    assert run.state.weight == 100
    run.ticks(21, "P" * 4)
    assert run.where == ("progressing", 3)
    assert events(run.tick(25)) == ["Promoted"]


def test_steps_without_duration_or_checks_cascade() -> None:
    steps = [{"weight": 20}, {"weight": 60}, {"weight": 100}]
    run = Run(model_canary(base=BASE, steps=steps))
    assert events(run.actions) == ["StepStarted", "Advanced", "Advanced", "Promoted"]
    assert run.state.outcome == "promoted"


# --------------------------------------------------------------------------- breaches and `for`


def _for_steps(window: str) -> list[dict[str, Any]]:
    """One ten-percent hour whose latency check holds ``for`` ``window``, then 100 %."""
    return [
        {
            "weight": 10,
            "duration": "1h",
            "rollbackOn": [{"metric": "latency", "above": "200ms", "for": window}],
        },
        {"weight": 100},
    ]


@pytest.mark.parametrize(
    ("window", "codes", "rollback_at"),
    [
        pytest.param("0", "PPB", 3, id="for-0-first-breach"),
        pytest.param("3m", "BBB", None, id="3-evaluations-span-2m"),
        pytest.param("3m", "BBBB", 4, id="breached-for-3m"),
        pytest.param("3m", "BBPBBB", None, id="pass-resets"),
        pytest.param("3m", "BBPBBBB", 7, id="pass-resets-then-breach"),
        pytest.param("3m", "BBIBBBB", 7, id="inconclusive-resets"),
        pytest.param("3m", "BBEBBBB", 7, id="provider-error-resets"),
        pytest.param("3m", "PPXP", 3, id="decided-breach-is-immediate"),
    ],
)
def test_for_semantics(window: str, codes: str, rollback_at: int | None) -> None:
    run = Run(model_canary(base=BASE, steps=_for_steps(window)))
    rolled_at = None
    for minute, code in enumerate(codes, start=1):
        if any(isinstance(a, Rollback) for a in run.tick(minute, code)):
            rolled_at = minute
    assert rolled_at == rollback_at
    assert (run.state.outcome == "rolled_back") == (rollback_at is not None)


def test_breached_event_once_per_streak() -> None:
    run = Run(model_canary(base=BASE, steps=_for_steps("10m")))
    run.ticks(1, "BBBPBB")
    assert events(run.actions).count("Breached") == 2
    assert run.state.outcome == "in_progress"


def test_rollback_reason_records_the_breach() -> None:
    spec = model_canary(base=BASE)
    run = Run(spec)
    run.ticks(1, "PP")
    now = T0 + 3 * MIN
    obs = observe(spec, run.state, now)
    breach = CheckResult(
        "steps[0].rollbackOn[0]", "latency", "breach", value=0.231, candidate=0.231, stable=0.12
    )
    obs = Observations(checks={**obs.checks, breach.key: breach})
    state, actions = step(spec, run.state, obs, now)
    assert [type(a).__name__ for a in actions] == ["Notify", "SetWeights", "Rollback", "Notify"]
    assert events(actions) == ["Breached", "RolledBack"]
    assert actions[1] == SetWeights(0, False)
    reason = state.reason
    assert reason is not None
    assert (reason.kind, reason.metric, reason.key) == ("breach", "latency", breach.key)
    assert (reason.value, reason.candidate, reason.stable) == (0.231, 0.231, 0.12)
    assert (reason.above, reason.below, reason.window, reason.step, reason.at) == (
        0.2,
        None,
        "5m",
        1,
        now,
    )
    assert "231.0ms" in reason.message
    breached = [e for e in state.history if e.type == "Breached"][-1]
    # named by its metric and step for people, not by the key's index path
    assert breached.message == "latency 231.0ms > 200ms at step 1: rolling back"
    assert state.phase == "rolled_back"
    assert state.weight == 0


def test_baseline_reason_has_both_thresholds_and_check_window() -> None:
    steps = [
        {
            "weight": 25,
            "duration": "1h",
            "rollbackOn": [
                {
                    "metric": "kpi",
                    "compare": "baseline",
                    "above": "5%",
                    "below": "-5%",
                    "window": "4h",
                }
            ],
        },
        {"weight": 100},
    ]
    metrics = [{"name": "kpi", "query": "vector(1)"}]
    run = Run(model_canary(base=BASE, steps=steps, metrics=metrics))
    run.tick(1, "B")
    reason = run.state.reason
    assert reason is not None
    assert (reason.above, reason.below, reason.window, reason.step) == (0.05, -0.05, "4h", 1)
    assert "drift" in reason.message


# --------------------------------------------------------------------------- sequential judge


@pytest.mark.parametrize(
    ("codes", "where"),
    [
        pytest.param(
            {"steps[0].rollbackOn[0]": "D", "steps[0].rollbackOn[1]": "D"},
            ("progressing", 2),
            id="all-decided-advance-early",
        ),
        pytest.param({"steps[0].rollbackOn[0]": "D"}, ("progressing", 1), id="one-decided-waits"),
        pytest.param(
            {"steps[0].rollbackOn[0]": "D", "steps[0].rollbackOn[1]": "I"},
            ("progressing", 1),
            id="decided-and-inconclusive-waits",
        ),
    ],
)
def test_decided_pass_advances_before_duration(
    codes: Mapping[str, str], where: tuple[str, int]
) -> None:
    run = Run(model_canary(base=BASE))
    actions = run.tick(3, codes)
    assert run.where == where
    if where[1] == 2:
        assert "sequential judge" in actions[-1].event.message  # type: ignore[union-attr]


# --------------------------------------------------------------------------- provider errors


@pytest.mark.parametrize(
    ("codes", "phase", "errors"),
    [
        pytest.param("EE", "progressing", 2, id="below-limit"),
        pytest.param("EEP", "progressing", 0, id="clean-evaluation-resets-count"),
        pytest.param("EEE", "paused", 3, id="limit-pauses"),
        pytest.param("EEEEEEEEEEEEEEEEEEEE", "paused", 20, id="outage-never-rolls-back"),
        pytest.param("EEEP", "progressing", 0, id="auto-resume-on-data"),
        pytest.param("EEPEE", "progressing", 2, id="count-is-consecutive"),
    ],
)
def test_error_limit_pauses_and_auto_resumes(codes: str, phase: str, errors: int) -> None:
    run = Run(model_canary(base=BASE))
    run.ticks(1, codes)
    assert run.state.phase == phase
    assert run.state.consecutive_errors == errors
    assert run.state.outcome != "rolled_back"
    assert run.state.step == 1


def test_error_pause_reason_action_and_resume_event() -> None:
    run = Run(model_canary(base=BASE))
    run.ticks(1, "EE")
    actions = run.tick(3, "E")
    pause = next(a for a in actions if isinstance(a, Pause))
    assert pause.reason.kind == "provider-errors"
    assert "3 consecutive" in pause.reason.message
    assert run.state.reason == pause.reason
    assert events(run.tick(4, "P")) == ["Resumed"]
    assert run.state.reason is None


def test_spend_error_counts_towards_error_limit() -> None:
    run = Run(model_canary(base=BASE, budget=BUDGET))
    run.ticks(1, "PPP", spend_error=True)
    assert run.state.phase == "paused"


def test_pause_freezes_the_step_clock_and_never_advances() -> None:
    run = Run(model_canary(base=BASE))
    run.ticks(1, "PPPEEEEEEEEEEE")  # errors from minute 4, paused at minute 6 .. 14
    assert run.where == ("paused", 1)
    run.ticks(15, "P" * 4)  # resumed at 15 after 9 paused minutes: due at 10 + 9 = 19
    assert run.where == ("progressing", 1)
    run.tick(19)
    assert run.where == ("progressing", 2)


def test_breach_during_error_pause_still_rolls_back() -> None:
    run = Run(model_canary(base=BASE))
    run.ticks(1, "EEE")
    run.tick(4, {"steps[0].rollbackOn[0]": "B", "steps[0].rollbackOn[1]": "E"})
    assert run.state.outcome == "rolled_back"


# --------------------------------------------------------------------------- shadow


def _shadow_run(codes: str) -> Run:
    """One letter per minute for shadow.promoteOn (B: the promote condition holds)."""
    run = Run(model_canary(base=BASE, shadow=SHADOW))
    for minute, code in enumerate(codes, start=1):
        run.tick(minute, {"shadow.promoteOn": code})
    return run


@pytest.mark.parametrize(
    ("codes", "where"),
    [
        pytest.param("BBBBB", ("shadow", 0), id="holds-for-4m-not-enough"),
        pytest.param("BBBBBB", ("progressing", 1), id="holds-for-5m-passes"),
        pytest.param("BBBPBBBBB", ("shadow", 0), id="pass-resets-streak"),
        pytest.param("BBBIBBBBBB", ("progressing", 1), id="inconclusive-resets-streak"),
        pytest.param("P" * 29, ("shadow", 0), id="before-deadline"),
        pytest.param("P" * 30, ("rolled_back", 0), id="deadline-fails"),
        pytest.param("P" * 24 + "BBBBBB", ("progressing", 1), id="passes-at-deadline"),
    ],
)
def test_shadow_promote_on_and_deadline(codes: str, where: tuple[str, int]) -> None:
    run = _shadow_run(codes)
    assert run.where == where
    if where[0] == "progressing":
        assert events(run.actions)[-2:] == ["ShadowPassed", "StepStarted"]
        assert run.actions[-2] == SetWeights(10, False)
    if where[0] == "rolled_back":
        assert run.state.reason is not None
        assert run.state.reason.kind == "shadow-expired"


def test_shadow_keeps_user_weight_zero_and_mirrors() -> None:
    run = _shadow_run("PPP")
    assert (run.state.weight, run.state.mirror) == (0, True)
    assert [d.key for d in due_checks(run.spec, run.state, T0 + 4 * MIN)] == [
        "shadow.promoteOn",
        "shadow.rollbackOn[0]",
    ]


def test_shadow_rollback_on_breach() -> None:
    run = Run(model_canary(base=BASE, shadow=SHADOW))
    run.tick(1, {"shadow.rollbackOn[0]": "B"})
    assert run.state.outcome == "rolled_back"
    assert run.state.reason is not None
    assert run.state.reason.key == "shadow.rollbackOn[0]"
    assert run.state.reason.step == 0


def test_shadow_deadline_is_a_wake_up_between_evaluations() -> None:
    spec = model_canary(base=BASE, shadow={**SHADOW, "duration": "150s"})
    run = Run(spec)
    run.ticks(1, "PP")
    assert next_evaluation(spec, run.state) == T0 + 150
    run.state, actions = step(spec, run.state, None, T0 + 150)
    assert events(actions) == ["RolledBack"]


# --------------------------------------------------------------------------- budget


def test_budget_throttles_and_restores_while_the_clock_runs() -> None:
    run = Run(model_canary(base=BASE, budget=BUDGET))
    run.ticks(1, "PP", spend=10.0)
    actions = run.tick(3, spend=150.0)
    assert actions[0] == SetWeights(2, False)
    assert events(actions) == ["Throttled"]
    assert run.where == ("throttled", 1)
    run.ticks(4, "P" * 6, spend=150.0)
    actions = run.tick(10, spend=150.0)  # the step clock kept running
    assert run.state.step == 2
    assert run.state.weight == 2
    assert actions == [Notify(run.state.history[-1])]
    actions = run.tick(11, spend=99.0)
    assert actions[0] == SetWeights(50, False)
    assert events(actions) == ["Unthrottled"]
    assert run.where == ("progressing", 2)


def test_unknown_spend_keeps_throttle_state() -> None:
    run = Run(model_canary(base=BASE, budget=BUDGET))
    run.tick(1, spend=150.0)
    run.tick(2, spend=None)
    assert run.state.throttled


def test_throttle_never_raises_a_weight() -> None:
    run = Run(model_canary(base=BASE, budget={"dailyLimit": 100, "throttleWeight": 30}))
    actions = run.tick(1, spend=150.0)
    assert run.state.phase == "throttled"
    assert run.state.weight == 10
    assert not [a for a in actions if isinstance(a, SetWeights)]


def test_throttle_in_shadow_turns_the_mirror_off() -> None:
    run = Run(model_canary(base=BASE, shadow=SHADOW, budget=BUDGET))
    assert run.tick(1, spend=500.0)[0] == SetWeights(0, False)
    assert run.tick(2, spend=5.0)[0] == SetWeights(0, True)


# --------------------------------------------------------------------------- intents


def _at_step_1_minute_3() -> Run:
    run = Run(model_canary(base=BASE))
    run.ticks(1, "PP")
    return run


@pytest.mark.parametrize(
    ("verbs", "where", "expected_events"),
    [
        pytest.param(["pause"], ("paused", 1), ["Paused"], id="pause"),
        pytest.param(["pause", "pause"], ("paused", 1), ["Paused"], id="pause-twice"),
        pytest.param(["pause", "resume"], ("progressing", 1), ["Paused", "Resumed"], id="resume"),
        pytest.param(["resume"], ("progressing", 1), [], id="resume-unpaused-ignored"),
        pytest.param(["promote"], ("progressing", 2), ["Advanced"], id="promote-next-step"),
        pytest.param(
            ["promote", "promote"],
            ("promoted", 3),
            ["Advanced", "Advanced", "Promoted"],
            id="promote-twice",
        ),
        pytest.param(["promote-full"], ("promoted", 3), ["Promoted"], id="promote-full"),
        pytest.param(["abort"], ("rolled_back", 1), ["RolledBack"], id="abort"),
        pytest.param(
            ["abort", "retry"], ("pending", 0), ["RolledBack", "Restarted"], id="retry-after-abort"
        ),
        pytest.param(["retry"], ("progressing", 1), [], id="retry-only-after-rollback"),
        pytest.param(
            ["abort", "promote-full"], ("rolled_back", 1), ["RolledBack"], id="terminal-ignores"
        ),
        pytest.param(
            ["pause", "promote"], ("paused", 2), ["Paused", "Advanced"], id="promote-while-paused"
        ),
    ],
)
def test_intents(verbs: list[str], where: tuple[str, int], expected_events: list[str]) -> None:
    run = _at_step_1_minute_3()
    intents = [intent(verb, 3 + i / 100) for i, verb in enumerate(verbs)]
    actions = run.tick(3.5, intents=intents)
    assert run.where == where
    assert events(actions) == expected_events


def test_intent_actions_for_abort_and_promote_full() -> None:
    run = _at_step_1_minute_3()
    actions = run.tick(3, intents=[intent("abort", 3, "ana")])
    assert actions[:2] == [SetWeights(0, False), Rollback(run.state.reason)]  # type: ignore[arg-type]
    assert run.state.reason is not None
    assert run.state.reason.message == "aborted by ana"
    run = _at_step_1_minute_3()
    actions = run.tick(3, intents=[intent("promote-full", 3)])
    assert actions[:2] == [SetWeights(100, False), Promote()]


def test_promote_refused_while_a_check_is_breached() -> None:
    run = Run(model_canary(base=BASE, steps=_for_steps("10m")))
    run.ticks(1, "PB")
    actions = run.tick(3, "B", intents=[intent("promote", 3)])
    assert run.where == ("progressing", 1)
    assert events(actions) == ["Held"]
    assert "promote refused" in actions[0].event.message  # type: ignore[union-attr]


def test_promote_in_shadow_starts_the_steps_and_ignored_in_pending() -> None:
    run = Run(model_canary(base=BASE, shadow=SHADOW))
    run.tick(1, intents=[intent("promote", 1)])
    assert run.where == ("progressing", 1)
    pending = Run(model_canary(base=BASE), ready=False)
    pending.tick(1, ready=False, intents=[intent("promote", 1)])
    assert pending.where == ("pending", 0)


def test_intents_apply_once() -> None:
    run = _at_step_1_minute_3()
    recorded = [intent("pause", 3), intent("resume", 3.5)]
    run.tick(4, intents=recorded[:1])
    run.tick(5, intents=recorded)
    run.tick(6, intents=recorded)
    assert events(run.actions).count("Paused") == 1
    assert events(run.actions).count("Resumed") == 1
    assert run.state.last_intent_at == recorded[1].at


def test_user_pause_waits_for_resume_and_is_not_auto_resumed() -> None:
    run = _at_step_1_minute_3()
    run.tick(3, intents=[intent("pause", 3)])
    run.ticks(4, "P" * 20)
    assert run.where == ("paused", 1)
    run.tick(24, intents=[intent("resume", 24)])
    run.ticks(25, "P" * 6)  # 7 minutes of the step remained when paused at 3: due at 31
    assert run.where == ("progressing", 1)
    run.tick(31)
    assert run.where == ("progressing", 2)


def test_user_pause_overrides_an_error_pause() -> None:
    run = _at_step_1_minute_3()
    run.ticks(3, "EEE")
    assert run.state.paused == "errors"
    run.tick(6, "E", intents=[intent("pause", 6)])
    run.tick(7, "P")
    assert run.state.phase == "paused"
    assert run.state.reason is not None
    assert run.state.reason.kind == "user-pause"


# --------------------------------------------------------------------------- spec changes


def test_spec_change_restarts_the_rollout() -> None:
    run = Run(model_canary(base=BASE))
    run.ticks(1, "P" * 12)
    assert run.where == ("progressing", 2)
    changed = model_canary(
        base=BASE, candidate={**BASE["spec"]["candidate"], "name": "fp8", "quantization": "fp8"}
    )
    state, actions = step(changed, run.state, None, T0 + 13 * MIN)
    assert actions[:2] == [SetWeights(0, False), Deploy("fp8")]
    assert events(actions) == ["Restarted"]
    assert (state.phase, state.spec_hash) == ("pending", spec_hash(changed))
    assert state.history[:-1] == run.state.history


def test_rolled_back_spec_is_not_retried_until_it_changes() -> None:
    run = Run(model_canary(base=BASE))
    run.tick(1, "B")
    for minute in range(2, 10):
        assert run.tick(minute) == []
    assert run.state.outcome == "rolled_back"
    changed = model_canary(base=BASE, steps=[{"weight": 100}])
    state, _ = step(changed, run.state, Observations(), T0 + 10 * MIN)
    assert state.phase == "pending"
    state, actions = step(changed, state, Observations(), T0 + 11 * MIN)
    assert events(actions) == ["StepStarted", "Promoted"]


@pytest.mark.parametrize(
    ("change", "same"),
    [
        pytest.param(
            {"alerts": [{"webhook": {"url": "https://example.org/h"}}]}, True, id="alerts"
        ),
        pytest.param({"prometheus": "http://127.0.0.1:9"}, True, id="prometheus-url"),
        pytest.param({"analysis": {**ANALYSIS, "interval": "2m"}}, False, id="interval"),
        pytest.param({"steps": [{"weight": 100}]}, False, id="steps"),
        pytest.param({"quality": {"sample": "5%", "tolerance": 0.1}}, False, id="quality"),
    ],
)
def test_spec_hash_covers_what_is_rolled_out(change: dict[str, Any], same: bool) -> None:
    assert (
        spec_hash(model_canary(base=BASE, **change)) == spec_hash(model_canary(base=BASE))
    ) is same
    assert spec_hash(model_canary(base=BASE)) == spec_hash(model_canary(base=BASE))


@pytest.mark.parametrize("implementation", [None, "envoy-gateway", "istio", "traefik"])
def test_the_gateway_implementation_is_not_in_the_spec_hash(implementation: str | None) -> None:
    """Naming (or changing) the Gateway's implementation changes where ``error-rate`` reads HTTP
    answers, not what is rolled out: no restart, and a spec written before the field existed
    keeps its hash (the pinned value, computed before ``implementation`` was added)."""
    gateway: dict[str, Any] = {"name": "gw", "namespace": "gateway-system"}
    if implementation is not None:
        gateway["implementation"] = implementation
    traffic = {"router": "gateway-api", "gateway": gateway}
    assert spec_hash(model_canary("c", "ml", traffic=traffic)) == "d285786e1af41e2d"
    moved = {"router": "gateway-api", "gateway": {**gateway, "name": "other-gw"}}
    assert spec_hash(model_canary("c", "ml", traffic=moved)) != "d285786e1af41e2d"


# --------------------------------------------------------------------------- timing and idempotence


def test_due_checks_once_per_interval() -> None:
    spec = model_canary(base=BASE)
    run = Run(spec)
    assert due_checks(spec, run.state, T0 + 30) == []
    assert not evaluation_due(spec, run.state, T0 + 59)
    assert [d.key for d in due_checks(spec, run.state, T0 + MIN)] == [
        "steps[0].rollbackOn[0]",
        "steps[0].rollbackOn[1]",
    ]
    assert next_evaluation(spec, run.state) == T0 + MIN
    run.tick(1)
    assert next_evaluation(spec, run.state) == T0 + 2 * MIN


def test_no_checks_in_pending_or_terminal_states() -> None:
    spec = model_canary(base=BASE)
    pending = initial_state(spec, T0)
    assert due_checks(spec, pending, T0) == []
    assert next_evaluation(spec, pending) == T0
    run = Run(spec)
    run.tick(1, "B")
    assert due_checks(spec, run.state, T0 + 100 * MIN) == []
    assert next_evaluation(spec, run.state) is None


def test_early_observations_are_ignored() -> None:
    run = _at_step_1_minute_3()
    state = run.state
    early = Observations(
        checks={"steps[0].rollbackOn[0]": result("steps[0].rollbackOn[0]", "latency", "B")}
    )
    again, actions = step(run.spec, state, early, T0 + 2.5 * MIN)
    assert (again, actions) == (state, [])


def test_repeating_a_call_repeats_nothing() -> None:
    run = Run(model_canary(base=BASE))
    run.ticks(1, "P" * 9)
    now = T0 + 10 * MIN
    obs = observe(run.spec, run.state, now)
    first, actions = step(run.spec, run.state, obs, now)
    second, again = step(run.spec, first, obs, now)
    assert events(actions) == ["Advanced"]
    assert (second, again) == (first, [])


def test_history_is_bounded() -> None:
    run = _at_step_1_minute_3()
    for i in range(HISTORY_LIMIT):
        run.tick(3, intents=[intent("pause", 3 + i / 1000), intent("resume", 3 + (i + 0.5) / 1000)])
    assert len(run.state.history) == HISTORY_LIMIT
    assert run.state.history[-1].type == "Resumed"


def test_shadow_streak_completed_after_the_deadline_fails() -> None:
    run = Run(model_canary(base=BASE, shadow=SHADOW))
    for minute in range(1, 30):
        run.tick(minute, {"shadow.promoteOn": "B" if minute >= 26 else "P"})
    run.tick(31, {"shadow.promoteOn": "B"})  # a late call: the deadline (30) came first
    assert run.where == ("rolled_back", 0)


def test_what_the_pairer_keeps_is_outside_the_spec_hash_and_the_tolerance_is_not() -> None:
    quality = {"sample": "5%", "tolerance": 0.1}
    plain = spec_hash(model_canary(base=BASE, quality=quality))
    assert spec_hash(model_canary(base=BASE, quality={**quality, "keepPrompts": True})) == plain
    assert spec_hash(model_canary(base=BASE, quality={**quality, "tolerance": 0.2})) != plain
