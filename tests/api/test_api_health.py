"""Liveness, readiness and the metrics endpoint of the API; the runner's readiness and wake-ups."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient
from support.api import NS, World, canary

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


def test_wake_interrupts_the_production_loop(tmp_path: Path) -> None:
    """A canary woken by the API is reconciled at once, though its next timer is an hour away
    and the loop would otherwise wait (up to 5 s) for a watch event."""
    world = World(START, tmp_path)
    world.create(canary())
    world.run_until(lambda: world.phase() == "progressing", limit_s=3600)
    world.controller.elector = None
    passes: list[float] = []
    run_once = world.controller.run_once

    def counting() -> float | None:
        passes.append(time.monotonic())
        return run_once()

    world.controller.run_once = counting  # type: ignore[method-assign]
    world.controller._dirty.clear()
    stop = threading.Event()
    loop = threading.Thread(target=world.controller.run, args=(stop,), daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 5
        while not world.controller.ready()[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the loop is now waiting
        before = len(passes)
        woken = time.monotonic()
        world.controller.wake(NS, "support-triage")
        while len(passes) == before and time.monotonic() < woken + 4:
            time.sleep(0.005)
        assert len(passes) > before
        assert passes[before] - woken < 1.0
    finally:
        stop.set()
        world.controller.wake(NS, "support-triage")  # ends the loop's wait at once
        world.kube.drop_watches()
        loop.join(10)
    assert not loop.is_alive()
