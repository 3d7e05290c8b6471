"""The notifier inside the real controller loop: a canary whose candidate is slow (standard
history, day 2: candidate P50 400 ms) rolls back; the Slack receiver gets one message with the
breach for both variants; a restarted controller (new process, same cluster) pages no one again."""

from __future__ import annotations

import json

import pytest
from support.canaries import KPI_QUERY, canary_dict
from support.history import History
from support.notify import NS, secret
from support.scenario import DAY, HOUR

from controlplane.controller.reconcile import Reconciler, Settings
from controlplane.controller.runner import Controller
from controlplane.kube.client import canary_ref
from controlplane.notify import AlertNotifier, NotifySettings
from controlplane.notify.notifier import RESULTS, Result
from controlplane.profiles.catalog import load_catalog
from controlplane.providers.prometheus import from_url
from controlplane.providers.source import PrometheusSource
from controlplane.spec.endpoints import EndpointPolicy
from harness.kube.fake import FakeKube
from harness.kube.fake_kserve import FakeKServe
from harness.servers.receiver import receiving


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# The canary of these tests: 2 hours at 25 % checking P95 latency every 10 minutes over 30, then
# 100 %; no shadow, no budget; it alerts Slack.
BASE = canary_dict(
    namespace=NS,
    model={"name": "support-triage-llm", "maxModelLen": 8192},
    stable={"name": "bf16", "storageUri": "hf://m/x", "gpu": "nvidia-l40s"},
    traffic={"router": "gateway-api", "gateway": {"name": "gw"}},
    analysis={
        "interval": "10m",
        "window": "30m",
        "metrics": [
            {"name": "latency", "builtin": "e2e-latency", "quantile": 0.95},
            {"name": "kpi", "query": KPI_QUERY},
        ],
    },
    steps=[
        {"weight": 25, "duration": "2h", "rollbackOn": [{"metric": "latency", "above": "300ms"}]},
        {"weight": 100},
    ],
    alerts=[{"slack": {"webhookSecretRef": {"name": "slack-hook", "key": "url"}}}],
    shadow=None,
    budget=None,
)


def _only(result: Result) -> dict[Result, float]:
    """The deliveries counter of a notifier that made one attempt, with ``result``."""
    return {r: 1.0 if r == result else 0.0 for r in RESULTS}


def _controller(
    kube: FakeKube, clock: Clock, notifier: AlertNotifier, prometheus: str
) -> Controller:
    # the spec's Prometheus is allowed as an administrator would (--allow-prometheus)
    settings = Settings(progress_deadline_s=6 * HOUR, endpoints=EndpointPolicy((prometheus,)))
    reconciler = Reconciler(kube, load_catalog(), settings, notifier=notifier)
    return Controller(
        kube,
        reconciler,
        lambda url: PrometheusSource(from_url(url, timeout_s=30)),
        clock,
        namespaces=[NS],
    )


def _drive(kube: FakeKube, kserve: FakeKServe, ctrl: Controller, clock: Clock, end: float) -> None:
    while clock.t <= end:
        kserve.tick()
        ctrl.poll(0.0)
        wake = ctrl.run_once()
        stage = (kube.get(canary_ref(NS, "support-triage")).get("status") or {}).get("stage")
        if stage == "rolled_back":
            return
        wakes = [w for w in [wake, *kserve.pending().values()] if w is not None and w > clock.t]
        if not wakes:
            return
        clock.t = min(wakes)


@pytest.mark.binary
def test_controller_rollback_pages_slack_once_across_a_restart(history: History) -> None:
    clock = Clock(history.scenario.start + DAY + HOUR)
    kube = FakeKube(now=clock)
    kserve = FakeKServe(kube, now=clock, ready_after_s=600)
    # the history ends hours ago and this rollout happens a day before that: no age limit
    settings = NotifySettings(grafana_url="https://grafana.example.org", max_event_age_s=None)
    with receiving() as slack:
        secret(kube, "slack-hook", "url", f"{slack.url}/services/hook")
        kube.create(canary_dict(base=BASE, prometheus=history.url))
        notifier = AlertNotifier(kube, settings)
        try:
            ctrl = _controller(kube, clock, notifier, history.url)
            _drive(kube, kserve, ctrl, clock, clock.t + 6 * HOUR)
            status = kube.get(canary_ref(NS, "support-triage"))["status"]
            assert status["stage"] == "rolled_back"
            assert notifier.flush(60)
        finally:
            notifier.close(5)
        (message,) = slack.requests
        # a new controller process on the same cluster, with the bookkeeping of what was
        # emitted rolled back (as after a crash between the notification and the status write)
        obj = kube.get(canary_ref(NS, "support-triage"))
        obj["status"]["controller"]["notified"] = None
        kube.replace_status(obj)
        again = AlertNotifier(kube, settings)
        try:
            ctrl = _controller(kube, clock, again, history.url)
            ctrl.poll(0.0)
            ctrl.run_once()
            assert again.flush(60)
        finally:
            dropped = again.close(5)
        # Every delivery attempt is accounted for, so a duplicate cannot come late: ``flush``
        # returns once nothing is queued or in flight (a retry waiting for its backoff is
        # queued), a delivery is counted when its POST has been answered, and the receiver
        # records a request before it answers. The second notifier's one attempt is the
        # deduplication; a duplicate would be a ``delivered`` (or ``failed``) here and a second
        # request below. 60 s only bounds a hang.
        assert dropped == 0
        assert {r: notifier.count("slack", r) for r in RESULTS} == _only("delivered")
        assert {r: again.count("slack", r) for r in RESULTS} == _only("deduplicated")
        assert len(slack.requests) == 1
    body = json.loads(message.body)
    text = json.dumps(body["blocks"])
    assert body["text"].startswith("Rolled back: ml-serving/support-triage at step 1 (latency")
    reason = status["reason"]
    assert reason["metric"] == "latency"
    assert reason["candidate"] is not None
    assert "Candidate (nf4)" in text
    assert "Stable (bf16)" in text
    if reason.get("stable") is None:
        assert "not recorded" in text
    else:
        assert "not recorded" not in text
