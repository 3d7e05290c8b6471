"""Which rollbacks are reverted in git (rollout/writeback_rule.py): every reason kind, the
opt-in, the state still rolled back, the event type, and ``on_abort``."""

from __future__ import annotations

from dataclasses import replace
from typing import get_args

import pytest
from support.canaries import model_canary

from controlplane.rollout.state import Event, EventType, Reason, ReasonKind, RolloutState, Stage
from controlplane.rollout.writeback_rule import AUTOMATIC_REASONS, WriteBackOptions, writes_back

T0 = 1_800_000_000.0
OPTED_IN = model_canary(gitWriteBack={})
NOT_OPTED_IN = model_canary()
ROLLED = Event("RolledBack", T0 + 60, 1, 0, "rolled back")


def rolled_back(kind: ReasonKind) -> RolloutState:
    return RolloutState(
        spec_hash="h",
        stage="rolled_back",
        started_at=T0,
        stage_started_at=T0 + 60,
        reason=Reason(kind, f"{kind} happened", T0 + 60, 1),
    )


@pytest.mark.parametrize("kind", get_args(ReasonKind))
@pytest.mark.parametrize("on_abort", [False, True])
def test_each_reason_kind(kind: ReasonKind, on_abort: bool) -> None:
    expected = kind in ("breach", "shadow-expired", "not-ready", "not-routed") or (
        on_abort and kind == "aborted"
    )
    got = writes_back(OPTED_IN, rolled_back(kind), ROLLED, WriteBackOptions(on_abort=on_abort))
    assert got is expected


def test_the_automatic_reasons_are_the_controllers_own_decisions() -> None:
    assert frozenset({"breach", "shadow-expired", "not-ready", "not-routed"}) == AUTOMATIC_REASONS


def test_only_a_canary_that_opted_in() -> None:
    assert OPTED_IN.spec.git_write_back is not None
    assert NOT_OPTED_IN.spec.git_write_back is None
    assert not writes_back(NOT_OPTED_IN, rolled_back("breach"), ROLLED, WriteBackOptions(True))


@pytest.mark.parametrize(
    "event_type", ["Breached", "Paused", "Promoted", "Advanced", "Restarted", "GateFailed"]
)
def test_only_a_rollback_event(event_type: EventType) -> None:
    event = replace(ROLLED, type=event_type)
    assert not writes_back(OPTED_IN, rolled_back("breach"), event, WriteBackOptions())


@pytest.mark.parametrize("stage", ["pending", "shadow", "steps", "promoted"])
def test_not_when_the_rollout_moved_on_since(stage: Stage) -> None:
    """Retried or changed since the rollback: nothing to revert any more."""
    state = replace(rolled_back("breach"), stage=stage)
    assert not writes_back(OPTED_IN, state, ROLLED, WriteBackOptions(on_abort=True))


def test_not_without_a_recorded_reason() -> None:
    state = replace(rolled_back("breach"), reason=None)
    assert not writes_back(OPTED_IN, state, ROLLED, WriteBackOptions(on_abort=True))
