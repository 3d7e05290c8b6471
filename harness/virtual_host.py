"""A virtual host for an asyncio process: time moves only when every task waits.

Owns :class:`VirtualHost`, the ``monotonic`` / ``sleep`` pair a
:class:`~controlplane.local.engines.base.ModelClock` runs on, so that the simulated engine's
figures are its model's alone, never this machine's speed. Used by the engine calibration
(``bench/calibrate_engine.py``) and the model clock's tests (``tests/local/test_model_clock.py``,
which also make the host run the process late).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Any

SPINS = 50
"""Event-loop turns given to the tasks before the next wait ends: each runs until it waits."""


class VirtualHost:
    """Virtual seconds from 0. Each wait ends at its deadline, in deadline order, once every task
    that can run has run; with ``late`` > 0 the host runs the process that much after a deadline
    it was idle until (another job had the cores), and at once when the deadline passed while it
    ran. :meth:`run` is the host."""

    def __init__(self, late: float = 0.0) -> None:
        self.t = 0.0
        self.late = late
        self._waits: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        # a wait of a rounding error still lasts a microsecond, as a real sleep lasts a while
        heapq.heappush(self._waits, (self.t + max(seconds, 1e-6), next(self._order), future))
        await future

    async def run(self, until: asyncio.Future[Any]) -> None:
        """Wake the waits in deadline order until ``until`` is done."""
        while not until.done():
            for _ in range(SPINS):
                await asyncio.sleep(0)
            if not self._waits:
                continue
            deadline, _, future = heapq.heappop(self._waits)
            if deadline > self.t:  # the process was idle until then
                self.t = deadline + self.late
            future.set_result(None)
