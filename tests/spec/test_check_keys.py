"""Check keys (``steps[1].rollbackOn[0]``): one encoding, read back by its inverse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.spec.check_keys import (
    PROMOTE,
    PROMOTE_KEY,
    CheckKey,
    decode,
    encode,
    shadow_check,
    step_check,
)
from controlplane.spec.paths import format_path

positions = st.integers(min_value=0, max_value=10_000)
keys = st.one_of(
    st.just(PROMOTE),
    st.builds(CheckKey, st.just("shadow"), st.none(), positions),
    st.builds(CheckKey, st.just("steps"), positions, positions),
)


@given(keys)
def test_decode_inverts_encode(key: CheckKey) -> None:
    text = encode(key)
    assert decode(text) == key
    assert text == format_path(key.loc)


@given(st.text(max_size=40))
def test_decode_accepts_only_what_encode_writes(text: str) -> None:
    key = decode(text)
    assert key is None or encode(key) == text


def test_the_spelling_status_checks_use() -> None:
    assert step_check(1, 0) == "steps[1].rollbackOn[0]"
    assert shadow_check(2) == "shadow.rollbackOn[2]"
    assert PROMOTE_KEY == "shadow.promoteOn"
    assert decode("shadow.promoteOn") == PROMOTE
    assert PROMOTE.promote
    assert not CheckKey("shadow", None, 0).promote


@pytest.mark.parametrize(
    "text",
    [
        "",
        "steps[1]",
        "steps[1].rollbackOn",
        "steps[1].rollbackOn[0].above",
        "steps[01].rollbackOn[0]",
        "steps.rollbackOn[0]",
        "shadow.promoteOn[0]",
        "shadow.rollbackOn",
        "spec.steps[1].rollbackOn[0]",
        "steps[1].promoteOn",
        "steps[-1].rollbackOn[0]",
    ],
)
def test_what_is_not_a_check_key(text: str) -> None:
    assert decode(text) is None


@pytest.mark.parametrize(
    ("stage", "step", "index"),
    [("steps", None, 0), ("steps", 0, None), ("shadow", 0, 0), ("steps", -1, 0)],
)
def test_a_key_names_a_place_that_can_exist(
    stage: str, step: int | None, index: int | None
) -> None:
    with pytest.raises(ValueError, match="check key"):
        CheckKey(stage, step, index)  # type: ignore[arg-type]


def test_the_keys_of_a_stage_are_remembered() -> None:
    """The machine asks for the current stage's keys at every evaluation: the same string
    object comes back, never recomputed (issue 41's replay)."""
    from controlplane.spec.check_keys import shadow_check, step_check

    assert step_check(3, 1) is step_check(3, 1) == "steps[3].rollbackOn[1]"
    assert shadow_check(2) is shadow_check(2) == "shadow.rollbackOn[2]"
