"""Pairs a pairer scored, recorded from it and replayed by ``canaryctl simulate --pairs FILE``.

Owns reading the pages a pairer answered (``GET /pairs?after=N``, one JSON document per line, as
``kubectl get --raw`` through the API server's Service proxy prints them; docs/judges.md,
"Replaying recorded pairs") into the pairs in the order they were scored, and answering as the
pairer would at a replayed time (:meth:`RecordedPairs.page`): the pairs scored by then that follow
the number asked, in one epoch of their own, renumbered from 1. Pairs of several pages or epochs
are told apart by their epoch and number, so overlapping pages count each pair once. A line that
is no page is a :class:`~controlplane.errors.UsageError` naming ``FILE:LINE``.

:func:`recorded_pairs` is pure; :func:`load_pairs` reads the file. Called by
:mod:`controlplane.simulation` and :mod:`controlplane.cli.simulate`.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.analysis.quality_judge import checked_page
from controlplane.errors import ProviderError, UsageError

EPOCH = "recorded"
"""The epoch of the replayed pages: one, whatever epochs the recording held."""
PAGE_LIMIT = 10_000
"""The most pairs one replayed page holds: what the controller asks a pairer for at each read
(``controller.pairs.PAGE``, the pairer's own limit), so a replay reads as fast as it does."""


@dataclass(frozen=True)
class RecordedPairs:
    """Recorded pairs in the order they were scored (each with its ``at``, Unix seconds)."""

    pairs: tuple[Mapping[str, Any], ...]
    times: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "times", tuple(float(p["at"]) for p in self.pairs))

    def page(self, after: int, now: float) -> dict[str, Any]:
        """What the pairer would have answered at ``now`` to ``GET /pairs?after=after``: the
        pairs scored by ``now`` numbered after ``after`` (at most :data:`PAGE_LIMIT`)."""
        scored = bisect_right(self.times, now)
        chosen = [
            {**pair, "seq": seq}
            for seq, pair in enumerate(
                self.pairs[after : min(scored, after + PAGE_LIMIT)], start=after + 1
            )
        ]
        return {"epoch": EPOCH, "after": after, "last": scored, "lost": 0, "pairs": chosen}


def _documents(lines: Iterable[str]) -> Iterable[tuple[int, Mapping[str, Any]]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{number}: not JSON: {exc}") from None
        if not isinstance(document, Mapping):
            raise UsageError(f"{number}: a line is a page of the pairer (a JSON object)")
        yield number, document


def recorded_pairs(lines: Iterable[str]) -> RecordedPairs:
    """The pairs of the pages in ``lines`` (one JSON page per line, blank lines skipped), each
    once, in the order they were scored (pure). A line that is no page raises
    :class:`UsageError` starting with its number."""
    found: dict[tuple[str, int], Mapping[str, Any]] = {}
    for number, page in _documents(lines):
        try:
            epoch, _, _, pairs = checked_page(page)
        except ProviderError as exc:
            raise UsageError(f"{number}: {exc}") from None
        for pair in pairs:
            at = pair.get("at")
            if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
                raise UsageError(f"{number}: pair {pair['seq']} has no time it was scored (at)")
            found[(epoch, int(pair["seq"]))] = pair
    ordered = sorted(found.items(), key=lambda item: (float(item[1]["at"]), item[0]))
    return RecordedPairs(tuple(pair for _, pair in ordered))


def load_pairs(path: str) -> RecordedPairs:
    """The recorded pairs in the file ``path``; an unreadable file or a bad line is a
    :class:`UsageError` (``FILE:LINE: ...``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the recorded pairs: {exc}") from None
    try:
        return recorded_pairs(text.splitlines())
    except UsageError as exc:
        raise UsageError(f"{path}:{exc}") from None
