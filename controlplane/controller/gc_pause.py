"""Pausing Python's cyclic garbage collector while an analysis tick runs.

Owns :func:`paused`. A tick reads hundreds of thousands of series (every answer is a list of
JSON objects, turned into counts per canary) that all live until the tick ends; each one
counts towards the collector's thresholds, so a tick set off full collections again and again,
each walking every object of the process (every canary's spec, the kept answers): at 3,000
canaries of the ``sequential-final`` fleet that was half of the tick's CPU (``bench/scale.py``).
What a tick allocates is freed by reference counting as it goes (the answers hold no cycles), so
the collector is paused for the tick and resumed after it, when it collects as usual.

Process-wide, as the collector is: nested or concurrent pauses (two evaluators on two threads)
resume it when the last one ends, and only if it was enabled before the first. Called by
:meth:`controlplane.controller.batch.BatchEvaluator.evaluate`.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Pauses:
    """How many pauses are open, and whether the collector was enabled before the first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = 0
        self.resume = False


_PAUSES = _Pauses()


@contextmanager
def paused() -> Iterator[None]:
    """The cyclic collector disabled for the ``with`` block (reference counting still frees
    what is no longer used); re-enabled when the last open pause ends, if it was enabled."""
    with _PAUSES.lock:
        if _PAUSES.open == 0:
            _PAUSES.resume = gc.isenabled()
            gc.disable()
        _PAUSES.open += 1
    try:
        yield
    finally:
        with _PAUSES.lock:
            _PAUSES.open -= 1
            if _PAUSES.open == 0 and _PAUSES.resume:
                gc.enable()
