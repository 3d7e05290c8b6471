"""The sequential judge's decision rule: e-values and a closing p-value to breach, pass, continue.

Owns how a ``judge: sequential`` check decides at one look, on arrays of any shape: the anytime
test at level ``alpha (1 - finalLook)`` and the closing test at ``alpha finalLook`` (together at
most ``alpha``, by the union bound). The judges and ``bench/`` decide through this rule, never a
copy. See docs/judges.md, "What the sequential judge decides".
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import numpy.typing as npt

Decision = Literal["breach", "pass", "continue"]
Codes = npt.NDArray[np.int8]

BREACH: Final = 1
PASS: Final = -1
CONTINUE: Final = 0
_NAMES: Final[dict[int, Decision]] = {BREACH: "breach", PASS: "pass", CONTINUE: "continue"}

__all__ = [
    "BREACH",
    "CONTINUE",
    "PASS",
    "anytime_alpha",
    "closing_level",
    "closing_rejects",
    "decision_of",
    "decisions",
    "with_closing",
]


def anytime_alpha(alpha: float, final_look: float = 0.0) -> float:
    """The anytime test's level: ``alpha (1 - finalLook)`` (all of ``alpha`` without one)."""
    return alpha * (1.0 - final_look)


def closing_level(alpha: float, final_look: float) -> float:
    """The closing test's level: ``alpha finalLook`` (0: no closing test)."""
    return alpha * final_look


def decisions(
    log_breach: npt.ArrayLike, log_pass: npt.ArrayLike, level: float | npt.ArrayLike
) -> Codes:
    """The anytime test's decision codes at ``level``: :data:`BREACH` where the breach side's
    log e-value reaches ``log(1 / level)``, else :data:`PASS` where the pass side's does, else
    :data:`CONTINUE`. Broadcasts; ``-inf`` (a side not evaluated) never decides."""
    thr = np.log(1.0 / np.asarray(level, dtype=np.float64))
    up = np.asarray(log_breach, dtype=np.float64) >= thr
    down = np.asarray(log_pass, dtype=np.float64) >= thr
    out: Codes = np.where(up, BREACH, np.where(down, PASS, CONTINUE)).astype(np.int8)
    return out


def closing_rejects(
    p_value: npt.ArrayLike, alpha: float, final_look: float
) -> npt.NDArray[np.bool_]:
    """Does the closing test reject: ``p <= alpha finalLook`` (never without ``finalLook``)."""
    level = closing_level(alpha, final_look)
    out: npt.NDArray[np.bool_] = np.asarray(p_value, dtype=np.float64) <= level
    return out & (level > 0.0)


def with_closing(
    codes: npt.ArrayLike, p_value: npt.ArrayLike, alpha: float, final_look: float
) -> Codes:
    """The decision at the step's end: the anytime test's ``codes``, with :data:`BREACH` where
    the closing test rejects (it overrules continue and an early pass)."""
    out: Codes = np.where(
        closing_rejects(p_value, alpha, final_look), BREACH, np.asarray(codes)
    ).astype(np.int8)
    return out


def decision_of(code: int) -> Decision:
    """The name of one decision code."""
    return _NAMES[int(code)]
