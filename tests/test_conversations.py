"""The readings of :mod:`support.conversations` that the real-node sessions test relies on,
held on made-up turns: a conversation that moves toward the candidate once is right, any other
move is not; new conversations are counted at the weight in effect after it settled; the
binomial bound is two-sided."""

from __future__ import annotations

from support.conversations import (
    Turn,
    by_session,
    moved_wrongly,
    new_sessions,
    within_binomial,
)


def talk(
    key: str, variants: list[str | None], start: float = 0.0, sticky: bool = True
) -> list[Turn]:
    return [
        Turn(key, sticky, i, start + 2.0 * i, 200, variant) for i, variant in enumerate(variants)
    ]


def test_a_pinned_conversation_may_move_once_toward_the_candidate() -> None:
    assert not moved_wrongly(talk("a", ["s", "s", "c", "c"]), "s", "c")
    assert not moved_wrongly(talk("a", ["c", None, "c"]), "s", "c")
    assert moved_wrongly(talk("a", ["c", "s"]), "s", "c")
    assert moved_wrongly(talk("a", ["s", "c", "s", "c"]), "s", "c")
    assert moved_wrongly(talk("a", ["s", "x"]), "s", "c")


def test_new_conversations_count_at_the_weight_in_effect_once_settled() -> None:
    turns = [
        *talk("a", ["s", "s"], start=6.0),  # weight 0
        *talk("b", ["c"], start=16.0),  # weight 25, settled
        *talk("c", ["s"], start=17.0),
        *talk("d", ["c"], start=12.0),  # weight 25, within the settling time: left out
        *talk("e", ["c"], start=30.0, sticky=False),  # not pinned: left out
        *talk("f", [None], start=18.0),  # no answer: left out
    ]
    got = new_sessions(turns, [(0.0, 0), (10.0, 25)], "c", settle_s=5.0)
    assert got == {0: (1, 0), 25: (2, 1)}
    assert list(by_session(turns)["a"]) == talk("a", ["s", "s"], start=6.0)


def test_the_binomial_bound_is_two_sided() -> None:
    assert within_binomial(100, 25, 0.25)
    assert within_binomial(100, 39, 0.25)  # 3.2 standard deviations
    assert not within_binomial(100, 40, 0.25)
    assert not within_binomial(100, 10, 0.25)
