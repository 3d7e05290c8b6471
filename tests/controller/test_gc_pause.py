"""The analysis tick pauses the cyclic garbage collector and resumes it as it found it.

``gc_pause.paused`` (what ``BatchEvaluator.evaluate`` runs in): disabled inside, enabled after
when it was enabled before, left disabled when it was; nested and concurrent pauses resume it
when the last one ends; an exception still resumes it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Hashable, Iterator, Sequence

import pytest

from controlplane.controller import gc_pause
from controlplane.controller.batch import BatchEvaluator, Request
from controlplane.rollout.observations import Observations


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_paused_inside_resumed_after() -> None:
    gc.enable()
    with gc_pause.paused():
        assert not gc.isenabled()
        with gc_pause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause is still open
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    with gc_pause.paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_an_exception_resumes_it() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), gc_pause.paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_concurrent_pauses_resume_when_the_last_ends() -> None:
    gc.enable()
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with gc_pause.paused():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    with gc_pause.paused():
        thread.start()
        assert inside.wait(10)
    assert not gc.isenabled()  # the other thread's pause is still open
    release.set()
    thread.join(10)
    assert gc.isenabled()


class _Source:
    """A metric source with nothing to answer (the tick below asks nothing)."""

    def instant(self, query: str, at: float) -> float:
        raise AssertionError(query)

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        raise AssertionError(query)

    def vector(self, query: str, at: float) -> list[tuple[dict[str, str], float]]:
        raise AssertionError(query)


class _Recording(BatchEvaluator):
    """Records whether the collector was enabled while the tick ran."""

    seen: list[bool]

    def _evaluate(self, requests: Sequence[Request], now: float) -> dict[Hashable, Observations]:
        self.seen = [*getattr(self, "seen", []), gc.isenabled()]
        return {}


def test_the_tick_runs_paused() -> None:
    gc.enable()
    batch = _Recording(_Source())
    assert batch.evaluate([], 0.0) == {}
    assert batch.seen == [False]
    assert gc.isenabled()
