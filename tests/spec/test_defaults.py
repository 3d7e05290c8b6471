"""What an omitted ``capacity`` means, by the defaults a rollout began under
(:mod:`controlplane.spec.defaults`)."""

from __future__ import annotations

import pytest
from support.canaries import model_canary

from controlplane.rollout.schedule import initial_state
from controlplane.rollout.state import RolloutState
from controlplane.spec.defaults import DEFAULTS, as_begun


def test_a_rollout_begun_before_the_defaults_were_kept_keeps_fixed_replicas() -> None:
    canary = model_canary()
    assert canary.spec.plan is not None  # the default plan
    old = as_begun(canary, None)
    assert old.spec.plan is None
    assert old.spec.capacity is not None
    assert old.spec.capacity.mode == "fixed"
    assert as_begun(canary, 1).spec.plan is None


@pytest.mark.parametrize("defaults", [None, 1, DEFAULTS])
def test_a_capacity_the_spec_gives_is_kept_whatever_the_defaults(defaults: int | None) -> None:
    canary = model_canary(capacity={"maxGPUs": 8})
    assert as_begun(canary, defaults) is canary


def test_a_rollout_begins_under_the_current_defaults_and_keeps_them_in_its_status() -> None:
    state = initial_state(model_canary(), 0.0)
    assert state.defaults == DEFAULTS
    assert as_begun(model_canary(), state.defaults).spec.plan is not None
    status = state.to_status()
    assert status["defaults"] == DEFAULTS
    old = {k: v for k, v in status.items() if k != "defaults"}  # an older controller's
    assert RolloutState.from_status(old).defaults is None
