"""The rollout machine with gates, manual approval and no-op specs (pure: no I/O, no clock).

A three-step canary (10 % and 50 % for ten minutes each, then 100 %) evaluated every minute;
observations pass every due check unless a test says otherwise; gate results arrive as
``GateObservation`` the way the controller's poller hands them over.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from support.canaries import SMALL, canary_dict, model_canary

from controlplane.rollout.actions import Deploy, Promote, Rollback, RunGate, SetWeights
from controlplane.rollout.gate_runs import abandoned_runs, gates_at, pending_runs, workflow_name
from controlplane.rollout.intents import Intent
from controlplane.rollout.machine import step
from controlplane.rollout.observations import CheckResult, GateObservation, Observations
from controlplane.rollout.schedule import due_checks, initial_state, next_evaluation
from controlplane.rollout.state import RolloutState
from controlplane.rollout.tick import NOOP_MESSAGE
from controlplane.spec.models import ModelCanary
from controlplane.spec.units import status_time

T0 = 1_800_000_000.0
MIN = 60.0

BASE = canary_dict(
    base=SMALL,
    candidate={
        "name": "awq",
        "storageUri": "hf://org/m-awq",
        "gpu": "nvidia-l40s",
        "quantization": "awq",
    },
    analysis={
        "interval": "1m",
        "errorLimit": 3,
        "metrics": [{"name": "latency", "builtin": "e2e-latency"}],
    },
    steps=[
        {
            "weight": 10,
            "duration": "10m",
            "rollbackOn": [{"metric": "latency", "above": "200ms"}],
        },
        {
            "weight": 50,
            "duration": "10m",
            "rollbackOn": [{"metric": "latency", "above": "200ms"}],
        },
        {"weight": 100},
    ],
)
STEPS: list[dict[str, Any]] = BASE["spec"]["steps"]
# the first step waits for an approval (a promote intent) after its duration and checks
MANUAL = model_canary(base=BASE, steps=[{**STEPS[0], "approval": "manual"}, *STEPS[1:]])


def eval_gates(*gates: dict[str, Any]) -> list[dict[str, Any]]:
    """``spec.gates``: each runs WorkflowTemplate ``eval`` with a 30-minute timeout unless told."""
    return [{"workflowTemplate": {"name": "eval"}, "timeout": "30m", **g} for g in gates]


def checks(
    spec: ModelCanary, state: RolloutState, now: float, verdict: str = "pass"
) -> Observations:
    return Observations(
        {
            d.key: CheckResult(d.key, d.check.metric, verdict, value=0.1)  # type: ignore[arg-type]
            for d in due_checks(spec, state, now)
        }
    )


def gate(
    state: RolloutState, phase: str | None, message: str = "", error: str = ""
) -> Observations:
    """Every running gate run of ``state`` answers ``phase``."""
    return Observations(
        gates={
            key: GateObservation(key, run.workflow, phase, message=message, error=error)  # type: ignore[arg-type]
            for key, run in state.gates.items()
            if run.result == "running"
        }
    )


class Run:
    """Drives one rollout: every call is one controller visit at ``minutes`` after T0."""

    def __init__(self, spec: ModelCanary) -> None:
        self.spec = spec
        self.state = initial_state(spec, T0)
        self.actions: list[Any] = []

    def at(
        self,
        minutes: float,
        obs: Observations | None = None,
        intents: Sequence[Intent] = (),
        verdict: str = "pass",
    ) -> RolloutState:
        now = T0 + minutes * MIN
        if obs is None:
            obs = checks(self.spec, self.state, now, verdict)
            if self.state.stage == "pending":
                obs = Observations(candidate_ready=True)
        self.state, self.actions = step(self.spec, self.state, obs, now, intents)
        # a controller restarted at any point resumes from the status alone
        again = RolloutState.from_status(json.loads(json.dumps(self.state.to_status())))
        assert again == self.state
        return self.state

    def events(self) -> list[tuple[str, str]]:
        return [(e.type, e.message) for e in self.state.history]


def test_first_step_gate_holds_step_one_until_the_workflow_succeeds() -> None:
    run = Run(
        model_canary(base=BASE, gates=eval_gates({"name": "profile", "before": "first-step"}))
    )
    state = run.at(0)  # ready at once: step 1 is due, but gated
    assert (state.stage, state.gate_point, state.phase, state.weight) == (
        "pending",
        "step-1",
        "gated",
        0,
    )
    (gate_run,) = state.gates.values()
    assert gate_run.workflow == workflow_name(run.spec, state, "profile", "step-1")
    assert gate_run.workflow.startswith("demo-profile-step-1-")
    assert [a for a in run.actions if isinstance(a, RunGate)] == [
        RunGate("profile@step-1", "profile", gate_run.workflow, "ml")
    ]
    assert run.events()[-1][0] == "GateStarted"
    # absent phase (Pending), then Running: still waiting; minutes later nothing moves
    assert run.at(0.2, gate(state, "Pending")).gate_point == "step-1"
    assert run.at(0.4, gate(state, "Running")).phase == "gated"
    assert run.state.gates["profile@step-1"].phase == "Running"
    assert run.at(3).gate_point == "step-1"
    state = run.at(3.2, gate(run.state, "Succeeded"))
    assert (state.stage, state.step, state.weight, state.gate_point) == ("steps", 1, 10, None)
    assert state.stage_started_at == T0 + 3.2 * MIN  # the step's clock starts after the gate
    assert state.gates["profile@step-1"].result == "passed"
    assert [t for t, _ in run.events()][-2:] == ["GatePassed", "StepStarted"]
    assert "gates passed: profile" in run.events()[-1][1]


@pytest.mark.parametrize(
    ("phase", "message"),
    [("Failed", "score 0.71 < 0.9 on 40 prompts"), ("Error", "pod deleted")],
)
def test_failed_or_errored_workflow_rolls_back_with_its_name_and_message(
    phase: str, message: str
) -> None:
    run = Run(
        model_canary(
            base=BASE, gates=eval_gates({"name": "regression", "before": "step", "steps": [2]})
        )
    )
    run.at(0)
    for minute in range(1, 11):
        run.at(minute)
    state = run.state
    assert (state.step, state.weight, state.gate_point) == (1, 10, "step-2")  # 10 % held
    workflow = state.gates["regression@step-2"].workflow
    state = run.at(11, gate(state, phase, message))
    assert (state.stage, state.weight) == ("rolled_back", 0)
    assert state.reason is not None
    assert state.reason.kind == "gate-failed"
    assert state.reason.workflow == f"ml/{workflow}"
    assert state.reason.key == "regression@step-2"
    assert workflow in state.reason.message
    assert message in state.reason.message
    assert phase in state.reason.message
    assert any(isinstance(a, Rollback) for a in run.actions)
    assert [t for t, _ in run.events()][-2:] == ["GateFailed", "RolledBack"]


def test_the_workflows_outputs_are_kept_in_the_status() -> None:
    run = Run(
        model_canary(
            base=BASE, gates=eval_gates({"name": "regression", "before": "step", "steps": [2]})
        )
    )
    for minute in range(11):
        run.at(minute)
    key = "regression@step-2"
    workflow = run.state.gates[key].workflow
    running = {"score": "", "agreement": ""}
    seen = GateObservation(key, workflow, "Running", outputs=running)
    state = run.at(11, Observations(gates={key: seen}))
    assert state.gates[key].outputs == running
    assert run.at(11.5, Observations(gates={key: GateObservation(key, workflow, "Running")}))
    assert run.state.gates[key].outputs == running  # none seen this time: the last ones stay
    outputs = {"agreement": "0.1200", "reason": "agreement with stable 0.12 < 0.8 (2 prompts)"}
    seen = GateObservation(key, workflow, "Failed", outputs["reason"], outputs=outputs)
    state = run.at(12, Observations(gates={key: seen}))
    assert state.stage == "rolled_back"
    assert state.gates[key].outputs == outputs
    assert state.to_status()["gates"][key]["outputs"] == outputs
    assert state.reason is not None
    assert state.reason.message.endswith("Failed: agreement with stable 0.12 < 0.8 (2 prompts)")


def test_runs_left_running_by_a_failed_gate_are_abandoned_once_submitted() -> None:
    run = Run(
        model_canary(
            base=BASE,
            gates=eval_gates(
                {"name": "quick", "before": "step", "steps": [2]},
                {"name": "soak", "before": "step", "steps": [2]},
            ),
        )
    )
    for minute in range(11):
        run.at(minute)
    state = run.state
    names = {key: r.workflow for key, r in state.gates.items()}
    submitted = set(names.values())
    assert state.gate_point == "step-2"
    assert abandoned_runs(run.spec, state, submitted) == []  # the machine waits for both
    failed = Observations(
        gates={"quick@step-2": GateObservation("quick@step-2", names["quick@step-2"], "Failed")}
    )
    state = run.at(11, failed)
    assert state.stage == "rolled_back"
    (left,) = abandoned_runs(run.spec, state, submitted)
    assert (left.key, left.workflow, left.gate.name) == (
        "soak@step-2",
        names["soak@step-2"],
        "soak",
    )
    assert abandoned_runs(run.spec, state, set()) == []  # never submitted: nothing to stop
    assert abandoned_runs(run.spec, state, {names["quick@step-2"]}) == []  # Argo ended it


def test_a_workflow_that_never_finishes_times_out_from_its_submission() -> None:
    run = Run(
        model_canary(
            base=BASE,
            gates=eval_gates({"name": "profile", "before": "first-step", "timeout": "30m"}),
        )
    )
    state = run.at(0)
    assert next_evaluation(run.spec, state) == T0 + MIN  # the next readiness-cadence visit
    for minute in range(1, 30):
        state = run.at(minute, gate(state, "Running"))
        assert state.gate_point == "step-1", minute
    state = run.at(30, gate(state, "Running"))
    assert state.stage == "rolled_back"
    assert state.reason is not None
    assert state.reason.kind == "gate-failed"
    assert "did not succeed within its timeout 30m (last phase: Running)" in state.reason.message
    # The Workflow still runs: the controller must stop it.
    timed_out = state.gates["profile@step-1"]
    assert (timed_out.result, timed_out.phase) == ("failed", "Running")
    (left,) = abandoned_runs(run.spec, state, {timed_out.workflow})
    assert left.workflow == timed_out.workflow


def test_deadline_of_a_running_gate_wakes_the_controller() -> None:
    run = Run(
        model_canary(
            base=BASE,
            gates=eval_gates({"name": "profile", "before": "first-step", "timeout": "20s"}),
        )
    )
    state = run.at(0)
    assert next_evaluation(run.spec, state) == T0 + 20


def test_unreachable_argo_server_pauses_after_error_limit_and_resumes_on_its_answer() -> None:
    run = Run(
        model_canary(
            base=BASE,
            gates=eval_gates({"name": "profile", "before": "first-step", "timeout": "5m"}),
        )
    )
    state = run.at(0)
    for minute in (0.5, 1.0):
        state = run.at(minute, gate(state, None, error="connection refused"))
        assert (state.gate_errors, state.paused) == (int(minute * 2), None)
    state = run.at(1.5, gate(state, None, error="connection refused"))
    assert (state.paused, state.phase) == ("gate-errors", "paused")
    assert state.reason is not None
    assert state.reason.kind == "gate-errors"
    assert "3 consecutive gate polls without an answer: connection refused" in (
        state.reason.message
    )
    # an outage is never a failure: past the timeout while paused, nothing is decided
    state = run.at(9, gate(state, None, error="connection refused"))
    assert (state.stage, state.paused) == ("pending", "gate-errors")
    # the Argo Server answers: resume; the Workflow succeeded meanwhile
    state = run.at(10, gate(state, "Succeeded"))
    assert (state.paused, state.stage, state.step) == (None, "steps", 1)
    assert "Resumed" in [t for t, _ in run.events()]


def test_gate_points_of_each_kind() -> None:
    spec = model_canary(
        base=BASE,
        gates=eval_gates(
            {"name": "a", "before": "first-step"},
            {"name": "b", "before": "each-step"},
            {"name": "c", "before": "step", "steps": [2, 3]},
            {"name": "d", "before": "promotion"},
        ),
    )
    assert [g.name for g in gates_at(spec, "step-1")] == ["a", "b"]
    assert [g.name for g in gates_at(spec, "step-2")] == ["b", "c"]
    assert [g.name for g in gates_at(spec, "step-3")] == ["b", "c"]
    assert [g.name for g in gates_at(spec, "promotion")] == ["d"]


def test_every_gate_of_a_point_must_pass_and_promotion_waits_for_its_gate() -> None:
    run = Run(
        model_canary(
            base=BASE,
            gates=eval_gates(
                {"name": "quick", "before": "step", "steps": [3]},
                {"name": "slow", "before": "step", "steps": [3]},
                {"name": "final", "before": "promotion"},
            ),
        )
    )
    run.at(0)
    for minute in range(1, 21):
        run.at(minute)
    state = run.state
    assert (state.step, state.gate_point) == (2, "step-3")
    assert {r.gate.name for r in pending_runs(run.spec, state)} == {"quick", "slow"}
    only_quick = Observations(
        gates={
            "quick@step-3": GateObservation(
                "quick@step-3", state.gates["quick@step-3"].workflow, "Succeeded"
            )
        }
    )
    state = run.at(21, only_quick)
    assert (state.step, state.gate_point) == (2, "step-3")
    assert [r.gate.name for r in pending_runs(run.spec, state)] == ["slow"]
    state = run.at(22, gate(state, "Succeeded"))
    # step 3 (100 %, no duration) is done at once: now the promotion gate holds at 100 %
    assert (state.stage, state.step, state.weight, state.gate_point) == (
        "steps",
        3,
        100,
        "promotion",
    )
    assert not any(isinstance(a, Promote) for a in run.actions)
    state = run.at(23, gate(state, "Succeeded"))
    assert state.stage == "promoted"
    assert any(isinstance(a, Promote) for a in run.actions)


def test_manual_step_waits_for_promote_after_duration_and_checks() -> None:
    run = Run(MANUAL)
    run.at(0)
    for minute in range(1, 10):
        assert run.at(minute).phase == "progressing"
    state = run.at(10)
    assert (state.step, state.phase, state.awaiting_approval) == (1, "awaiting_approval", True)
    assert run.events()[-1] == (
        "AwaitingApproval",
        "step 1 is done and waits for approval: kubectl canary promote demo -n ml",
    )
    for minute in range(11, 60):
        state = run.at(minute)
    assert (state.step, state.phase) == (1, "awaiting_approval")
    assert [t for t, _ in run.events()].count("AwaitingApproval") == 1
    state = run.at(60.5, Observations(), [Intent("promote", T0 + 3600, "alice")])
    assert (state.step, state.weight, state.phase) == (2, 50, "progressing")
    assert run.events()[-1] == ("Advanced", "step 1 -> 2 at weight 50% (approved by alice)")


def test_a_breach_while_awaiting_approval_still_rolls_back() -> None:
    run = Run(MANUAL)
    run.at(0)
    for minute in range(1, 11):
        run.at(minute)
    assert run.state.awaiting_approval
    state = run.at(11, verdict="breach")
    assert state.stage == "rolled_back"
    assert not state.awaiting_approval


def test_promote_before_the_duration_finishes_a_manual_step_at_once() -> None:
    """As on any step: ``promote`` finishes it now (skipping the rest of its duration) — on a
    manual step that is also the approval."""
    run = Run(MANUAL)
    run.at(0)
    run.at(1)
    state = run.at(2.5, Observations(), [Intent("promote", T0 + 150, "bob")])
    assert (state.step, state.weight) == (2, 50)
    assert run.events()[-1][1] == "step 1 -> 2 at weight 50% (promoted by bob)"


def test_promote_does_not_skip_workflow_gates_but_promote_full_does() -> None:
    run = Run(
        model_canary(base=BASE, gates=eval_gates({"name": "eval", "before": "step", "steps": [2]}))
    )
    run.at(0)
    state = run.at(1.5, Observations(), [Intent("promote", T0 + 90, "carol")])
    assert (state.step, state.gate_point) == (1, "step-2")  # step 1 finished, gate started
    state = run.at(2, Observations(), [Intent("promote", T0 + 120, "carol")])
    assert (state.step, state.gate_point) == (1, "step-2")
    assert run.events()[-1] == (
        "Held",
        "promote refused: waiting for gate eval; promote --full skips gates",
    )
    state = run.at(3, Observations(), [Intent("promote-full", T0 + 180, "carol")])
    assert (state.stage, state.weight, state.gate_point) == ("promoted", 100, None)


def test_workflow_names_are_deterministic_per_rollout_and_new_after_retry() -> None:
    spec = model_canary(
        base=BASE,
        gates=eval_gates(
            {"name": "regression-suite-for-the-long-canary-name", "before": "first-step"}
        ),
    )
    run = Run(spec)
    state = run.at(0)
    (first,) = state.gates.values()
    assert len(first.workflow) <= 63
    assert workflow_name(spec, state, first.gate, "step-1") == first.workflow
    state = run.at(1, gate(state, "Failed", "bad"))
    assert state.stage == "rolled_back"
    state = run.at(2, Observations(candidate_ready=True), [Intent("retry", T0 + 120)])
    state = run.at(3)
    (second,) = state.gates.values()
    assert second.workflow != first.workflow


def test_spec_change_while_gated_restarts_without_the_old_gates() -> None:
    run = Run(
        model_canary(base=BASE, gates=eval_gates({"name": "profile", "before": "first-step"}))
    )
    run.at(0)
    run.spec = model_canary(
        base=BASE, candidate={**BASE["spec"]["candidate"], "storageUri": "hf://org/m-awq-v2"}
    )
    state = run.at(1, Observations(candidate_ready=True))
    assert (state.stage, state.gate_point, dict(state.gates)) == ("pending", None, {})
    assert run.events()[-1][0] == "Restarted"


# --------------------------------------------------------------------------- no-op rollouts


@pytest.mark.parametrize("same_name", [False, True])
def test_candidate_identical_to_stable_finishes_at_once_and_deploys_nothing(
    same_name: bool,
) -> None:
    stable = BASE["spec"]["stable"]
    spec = model_canary(base=BASE, candidate={**stable, "name": "bf16" if same_name else "b2"})
    assert spec.spec.candidate_is_stable()
    state, actions = step(spec, initial_state(spec, T0), None, T0)
    assert (state.stage, state.outcome, state.noop, state.weight) == (
        "promoted",
        "promoted",
        True,
        0,
    )
    assert not state.deployed
    assert not any(isinstance(a, Deploy | SetWeights | Promote) for a in actions)
    assert [(e.type, e.message) for e in state.history] == [("Promoted", NOOP_MESSAGE)]
    assert step(spec, state, None, T0 + 60) == (state, [])


def test_replica_count_is_part_of_the_variant_so_it_is_not_a_noop() -> None:
    stable = BASE["spec"]["stable"]
    spec = model_canary(base=BASE, candidate={**stable, "name": "b2", "replicas": 3})
    assert not spec.spec.candidate_is_stable()


def test_reverting_to_stable_mid_rollout_sends_traffic_back_and_finishes() -> None:
    run = Run(model_canary(base=BASE))
    run.at(0)
    run.at(1)
    assert run.state.weight == 10
    run.spec = model_canary(base=BASE, candidate={**BASE["spec"]["stable"], "name": "b2"})
    state = run.at(2, Observations())
    assert (state.stage, state.noop, state.weight) == ("promoted", True, 0)
    assert SetWeights(0, False) in run.actions
    assert not any(isinstance(a, Deploy) for a in run.actions)
    assert [t for t, _ in run.events()][-2:] == ["Restarted", "Promoted"]
    assert run.events()[-1][1] == NOOP_MESSAGE


# --------------------------------------------------------------------------- lastChecks


def test_status_lists_the_latest_check_values_with_bounds() -> None:
    run = Run(model_canary(base=BASE))
    run.at(0)
    state = run.at(1)
    assert state.to_status()["lastChecks"] == [
        {
            "key": "steps[0].rollbackOn[0]",
            "metric": "latency",
            "result": "pass",
            "value": 0.1,
            "candidate": None,
            "stable": None,
            "above": 0.2,
            "below": None,
            "at": status_time(T0 + MIN),
            "since": None,
            "message": "",
        }
    ]
