"""DelayQueue: order by due time, the bound (refuse or drop the oldest), retries past the bound,
join, and closing with a deadline; one consumer thread against several producers."""

from __future__ import annotations

import threading

import pytest

from controlplane.delayqueue import DelayQueue


class Clock:
    """A clock that stands still until the test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_earliest_due_first_then_arrival_order() -> None:
    clock = Clock()
    q: DelayQueue[str] = DelayQueue(10, clock=clock)
    assert q.put("later", delay=0.2) is None
    assert q.put("first") is None
    assert q.put("second") is None
    assert q.get() == "first"
    q.task_done()
    assert q.get() == "second"
    q.task_done()
    got: list[str | None] = []
    getter = threading.Thread(target=lambda: got.append(q.get()))
    getter.start()
    getter.join(0.3)  # a wait: the clock stands still, so "later" cannot fall due
    assert got == []
    clock.now = 0.2
    getter.join(30)  # a wait: the queue's own timed wait re-reads the clock within 0.2 s
    assert got == ["later"]  # it waited for its time, the queue's clock's time
    assert len(q) == 1  # in flight until task_done
    q.task_done()
    assert len(q) == 0


def test_a_full_queue_refuses_the_new_item_or_drops_the_oldest() -> None:
    refusing: DelayQueue[str] = DelayQueue(2)
    assert refusing.put("a") is None
    assert refusing.put("b") is None
    assert refusing.put("c") == "c"
    assert refusing.drain() == ["a", "b"]
    dropping: DelayQueue[str] = DelayQueue(2, drop_oldest=True)
    dropping.put("a", delay=0.05)  # oldest by arrival, whatever its due time
    dropping.put("b")
    assert dropping.put("c") == "a"
    assert dropping.get() == "b"
    dropping.task_done()
    assert dropping.get() == "c"


def test_a_retry_goes_back_past_the_bound_and_join_sees_no_gap() -> None:
    q: DelayQueue[str] = DelayQueue(1)
    q.put("x")
    assert q.get() == "x"
    assert q.put("y") is None  # the queue is full again (x is in flight, not queued)
    q.task_done(retry_in=0.05)  # x again, past the bound
    assert len(q) == 2
    assert not q.join(timeout=0.01)
    assert q.get() == "y"
    q.task_done()
    assert q.get() == "x"  # after its delay
    q.task_done()
    assert q.join(timeout=0)


def test_close_admits_nothing_and_stops_at_the_deadline() -> None:
    clock = Clock()  # it stands still: neither the deadline nor "retry" ever comes
    q: DelayQueue[str] = DelayQueue(10, clock=clock)
    q.put("due")
    q.put("retry", delay=60.0)
    q.close(timeout=1.0)
    assert q.closed
    assert q.put("new") == "new"
    assert q.get() == "due"
    q.task_done(retry_in=0.0)  # no retry once closed
    # "retry" falls due after the deadline: get() says None at once, waiting for neither; one
    # that waited for either would never return, as the clock never gets there
    got: list[str | None] = []
    getter = threading.Thread(target=lambda: got.append(q.get()), daemon=True)
    getter.start()
    getter.join(30)  # a wait for the other thread, not a bound on it
    assert got == [None]
    assert q.drain() == ["retry"]
    assert q.join(timeout=0)


def test_close_without_a_timeout_hands_over_everything_queued() -> None:
    q: DelayQueue[int] = DelayQueue(10)
    for i in range(3):
        q.put(i, delay=0.02 * i)
    q.close()
    got = []
    while (item := q.get()) is not None:
        got.append(item)
        q.task_done()
    assert got == [0, 1, 2]


def test_a_past_deadline_ends_even_items_that_were_due() -> None:
    clock = Clock()
    q: DelayQueue[str] = DelayQueue(10, clock=clock)
    q.put("a")
    q.close(timeout=5.0)
    clock.now = 5.0
    assert q.get() is None
    assert q.drain() == ["a"]


def test_producers_and_one_consumer_each_item_exactly_once() -> None:
    q: DelayQueue[int] = DelayQueue(10_000)
    seen: list[int] = []

    def consume() -> None:
        while (item := q.get()) is not None:
            seen.append(item)
            q.task_done(retry_in=0.001 if item % 7 == 0 and seen.count(item) == 1 else None)

    worker = threading.Thread(target=consume)
    worker.start()
    producers = [
        threading.Thread(target=lambda k=k: [q.put(k * 100 + i) for i in range(100)])
        for k in range(4)
    ]
    for p in producers:
        p.start()
    for p in producers:
        p.join()
    assert q.join(timeout=10)
    q.close()
    worker.join(5)
    multiples = {i for i in range(400) if i % 7 == 0}
    assert sorted(seen) == sorted(list(range(400)) + sorted(multiples))


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        DelayQueue(0)
