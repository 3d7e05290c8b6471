"""Liveness, readiness and the metrics endpoint of the API; the runner's readiness and wake-ups."""

from __future__ import annotations

import collections
import queue
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.api import NS, World, canary
from support.realnode import until

from controlplane.controller import runner
from controlplane.kube.lease import LeaderElector

START = 1_800_000_000.0


def test_healthz_needs_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "detail": ""}


def test_readyz_waits_for_the_first_list(tmp_path: Path) -> None:
    world = World(START, tmp_path)
    world.create(canary())
    with TestClient(world.app()) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json() == {
            "status": "not ready",
            "detail": f"the watch of {NS} has not listed its canaries yet",
        }
        world.controller.sync(NS)
        answer = client.get("/readyz")
        assert answer.status_code == 200
        assert answer.json()["detail"] == "running without leader election"


def test_readyz_waits_for_leader_election(tmp_path: Path) -> None:
    world = World(START, tmp_path)
    elector = LeaderElector(world.kube, "canary-system", "lease", "me", 15.0, world.clock)
    world.controller.elector = elector
    world.controller._leader_known = False  # as built with an elector
    world.controller.sync(NS)
    ok, why = world.controller.ready()
    assert (ok, why) == (False, "leader election has not run yet")
    world.controller.run_once()
    assert world.controller.ready() == (True, "leading")


def test_metrics_endpoint_needs_no_token(client: TestClient) -> None:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "canary_controller_reconciles_total" in answer.text


class EndlessWait(queue.Queue[Any]):
    """The production loop's queue of watch events and wake-ups, with the loop's periodic pass
    taken out: a ``get`` with a timeout (the loop's wait for its next pass, at most 5 s) waits
    for an item however long that takes. ``waiting`` is set while a ``get`` waits; ``woken``
    when the loop takes an item the test's thread put (a wake-up), with ``passes_then`` the
    passes counted at that moment."""

    def __init__(self, passes: list[int]) -> None:
        super().__init__()
        self.passes = passes
        self.test_thread = threading.current_thread()
        self.waiting = threading.Event()
        self.woken = threading.Event()
        self.passes_then: int | None = None
        self._from_test: collections.deque[bool] = collections.deque()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not block:
            return super().get(block, timeout)
        self.waiting.set()
        try:
            return super().get(block, None)
        finally:
            self.waiting.clear()

    def _put(self, item: Any) -> None:
        super()._put(item)
        self._from_test.append(threading.current_thread() is self.test_thread)

    def _get(self) -> Any:
        if self._from_test.popleft() and not self.woken.is_set():
            self.passes_then = len(self.passes)
            self.woken.set()
        return super()._get()


def test_wake_interrupts_the_production_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A canary woken by the API is reconciled at once, though its next timer is an hour away
    and the loop would otherwise wait (up to 5 s) for a watch event.

    The loop's periodic pass is taken out (:class:`EndlessWait`), so nothing but an item in its
    queue ends its wait: the wake-up must put one there, the loop must take it and pass again.
    Waits are for those states, each bounded at 60 s only against a hang; a wake that did not
    interrupt the wait leaves the loop waiting for ever, and the test fails at that bound."""
    world = World(START, tmp_path)
    world.create(canary())
    world.run_until(lambda: world.phase() == "progressing", limit_s=3600)
    world.controller.elector = None
    passes: list[int] = []
    events = EndlessWait(passes)
    monkeypatch.setattr(runner, "queue", SimpleNamespace(Queue=lambda: events, Empty=queue.Empty))
    run_once = world.controller.run_once

    def counting() -> float | None:
        passes.append(len(passes))
        return run_once()

    world.controller.run_once = counting  # type: ignore[method-assign]
    world.controller.queue.dirty.clear()
    stop = threading.Event()
    loop = threading.Thread(target=world.controller.run, args=(stop,), daemon=True)
    loop.start()
    try:
        until(
            lambda: world.controller.ready()[0] and events.waiting.is_set(),
            "the loop waits",
            every=0.005,
        )
        world.controller.wake(NS, "support-triage")
        assert events.woken.wait(60), "the loop never took the wake-up"
        then = events.passes_then
        assert then is not None
        until(lambda: len(passes) > then, "a pass after the wake-up", every=0.005)
    finally:
        stop.set()
        world.controller.wake(NS, "support-triage")  # ends the loop's wait at once
        world.kube.drop_watches()
        loop.join(10)
    assert not loop.is_alive()
