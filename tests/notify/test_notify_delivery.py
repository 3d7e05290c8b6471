"""Delivery semantics against real local HTTP servers: retries with backoff, 429 Retry-After, a
stuck or absent receiver never stalls ``notify()``, the queue bound, deduplication (also across a
controller restart, through the ledger ConfigMap), clean shutdown, and the metrics."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from support.notify import NS, T0, canary_obj, canary_of, plain_event, rollback

from controlplane.delayqueue import DelayQueue
from controlplane.kube.client import Ref
from controlplane.notify import AlertNotifier, NotifySettings
from controlplane.notify.alert import rfc3339
from controlplane.notify.ledger import ledger_name
from harness.kube.fake import FakeKube
from harness.servers.receiver import Reply, receiving

FAST = NotifySettings(backoff_base_s=0.2, backoff_max_s=1.0, timeout_s=2.0, max_attempts=4)
HOLD_S = 30.0
"""How long :class:`HeldTransport` holds a response that the test never releases."""


class HeldTransport(httpx.BaseTransport):
    """Real HTTP whose outcome (response or error) reaches the notifier only once the test sets
    :attr:`release`: a receiver stuck for exactly as long as the test says. Should nobody
    release it within :data:`HOLD_S` (a ``notify`` waiting for the delivery it queued), it
    records :attr:`gave_up` and holds nothing more. :attr:`threads`: who made each attempt."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.gave_up = False
        self.threads: list[str] = []
        self._real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.threads.append(threading.current_thread().name)
        try:
            response = self._real.handle_request(request)
            response.read()
            return response
        finally:
            if not self.release.wait(HOLD_S):
                self.gave_up = True
                self.release.set()

    def close(self) -> None:
        self._real.close()


def _notify_rollback(notifier: AlertNotifier, url: str, uid: str = "uid-1") -> None:
    obj = canary_obj([{"webhook": {"url": url}}], uid=uid)
    canary = canary_of(obj)
    notifier.notify(obj, canary, *rollback(canary))


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delay of every retry the notifier's worker schedules, in order."""
    delays: list[float] = []
    task_done = DelayQueue.task_done

    def recorded(self: DelayQueue[Any], retry_in: float | None = None) -> None:
        if retry_in is not None:
            delays.append(retry_in)
        task_done(self, retry_in)

    monkeypatch.setattr(DelayQueue, "task_done", recorded)
    return delays


def test_retries_5xx_with_exponential_backoff_then_delivers(retries: list[float]) -> None:
    with receiving([Reply(500), Reply(503)]) as hook:
        notifier = AlertNotifier(None, FAST, rng=random.Random(7))
        try:
            _notify_rollback(notifier, hook.url)
            first, second, third = hook.wait_for(3)
            assert notifier.flush(5)
        finally:
            notifier.close(2)
    # attempt n waits base * 2**(n-1) times a jitter factor in [0.5, 1] drawn from the rng; the
    # queue (tests/test_delayqueue.py) holds each retry back until it is due
    draws = random.Random(7)
    assert retries == [0.2 * draws.uniform(0.5, 1.0), 0.4 * draws.uniform(0.5, 1.0)]
    assert first.body == second.body == third.body
    assert notifier.count("webhook", "delivered") == 1
    assert notifier.count("webhook", "failed") == 0


def test_gives_up_after_max_attempts() -> None:
    settings = NotifySettings(backoff_base_s=0.02, backoff_max_s=0.05, max_attempts=3)
    with receiving([Reply(500)] * 5) as hook:
        notifier = AlertNotifier(None, settings)
        try:
            _notify_rollback(notifier, hook.url)
            assert notifier.flush(5)
        finally:
            notifier.close(2)
        assert len(hook.requests) == 3
    assert notifier.count("webhook", "failed") == 1


def test_429_retry_after_is_honoured(retries: list[float]) -> None:
    with receiving([Reply(429, {"Retry-After": "1"})]) as hook:
        notifier = AlertNotifier(None, FAST)
        try:
            _notify_rollback(notifier, hook.url)
            assert len(hook.wait_for(2)) == 2  # the 429, then the retry it asked for
        finally:
            notifier.close(2)
    assert retries == [1.0]  # Retry-After, where the backoff alone would wait at most 0.2 s
    assert notifier.count("webhook", "delivered") == 1


def test_hanging_receiver_does_not_stall_notify_and_the_queue_stays_bounded() -> None:
    settings = NotifySettings(queue_size=5, timeout_s=3.0, max_attempts=1)
    held = HeldTransport()  # the receiver answers, the worker gets the answer when released
    with receiving() as hook:
        notifier = AlertNotifier(None, settings, transport=held)
        try:
            obj = canary_obj([{"webhook": {"url": hook.url}, "events": ["rollback", "pause"]}])
            canary = canary_of(obj)
            notifier.notify(obj, canary, *rollback(canary))
            hook.wait_for(1)  # the worker is now stuck in that request until released
            for i in range(40):
                state, event = plain_event(canary, "Paused", T0 + 1000 + i)
                notifier.notify(obj, canary, state, event)
                assert not held.gave_up  # it returned while the worker is still stuck
                assert notifier.queue_depth <= 5 + 1  # queued + the one in flight
            assert notifier.queue_depth == 6
            assert notifier.count("webhook", "dropped") == 40 - 5
            assert notifier.count("webhook", "delivered") == 0
            assert len(hook.requests) == 1
            assert held.threads == ["canary-alerts"]  # sent by the worker, not by notify
        finally:
            dropped = notifier.close(0.2)
            held.release.set()
    # what was still queued at shutdown is dropped (and counted), the worker having been stuck
    assert dropped == 5
    assert notifier.count("webhook", "dropped") == 40
    assert notifier.close(30) == 0  # closing again waits for the released worker to end
    assert notifier.count("webhook", "delivered") == 1  # the one that was stuck
    assert not held.gave_up


def test_refused_connection_is_retried_without_stalling_notify() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = NotifySettings(backoff_base_s=0.05, backoff_max_s=0.1, max_attempts=3)
    held = HeldTransport()  # each refused attempt is reported only when released
    notifier = AlertNotifier(None, settings, transport=held)
    try:
        _notify_rollback(notifier, f"http://127.0.0.1:{port}/hook")
        assert not held.gave_up  # it returned while the delivery is still held
        held.release.set()
        assert notifier.flush(5)
    finally:
        held.release.set()
        notifier.close(1)
    assert notifier.count("webhook", "failed") == 1
    assert held.threads == ["canary-alerts"] * 3  # every attempt made by the worker
    assert not held.gave_up


def test_same_event_twice_is_delivered_once_per_channel() -> None:
    with receiving() as hook:
        notifier = AlertNotifier(None, FAST)
        try:
            _notify_rollback(notifier, hook.url)
            _notify_rollback(notifier, hook.url)  # e.g. re-emitted after a status conflict
            assert notifier.flush(5)
            _notify_rollback(notifier, hook.url)  # and after delivery
            assert notifier.flush(5)
            # a different canary (uid) with the same event is a different alert
            _notify_rollback(notifier, hook.url, uid="uid-2")
            assert notifier.flush(5)
        finally:
            notifier.close(2)
        assert len(hook.requests) == 2
    assert notifier.count("webhook", "delivered") == 2
    assert notifier.count("webhook", "deduplicated") == 2


def test_restarted_controller_does_not_page_twice() -> None:
    kube = FakeKube()
    with receiving() as hook:
        first = AlertNotifier(kube, FAST)
        try:
            _notify_rollback(first, hook.url)
            assert first.flush(5)
        finally:
            first.close(2)
        ledger = kube.get(Ref("v1", "ConfigMap", NS, ledger_name("support-triage")))
        assert len(ledger["data"]) == 1
        assert ledger["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        # a new process: empty memory, the same history entry notified again
        second = AlertNotifier(kube, FAST)
        try:
            _notify_rollback(second, hook.url)
            assert second.flush(5)
        finally:
            second.close(2)
        assert len(hook.requests) == 1
    assert second.count("webhook", "deduplicated") == 1
    assert second.count("webhook", "delivered") == 0


def test_without_persisted_ledger_a_restart_sends_again() -> None:
    """The ledger is what prevents the second page above (the test can fail)."""
    kube = FakeKube()
    settings = NotifySettings(persist_dedup=False)
    with receiving() as hook:
        for _ in range(2):
            notifier = AlertNotifier(kube, settings)
            try:
                _notify_rollback(notifier, hook.url)
                assert notifier.flush(5)
            finally:
                notifier.close(2)
        assert len(hook.requests) == 2


def test_close_flushes_queued_deliveries() -> None:
    with receiving() as hook:
        notifier = AlertNotifier(None, FAST)
        obj = canary_obj([{"webhook": {"url": hook.url}, "events": ["pause"]}])
        canary = canary_of(obj)
        for i in range(5):
            notifier.notify(obj, canary, *plain_event(canary, "Paused", T0 + i))
        assert notifier.close(5) == 0
        assert len(hook.requests) == 5
        notifier.notify(obj, canary, *plain_event(canary, "Paused", T0 + 99))  # after close
        assert notifier.count("webhook", "dropped") == 1


def test_metrics_are_registered_on_the_given_registry() -> None:
    registry = CollectorRegistry()
    with receiving() as hook:
        notifier = AlertNotifier(None, FAST, registry=registry)
        try:
            _notify_rollback(notifier, hook.url)
            assert notifier.flush(5)
        finally:
            notifier.close(2)
    text = generate_latest(registry).decode()
    assert 'canary_controller_alert_deliveries_total{channel="webhook",result="delivered"} 1.0' in (
        text
    )
    assert "canary_controller_alert_queue_depth 0.0" in text
    # a private registry by default: two notifiers do not collide
    a, b = AlertNotifier(None), AlertNotifier(None)
    try:
        assert a.registry is not b.registry
    finally:
        a.close(1)
        b.close(1)


def test_events_older_than_the_age_limit_are_not_sent() -> None:
    """A controller that lost its bookkeeping replays the whole history: old events stay quiet."""
    with receiving() as hook:
        notifier = AlertNotifier(None, NotifySettings(max_event_age_s=3600.0))
        obj = canary_obj([{"webhook": {"url": hook.url}, "events": ["step"]}])
        canary = canary_of(obj)
        try:
            notifier.notify(obj, canary, *plain_event(canary, "Advanced", time.time() - 7200))
            recent = time.time() - 60
            notifier.notify(obj, canary, *plain_event(canary, "Advanced", recent))
            assert notifier.flush(5)
        finally:
            notifier.close(2)
        (request,) = hook.requests
    assert json.loads(request.body)["time"] == rfc3339(recent)
    assert notifier.count("webhook", "deduplicated") == 1
    assert notifier.count("webhook", "delivered") == 1
