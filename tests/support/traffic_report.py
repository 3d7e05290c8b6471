"""What a load of real requests through the gateway met, phase by phase of a canary (pure).

Owns the accounting of ``tests/routing/test_real_rollout.py`` and its benchmark
(``bench/real_rollout.py``): the phases of a rollout read from its status history
(:func:`phases`: pending, each step with its weight, after the promotion or rollback), the
answers of each phase by status code and by the variant that served them (:func:`tally`, the
variant from the engine's ``x-canary-variant`` header), whether a step's split matches its
weight (:func:`within_bounds`; the answers sent while the gateway was not yet, or no longer, seen
running the phase's split are kept apart: ``settling``, :func:`in_effect`), and for a faulty
candidate the seconds and the bad requests it served until it was rolled back
(:func:`until_rollback`). No I/O: the test gathers the answers, the status and its looks at the
gateway (:class:`Seen`); these functions only count.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controlplane.spec.units import time_value

STEPS = ("StepStarted", "Advanced")
"""The history events that start a step: the first, then each advance."""
ENDS = {"Promoted": "after promotion", "RolledBack": "after rollback"}
"""The history events that end a rollout, and the label of the phase they start."""
ENDS_SHARE = {"after promotion": 100, "after rollback": 0}
"""The candidate's share (%) of the phases after an end: the route names the winner alone."""
Z = 4.0
"""Four standard deviations: a correct split falls outside about once in 16,000 steps."""


@dataclass(frozen=True)
class Answer:
    """One request: when it was sent, how long its answer took, its status (an HTTP code, or the
    name of the exception when none came) and the variant that served it (None: unknown)."""

    sent: float
    seconds: float
    code: int | str
    variant: str | None = None

    @property
    def failed(self) -> bool:
        return self.code != 200


@dataclass(frozen=True)
class Seen:
    """One look at what the gateway runs for a canary's route: the look was asked at ``start``
    and answered by ``end`` (``time.time()``); ``share`` is the candidate's share (%) of the
    split it runs, None when it runs none or did not answer. What the gateway runs changes
    when its configuration does (the controller writes the status and the HTTPRoute one after
    the other; Traefik applies a new configuration at most every ``providersThrottleDuration``,
    2 s by default, and later on a busy host), so a test looks instead of allowing seconds."""

    start: float
    end: float
    share: int | None


@dataclass(frozen=True)
class Phase:
    """A span of the rollout: ``weight`` is the candidate's share in it (None after the end)."""

    label: str
    start: float
    end: float
    weight: int | None


@dataclass
class Tally:
    """What the answers of one phase were."""

    phase: Phase
    requests: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    variants: Counter[str] = field(default_factory=Counter)
    settling: Counter[str] = field(default_factory=Counter)
    """The variants of the answers sent while the phase's split was not in effect (:func:`tally`'s
    ``settle``): in ``requests`` and ``codes``, not in ``variants``, the split."""

    @property
    def failed(self) -> dict[str, int]:
        return {code: n for code, n in self.codes.items() if code != "200"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase.label,
            "weight": self.phase.weight,
            "seconds": round(self.phase.end - self.phase.start, 1),
            "requests": self.requests,
            "failed": self.failed,
            "variants": dict(self.variants),
            "settling": dict(self.settling),
        }


def phases(history: Sequence[Mapping[str, Any]], start: float, end: float) -> list[Phase]:
    """The phases from ``start`` (the load's first request) to ``end``: ``pending`` until the
    first step, each step, then the time after the promotion or rollback."""
    marks: list[tuple[str, float, int | None]] = [("pending", start, 0)]
    for event in history:
        kind, at = event["type"], time_value(event["time"])
        if kind in STEPS:
            marks.append((f"step {event['step']}", at, int(event["weight"])))
        elif kind in ENDS:
            marks.append((ENDS[kind], at, None))
    return [
        Phase(label, at, marks[i + 1][1] if i + 1 < len(marks) else end, weight)
        for i, (label, at, weight) in enumerate(marks)
    ]


Settle = float | Callable[[Phase], Sequence[tuple[float, float]]]
"""How :func:`tally` tells a phase's split from its settling: seconds after the phase's start,
or the spans in which its split was seen in effect (:func:`in_effect`)."""


def tally(answers: Sequence[Answer], spans: Sequence[Phase], settle: Settle = 0.0) -> list[Tally]:
    """Each phase's answers, by the time they were sent; in every phase but the first, the
    variants of those sent outside the spans ``settle(phase)`` gives (or, for a number, in the
    phase's first ``settle`` seconds) are ``settling``, not part of its split (every answer still
    counts in ``requests`` and ``codes``: a failure is never set aside)."""
    out = [Tally(p) for p in spans]
    effect = {t.phase: settle(t.phase) for t in out} if callable(settle) else {}
    for answer in answers:
        for i, t in enumerate(out):
            if t.phase.start <= answer.sent < t.phase.end:
                t.requests += 1
                t.codes[str(answer.code)] += 1
                if callable(settle):
                    inside = any(lo <= answer.sent < hi for lo, hi in effect[t.phase])
                    early = i > 0 and not inside
                else:
                    early = i > 0 and answer.sent < t.phase.start + settle
                (t.settling if early else t.variants)[answer.variant or "none"] += 1
                break
    return out


def share_of(phase: Phase) -> int | None:
    """The candidate's share (%) of ``phase``'s split: its weight, or the end's winner's."""
    return phase.weight if phase.weight is not None else ENDS_SHARE.get(phase.label)


def in_effect(seen: Sequence[Seen], phase: Phase) -> list[tuple[float, float]]:
    """The spans of ``phase`` in which the gateway surely ran its split, from ``seen`` (every
    look, in order): each run of looks that saw the phase's share, from the moment the first of
    them was answered to the moment the last of them was asked (the change to that share came
    before the one, the change away from it after the other), cut to the phase. A run of one
    look spans nothing: too short to be sure of."""
    want = share_of(phase)
    spans: list[tuple[float, float]] = []
    i = 0
    while i < len(seen):
        j = i
        while j + 1 < len(seen) and seen[j + 1].share == seen[i].share:
            j += 1
        if want is not None and seen[i].share == want:
            lo, hi = max(seen[i].end, phase.start), min(seen[j].start, phase.end)
            if lo < hi:
                spans.append((lo, hi))
        i = j + 1
    return spans


def first_seen(seen: Sequence[Seen], share: int | None, after: float) -> float | None:
    """When the gateway was first seen running ``share`` (None: no split) in a look asked
    after ``after``: the moment that look was answered; None if it never was. From then on
    (until it is seen running something else) a request sent meets that split."""
    return next((s.end for s in seen if s.start > after and s.share == share), None)


def within_bounds(candidate: int, total: int, weight: int, z: float = Z) -> bool:
    """Whether ``candidate`` of ``total`` requests is a split at ``weight`` % (binomial; at 0
    and 100 % exactly)."""
    p = weight / 100
    if weight in (0, 100):
        return candidate == round(total * p)
    spread = z * math.sqrt(total * p * (1 - p))
    return abs(candidate - total * p) <= spread + 1


def until_rollback(
    answers: Sequence[Answer],
    history: Sequence[Mapping[str, Any]],
    since: float,
    candidate: str,
    bad: Callable[[Answer], bool],
) -> dict[str, Any]:
    """For a candidate that was rolled back: seconds from ``since`` (its creation, or its first
    step) to the rollback, and how many of the requests it served until then were ``bad``."""
    end = next(time_value(e["time"]) for e in history if e["type"] == "RolledBack")
    served = [a for a in answers if since <= a.sent < end and a.variant == candidate]
    return {
        "seconds": round(end - since, 1),
        "candidate_requests": len(served),
        "bad_candidate_requests": sum(1 for a in served if bad(a)),
    }
