"""What a load of real requests through the gateway met, phase by phase of a canary (pure).

Owns the accounting of ``tests/routing/test_real_rollout.py`` and its benchmark
(``bench/real_rollout.py``): the phases of a rollout read from its status history
(:func:`phases`: pending, each step with its weight, after the promotion or rollback), the
answers of each phase by status code and by the variant that served them (:func:`tally`, the
variant from the engine's ``x-canary-variant`` header), whether a step's split matches its
weight (:func:`within_bounds`; the first seconds of a phase, while the gateway is still
taking up the new weights, are kept apart: ``settling``), and for a faulty candidate the
seconds and the bad requests it served until it was rolled back (:func:`until_rollback`). No
I/O: the test gathers the answers and the status; these functions only count.
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
Z = 4.0
"""Four standard deviations: a correct split falls outside about once in 16,000 steps."""
SETTLE_S = 3.0
"""How long after a boundary in the status the gateway may still serve the old weights: the
controller writes the status and the HTTPRoute one after the other, and Traefik applies a new
configuration at most every ``providersThrottleDuration`` (2 s by default: Traefik v3.6.12,
``cmd/configuration.go``; used in ``pkg/provider/aggregator/aggregator.go``)."""


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
    """The variants of the answers sent in the phase's first seconds (:func:`tally`'s
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


def tally(answers: Sequence[Answer], spans: Sequence[Phase], settle: float = 0.0) -> list[Tally]:
    """Each phase's answers, by the time they were sent; the variants of those sent in the first
    ``settle`` seconds of every phase but the first are ``settling``, not part of its split
    (every answer still counts in ``requests`` and ``codes``: a failure is never set aside)."""
    out = [Tally(p) for p in spans]
    for answer in answers:
        for i, t in enumerate(out):
            if t.phase.start <= answer.sent < t.phase.end:
                t.requests += 1
                t.codes[str(answer.code)] += 1
                early = i > 0 and answer.sent < t.phase.start + settle
                (t.settling if early else t.variants)[answer.variant or "none"] += 1
                break
    return out


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
