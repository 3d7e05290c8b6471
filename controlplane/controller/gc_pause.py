"""Pausing Python's cyclic garbage collector while an analysis tick runs.

A tick's answers (acyclic, freed by reference counting) set off full collections again and again:
at 3,000 canaries that was half of the tick's CPU (``bench/scale.py``). :func:`paused` holds the
collector for the tick; nested or concurrent pauses resume it when the last ends, and only if it
was enabled. Called by :meth:`controlplane.controller.batch.BatchEvaluator.evaluate`.
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
