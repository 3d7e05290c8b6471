"""``controlplane.pairing.sampling``: which requests become pairs."""

from __future__ import annotations

import pytest

from controlplane.pairing.sampling import Limits, Sampler


def test_every_request_is_paired_by_default() -> None:
    sampler = Sampler(Limits())
    assert [sampler.take(float(t), None, 0.999) for t in range(100)] == ["paired"] * 100


def test_the_rate_is_the_share_of_draws_below_it() -> None:
    sampler = Sampler(Limits(rate=0.25))
    draws = [i / 100 for i in range(100)]
    outcomes = [sampler.take(0.0, None, d) for d in draws]
    assert outcomes.count("paired") == 25
    assert all(o == "paired" for o, d in zip(outcomes, draws, strict=True) if d < 0.25)


def test_the_cap_holds_in_any_sixty_seconds() -> None:
    sampler = Sampler(Limits(per_minute=3))
    times = [0.0, 1.0, 2.0, 3.0, 59.9, 60.0, 60.5, 61.0, 62.0, 62.5]
    got = [sampler.take(t, None, 0.0) for t in times]
    assert got == [
        "paired", "paired", "paired", "capped", "capped",  # 0, 1, 2 paired in [0, 60)
        "paired", "capped", "paired", "paired", "capped",  # 0 leaves at 60, 1 at 61, 2 at 62
    ]  # fmt: skip
    paired = [t for t, o in zip(times, got, strict=True) if o == "paired"]
    assert all(sum(1 for u in paired if t - 60 < u <= t) <= 3 for t in times)


def test_a_conversation_gives_its_first_turn_only_paired_or_not() -> None:
    sampler = Sampler(Limits(rate=0.5))
    assert sampler.take(0.0, "a", 0.9) == "unsampled"  # a's first turn: outside the rate
    assert sampler.take(1.0, "a", 0.0) == "repeat"  # and no later turn of a is paired
    assert sampler.take(2.0, "b", 0.0) == "paired"
    assert sampler.take(3.0, "b", 0.0) == "repeat"
    assert sampler.take(4.0, None, 0.0) == "paired"  # no key: an independent request


def test_the_oldest_conversations_are_forgotten_beyond_remember() -> None:
    sampler = Sampler(Limits(remember=2))
    assert [sampler.take(0.0, k, 0.0) for k in "abc"] == ["paired"] * 3
    assert sampler.take(1.0, "c", 0.0) == "repeat"
    assert sampler.take(1.0, "b", 0.0) == "repeat"  # b is now the newest, c the oldest kept
    assert sampler.take(1.0, "a", 0.0) == "paired"  # a was forgotten; c is dropped for it
    assert sampler.take(1.0, "c", 0.0) == "paired"


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"rate": 0.0}, "rate must be in (0, 1]"),
        ({"rate": 1.5}, "rate must be in (0, 1]"),
        ({"per_minute": 0}, "per_minute must be at least 1"),
        ({"remember": 0}, "remember must be at least 1"),
    ],
)
def test_limits_out_of_range_are_refused(limits: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("]", r"\]")):
        Limits(**limits)  # type: ignore[arg-type]
