"""The sequential judge's decision rule: e-values and a closing p-value to breach, pass, continue.

Owns how one ``judge: sequential`` check decides at one look, on arrays of any shape (one
check, a tick's checks, or a benchmark's runs and looks):

* the anytime test at level ``alpha (1 - finalLook)`` (:func:`anytime_alpha`): breach when the
  breach side's log e-value reaches ``log(1 / level)``, else pass when the pass side's does,
  else continue (:func:`decisions`; breach beats pass);
* the closing test at level ``alpha finalLook`` (:func:`closing_level`): at the step's end a
  fixed-horizon p-value at or below it is a breach, which overrules continue and an early pass
  (:func:`with_closing`). By the union bound the check rolls back a good candidate with
  probability at most ``alpha``.

Codes: :data:`BREACH` (+1), :data:`PASS` (-1), :data:`CONTINUE` (0); :func:`decision_of` names
one. Pure. Called by :mod:`controlplane.analysis.sequential.count_judges` and
:mod:`controlplane.analysis.sequential.latency_judges` (the decisions of one check or of a tick's
checks at once), :mod:`controlplane.analysis.sequential.eprocess` (``bernoulli_decisions``),
:mod:`controlplane.analysis.sequential.check` (the levels, the closing test) and by
``bench/blast_seeds.py`` / ``bench/blast_radius.py``, which decide thousands of runs at once
through this rule rather than a copy of it.
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
