"""The scored pairs a pairer keeps for its reader (pure).

Called by :mod:`controlplane.pairing.pairer`, which adds each scored pair and answers ``GET
/pairs?after=SEQ`` with :meth:`Journal.page`. Pairs are numbered from 1 in the order they were
scored; the journal keeps the newest ``keep`` of them. A reader stores the ``epoch`` and the last
``seq`` it folded in and asks for what follows: a new epoch means the pairer restarted (its pairs
start again from 1), and ``lost`` counts the pairs that left the journal before they were read.
Neither biases a test of the pairs read, since which pairs are missed does not depend on their
scores.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any

from controlplane.analysis.quality import PairScore


@dataclass(frozen=True)
class Pair:
    """One scored pair: its number, when it was scored (Unix seconds), the variant that answered
    the user, its scores, and, kept only when the pairer was told to, the paired request and
    each variant's answer text (``kept``)."""

    seq: int
    at: float
    served_by: str
    score: PairScore
    kept: Mapping[str, Any] | None = None

    def to_json(self, kept: bool = False) -> dict[str, Any]:
        """The pair as a page holds it; with ``kept``, its text too (when there is any)."""
        found = {"seq": self.seq, "at": self.at, "servedBy": self.served_by, **asdict(self.score)}
        return found if self.kept is None or not kept else {**found, "kept": dict(self.kept)}


class Journal:
    """The newest ``keep`` scored pairs of one pairer process (its ``epoch``)."""

    def __init__(self, keep: int = 10_000, epoch: str | None = None) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.epoch = epoch or uuid.uuid4().hex[:16]
        self._pairs: deque[Pair] = deque(maxlen=keep)
        self.last = 0

    def add(
        self, at: float, served_by: str, score: PairScore, kept: Mapping[str, Any] | None = None
    ) -> Pair:
        self.last += 1
        pair = Pair(self.last, at, served_by, score, kept)
        self._pairs.append(pair)
        return pair

    def page(self, after: int, limit: int = 1000, kept: bool = False) -> dict[str, Any]:
        """The pairs numbered after ``after``, at most ``limit`` (the oldest first), with the
        epoch, ``after`` itself, the last number given out, and how many were dropped before
        ``after`` could read them; with ``kept``, each pair's text where it was kept (the
        judge reads none: a page of long prompts could be large)."""
        oldest = self._pairs[0].seq if self._pairs else self.last + 1
        start = max(after + 1, oldest)
        lost = max(0, oldest - (after + 1)) if after < self.last else 0
        chosen = islice((p for p in self._pairs if p.seq >= start), max(0, limit))
        pairs = [p.to_json(kept) for p in chosen]
        return {
            "epoch": self.epoch,
            "after": after,
            "last": self.last,
            "lost": lost,
            "pairs": pairs,
        }
