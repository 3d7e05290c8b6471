"""Check keys: the name of one check of a ModelCanary, as ``status.checks`` spells it.

Owns the one encoding (:func:`encode`: ``steps[1].rollbackOn[0]``, ``shadow.promoteOn``) and its
reading (:func:`decode`) of where a check sits in a spec; written by the rollout machine and the
queries, read by ``kubectl canary status``. In spec/ because a key names a place in the spec. Pure.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from controlplane.spec.paths import Loc, format_path, parse_path

CheckStage = Literal["shadow", "steps"]


@dataclass(frozen=True)
class CheckKey:
    """A check's place: ``stage`` ``steps`` with the 0-based ``step`` and the position ``index``
    in its ``rollbackOn``; or ``shadow`` with ``index`` in ``rollbackOn``, or no ``index`` for
    ``promoteOn``. Build one with :func:`step_check`, :func:`shadow_check` or :data:`PROMOTE`."""

    stage: CheckStage
    step: int | None = None
    index: int | None = None

    def __post_init__(self) -> None:
        if self.stage == "steps" and (self.step is None or self.index is None):
            raise ValueError("a step's check key needs its step and its index")
        if self.stage == "shadow" and self.step is not None:
            raise ValueError("a shadow check key has no step")
        if any(n is not None and n < 0 for n in (self.step, self.index)):
            raise ValueError("check key positions are >= 0")

    @property
    def promote(self) -> bool:
        """True for ``shadow.promoteOn``, the one check that promotes rather than rolls back."""
        return self.stage == "shadow" and self.index is None

    @property
    def loc(self) -> Loc:
        """The field path below ``spec``: ``("steps", 1, "rollbackOn", 0)``."""
        if self.step is not None and self.index is not None:  # stage "steps" (__post_init__)
            return ("steps", self.step, "rollbackOn", self.index)
        if self.index is None:
            return ("shadow", "promoteOn")
        return ("shadow", "rollbackOn", self.index)


PROMOTE = CheckKey("shadow")


def encode(key: CheckKey) -> str:
    """``CheckKey("steps", 1, 0)`` -> ``steps[1].rollbackOn[0]``."""
    return format_path(key.loc)


def decode(text: str) -> CheckKey | None:
    """Inverse of :func:`encode`; None for anything :func:`encode` does not write."""
    match parse_path(text):
        case ("steps", int(step), "rollbackOn", int(index)):
            key = CheckKey("steps", step, index)
        case ("shadow", "promoteOn"):
            key = PROMOTE
        case ("shadow", "rollbackOn", int(index)):
            key = CheckKey("shadow", None, index)
        case _:
            return None
    return key if encode(key) == text else None


def where(text: str) -> str:
    """Where the check of key ``text`` runs, in words for people: ``step 2`` (1-based),
    ``shadow``; ``text`` itself for a key :func:`decode` does not read."""
    key = decode(text)
    if key is None:
        return text
    return "shadow" if key.stage == "shadow" else f"step {(key.step or 0) + 1}"


@functools.lru_cache(maxsize=1024)
def step_check(step: int, index: int) -> str:
    """The key of check ``index`` of ``rollbackOn`` in step ``step`` (0-based). Cached: the
    rollout machine asks for the current stage's keys at every evaluation (a four-week replay:
    160,000 times), and the answer depends on the two numbers only."""
    return encode(CheckKey("steps", step, index))


@functools.lru_cache(maxsize=1024)
def shadow_check(index: int) -> str:
    """The key of check ``index`` of the shadow phase's ``rollbackOn`` (cached, as
    :func:`step_check`)."""
    return encode(CheckKey("shadow", None, index))


PROMOTE_KEY = encode(PROMOTE)
"""``shadow.promoteOn``."""
