"""Every rollout event told exactly once per sink, through the controller as ``canaryctl
controller`` wires it: Kubernetes Events, alerts (a webhook receiver), metrics. The status write
that records the telling (``controller.notified``) conflicts once at every new history entry, and
a new controller process re-reconciles the same status; every sink is compared with the
canary's own history, so a sink that told an entry twice or skipped one fails."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any, get_args

from prometheus_client import CollectorRegistry
from support.canaries import ANALYSIS, canary_dict
from support.notify import NS, T0

from controlplane.cli import controller as cli
from controlplane.controller.event_sink import WARNING_EVENTS
from controlplane.controller.metrics import ControllerMetrics
from controlplane.controller.runner import Controller
from controlplane.errors import Conflict
from controlplane.kube.client import Obj, Ref, canary_ref
from controlplane.notify import EVENT_KINDS, AlertNotifier, NotifySettings
from controlplane.rollout import events
from controlplane.rollout.state import Event, EventType, RolloutState
from harness.kube.fake import FakeKube
from harness.kube.fake_kserve import FakeKServe
from harness.servers.receiver import Receiver, receiving

NAME = "support-triage"
HOUR = 3600.0
FAST = NotifySettings(backoff_base_s=0.1, backoff_max_s=0.5, timeout_s=2.0)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class ConflictingKube:
    """The fake cluster, where the status write that only moves ``controller.notified`` (the
    bookkeeping after the entries were told) conflicts once for every new cursor."""

    def __init__(self, inner: FakeKube) -> None:
        self.inner = inner
        self.conflicts = 0
        self._seen: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def replace_status(self, obj: Obj) -> Obj:
        before = (self.inner.peek(Ref.of(obj)) or {}).get("status") or {}
        after = obj.get("status") or {}
        cursor = (after.get("controller") or {}).get("notified")
        moved = cursor != (before.get("controller") or {}).get("notified")
        same_history = before.get("history") == after.get("history")
        if moved and same_history and isinstance(cursor, str) and cursor not in self._seen:
            self._seen.add(cursor)
            self.conflicts += 1
            raise Conflict("409 Conflict: injected before the bookkeeping write")
        return self.inner.replace_status(obj)


def _args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["controller", "--namespace", NS, "--tick", "0s", *extra])


class Process:
    """One controller process on the cluster: its own metrics, notifier and memory."""

    def __init__(self, kube: Any, clock: Clock, hook: Receiver) -> None:
        self.metrics = ControllerMetrics(CollectorRegistry())
        self.alerts = AlertNotifier(kube, FAST)
        self.controller: Controller = cli.build(
            _args("--allow-alert-url", hook.url),  # the spec's webhook, allowed by an admin
            kube,
            clock,
            metrics=self.metrics,
            notifiers=[self.alerts],
        )

    def sample(self, name: str) -> float:
        labels = {"namespace": NS, "canary": NAME}
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


# The canary of these tests: an hour at 10 %, two at 50 %, then 100 %, without checks, evaluated
# every 10 minutes; no shadow, no budget. Its alerts go to a test's webhook.
BASE = canary_dict(
    traffic={"router": "gateway-api", "gateway": {"name": "gw"}},
    analysis={**ANALYSIS, "interval": "10m", "window": "10m"},
    steps=[
        {"weight": 10, "duration": "1h"},
        {"weight": 50, "duration": "2h"},
        {"weight": 100},
    ],
    shadow=None,
    budget=None,
)
EVENTS = ["step", "promotion"]


def _drive(kube: FakeKube, kserve: FakeKServe, process: Process, clock: Clock) -> None:
    for _ in range(200):
        kserve.tick()
        process.controller.poll(0.0)
        wake = process.controller.run_once()
        status = kube.get(canary_ref(NS, NAME)).get("status") or {}
        told = (status.get("controller") or {}).get("notified")
        if status.get("phase") == "promoted" and told == _cursor(kube):
            return  # finished, and its last entries told (a conflict is redone next pass)
        wakes = [w for w in (wake, *kserve.pending().values()) if w is not None]
        assert wakes, "the rollout stopped before promotion"
        clock.t = max(clock.t, min(wakes))
    raise AssertionError("the rollout did not finish")


def _cursor(kube: FakeKube) -> str:
    obj = kube.get(canary_ref(NS, NAME))
    owner = events.owner_id(NS, NAME, obj["metadata"]["uid"])
    return events.fingerprint(owner, RolloutState.from_status(obj["status"]).history[-1])


def _kube_events(kube: FakeKube) -> Counter[tuple[str, str]]:
    """The Kubernetes Events of history entries (not the controller's own: Deployed, ...)."""
    told: Counter[tuple[str, str]] = Counter()
    for ev in kube.list("v1", "Event", NS):
        if ev["involvedObject"].get("name") == NAME and ev["reason"] in get_args(EventType):
            told[(ev["reason"], ev["message"])] += int(ev.get("count", 1))
    return told


def _history(kube: FakeKube) -> tuple[Event, ...]:
    return RolloutState.from_status(kube.get(canary_ref(NS, NAME))["status"]).history


def _alert_ids(hook: Receiver) -> Counter[str]:
    return Counter(json.loads(r.body)["id"] for r in hook.requests)


def _finish(process: Process) -> None:
    assert process.alerts.flush(10)
    process.alerts.close(5)


def test_each_event_is_told_once_per_sink_despite_conflicts_and_restarts() -> None:
    clock = Clock(T0)
    kube = FakeKube(now=clock)
    kserve = FakeKServe(kube, now=clock, ready_after_s=60)
    conflicting = ConflictingKube(kube)
    with receiving() as hook:
        kube.create(
            canary_dict(base=BASE, alerts=[{"webhook": {"url": hook.url}, "events": EVENTS}])
        )
        first = Process(conflicting, clock, hook)
        try:
            _drive(kube, kserve, first, clock)
        finally:
            _finish(first)
        history = _history(kube)
        types = [e.type for e in history]
        assert types == ["StepStarted", "Advanced", "Advanced", "Promoted"]
        # the bookkeeping write after each evaluation that added entries conflicted once and
        # was redone (the last evaluation added both Advanced and Promoted)
        assert conflicting.conflicts == 3
        assert first.controller.stats.conflicts == 3

        # Kubernetes Events: one per history entry, none twice
        expected = Counter((e.type, e.message) for e in history)
        assert _kube_events(kube) == expected
        assert not WARNING_EVENTS & set(types)
        # alerts: one per alertable entry and channel, none twice, none skipped
        uid = kube.get(canary_ref(NS, NAME))["metadata"]["uid"]
        owner = events.owner_id(NS, NAME, uid)
        alertable = [e for e in history if e.type in EVENT_KINDS]
        assert _alert_ids(hook) == Counter(events.fingerprint(owner, e) for e in alertable)
        assert first.alerts.count("webhook", "delivered") == len(alertable)
        # metrics: one promotion, one duration per completed step
        assert first.sample("canary_promotions_total") == 1.0
        assert first.sample("canary_step_duration_seconds_count") == 3.0

        # a new process re-reconciles the same status: nothing is told again
        second = Process(kube, clock, hook)
        try:
            for _ in range(3):
                second.controller.poll(0.0)
                second.controller.run_once()
        finally:
            _finish(second)
        assert _kube_events(kube) == expected
        assert _alert_ids(hook) == Counter(events.fingerprint(owner, e) for e in alertable)
        assert second.sample("canary_promotions_total") == 0.0
        assert second.sample("canary_step_duration_seconds_count") == 0.0
        assert second.alerts.count("webhook", "deduplicated") == 0


def test_a_crash_before_the_bookkeeping_write_emits_no_event_and_pages_no_one_twice() -> None:
    """A controller that dies after telling and before recording it: the next process tells the
    entries again, and finds each Kubernetes Event's name taken (it is derived from the entry's
    delivery key) and each alert in the ledger, so no Event is written twice and no one is
    paged twice."""
    clock = Clock(T0)
    kube = FakeKube(now=clock)
    kserve = FakeKServe(kube, now=clock, ready_after_s=60)
    with receiving() as hook:
        kube.create(
            canary_dict(base=BASE, alerts=[{"webhook": {"url": hook.url}, "events": EVENTS}])
        )
        first = Process(kube, clock, hook)
        try:
            _drive(kube, kserve, first, clock)
        finally:
            _finish(first)
        history = _history(kube)
        sent = _alert_ids(hook)
        obj = kube.get(canary_ref(NS, NAME))
        obj["status"]["controller"].pop("notified")
        kube.replace_status(obj)
        second = Process(kube, clock, hook)
        try:
            second.controller.poll(0.0)
            second.controller.run_once()
        finally:
            _finish(second)
        assert _alert_ids(hook) == sent
        alertable = [e for e in history if e.type in EVENT_KINDS]
        assert second.alerts.count("webhook", "deduplicated") == len(alertable)
        assert _kube_events(kube) == Counter({(e.type, e.message): 1 for e in history})
        assert kube.counts["event"] >= 2 * len(history)  # told again, written once
        cursor = kube.get(canary_ref(NS, NAME))["status"]["controller"]["notified"]
        owner = events.owner_id(NS, NAME, obj["metadata"]["uid"])
        assert cursor == events.fingerprint(owner, history[-1])
