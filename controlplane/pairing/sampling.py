"""Which requests the pairer pairs (pure: every answer is a function of its arguments and the
requests seen before).

Called by :mod:`controlplane.pairing.pairer` for each request it proxies. Three limits, checked
in order: at most one pair for each conversation (its session key: the first turn seen with a
key, paired or not, and no later one, since a conversation's turns predict each other and the
quality test bets on independent pairs; docs/judges.md, "Sessions"); a share of the requests
(``rate``, drawn by the caller); at most ``per_minute`` pairs in any 60 s. A request without a
key is independent of every other and is always eligible.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["paired", "repeat", "unsampled", "capped"]
"""Why a request was paired or not: ``repeat`` (its conversation had its turn), ``unsampled``
(outside the rate), ``capped`` (the minute's pairs were spent)."""

WINDOW_S = 60.0


@dataclass(frozen=True)
class Limits:
    """``rate``: the share of requests paired, in ``(0, 1]``; ``per_minute``: the most pairs in
    any 60 s (``None``: no cap); ``remember``: the most session keys kept (the oldest forgotten
    first, so a conversation idle for that many others may be paired again)."""

    rate: float = 1.0
    per_minute: int | None = None
    remember: int = 100_000

    def __post_init__(self) -> None:
        if not 0.0 < self.rate <= 1.0:
            raise ValueError(f"rate must be in (0, 1], not {self.rate}")
        if self.per_minute is not None and self.per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, not {self.per_minute}")
        if self.remember < 1:
            raise ValueError(f"remember must be at least 1, not {self.remember}")


class Sampler:
    """The decisions of one pairer: :meth:`take` for each request, in arrival order."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._sessions: OrderedDict[str, None] = OrderedDict()
        self._paired_at: deque[float] = deque()

    def take(self, now: float, session: str | None, draw: float) -> Outcome:
        """Whether the request arriving at ``now`` (seconds, any monotonic clock) with session
        key ``session`` is paired; ``draw`` is a uniform number in ``[0, 1)``, compared with the
        rate."""
        if session is not None:
            if session in self._sessions:
                self._sessions.move_to_end(session)
                return "repeat"
            self._sessions[session] = None
            if len(self._sessions) > self.limits.remember:
                self._sessions.popitem(last=False)
        if draw >= self.limits.rate:
            return "unsampled"
        while self._paired_at and self._paired_at[0] <= now - WINDOW_S:
            self._paired_at.popleft()
        cap = self.limits.per_minute
        if cap is not None and len(self._paired_at) >= cap:
            return "capped"
        self._paired_at.append(now)
        return "paired"
