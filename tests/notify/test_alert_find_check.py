"""``notify.alert.find_check``: the check a state key names, read with the machine's decoder."""

from __future__ import annotations

from support.canaries import model_canary

from controlplane.notify.alert import find_check
from controlplane.spec import check_keys


def test_every_rollback_check_is_found_by_the_key_the_machine_writes() -> None:
    canary = model_canary()
    for s, step in enumerate(canary.spec.steps):
        for i, check in enumerate(step.rollback_on):
            assert find_check(canary, check_keys.step_check(s, i)) is check
    shadow = canary.spec.shadow
    assert shadow is not None
    assert shadow.rollback_on
    for i, check in enumerate(shadow.rollback_on):
        assert find_check(canary, check_keys.shadow_check(i)) is check


def test_keys_that_name_no_rollback_check_find_none() -> None:
    canary = model_canary()
    for key in (
        None,
        "",
        check_keys.PROMOTE_KEY,  # promotes, not a rollbackOn check
        check_keys.step_check(len(canary.spec.steps), 0),
        check_keys.step_check(0, 99),
        "steps[0].rollbackOn[x]",
        "steps[00].rollbackOn[0]",
    ):
        assert find_check(canary, key) is None, key
