"""Alerts delivered to a real Alertmanager (``prometheus-alertmanager``) and read back through its
API: routing labels, annotations, timing, and the resolution of a pause by its Resumed event."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.notify import (
    NAME,
    NS,
    Alertmanager,
    canary_obj,
    canary_of,
    plain_event,
    rollback,
    start_alertmanager,
)

from controlplane.notify import AlertNotifier, NotifySettings
from controlplane.notify.alert import rfc3339

pytestmark = pytest.mark.binary


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    try:
        am = start_alertmanager(tmp_path_factory.mktemp("alertmanager"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield am
    finally:
        am.stop()


HANG_S = 60.0
"""Bounds a hang only: Alertmanager answers at once when nothing is wrong."""


def _alerts(am: Alertmanager, *filters: str, active: bool = True) -> list[dict[str, Any]]:
    query = "&".join(
        [f"filter={urllib.parse.quote(f)}" for f in filters]
        + [f"active={str(active).lower()}", f"inactive={str(not active).lower()}", "silenced=false"]
    )
    with urllib.request.urlopen(f"{am.url}/api/v2/alerts?{query}", timeout=5) as response:
        data: list[dict[str, Any]] = json.loads(response.read())
    return data


def _wait_alerts(am: Alertmanager, *filters: str, active: bool = True) -> list[dict[str, Any]]:
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        found = _alerts(am, *filters, active=active)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no alert matching {filters} in Alertmanager")


def test_rollback_alert_reaches_alertmanager_with_routing_labels(
    alertmanager: Alertmanager, tmp_path: Path
) -> None:
    obj = canary_obj([{"alertmanager": {"url": alertmanager.url}}], uid="am-uid-1")
    canary = canary_of(obj)
    state, event = rollback(canary)
    # the event happened a minute ago: the alert is active now and for the hold time
    now = time.time()
    assert state.reason is not None
    state = replace(state, reason=replace(state.reason, at=now - 60))
    event = replace(event, time=now - 60)
    notifier = AlertNotifier(None, NotifySettings(grafana_url="https://grafana.example.org"))
    try:
        notifier.notify(obj, canary, state, event)
        assert notifier.flush(HANG_S)
    finally:
        notifier.close(2)
    assert notifier.count("alertmanager", "delivered") == 1
    (alert,) = _wait_alerts(alertmanager, 'alertname="ModelCanaryRolledBack"', f'canary="{NAME}"')
    assert alert["labels"] == {
        "alertname": "ModelCanaryRolledBack",
        "severity": "critical",
        "namespace": NS,
        "canary": NAME,
        "step": "1",
        "metric": "latency",
        "reason": "breach",
    }
    ann = alert["annotations"]
    assert ann["summary"].startswith("Rolled back: ml-serving/support-triage at step 1 (latency")
    assert "candidate nf4 412.3ms, stable bf16 291.7ms" in ann["description"]
    assert ann["dashboard"].startswith("https://grafana.example.org/d/modelcanary/")
    assert alert["status"]["state"] == "active"
    assert alert["startsAt"].startswith(rfc3339(now - 60)[:19])
    assert alert["endsAt"].startswith(rfc3339(now - 60 + 3600)[:19])


def test_pause_is_resolved_by_resume(alertmanager: Alertmanager) -> None:
    obj = canary_obj(
        [{"alertmanager": {"url": alertmanager.url + "/api/v2/alerts"}, "events": ["pause"]}],
        uid="am-uid-2",
        name="paused-one",
    )
    canary = canary_of(obj)
    now = time.time()
    notifier = AlertNotifier(None)
    try:
        notifier.notify(obj, canary, *plain_event(canary, "Paused", now - 30, step=2, weight=25))
        assert notifier.flush(HANG_S)
        (alert,) = _wait_alerts(alertmanager, 'canary="paused-one"')
        assert alert["labels"] == {
            "alertname": "ModelCanaryPaused",
            "severity": "warning",
            "namespace": NS,
            "canary": "paused-one",
        }
        assert alert["annotations"]["step"] == "2"
        notifier.notify(obj, canary, *plain_event(canary, "Resumed", now - 1, step=2, weight=25))
        assert notifier.flush(HANG_S)
    finally:
        notifier.close(2)
    deadline = time.monotonic() + HANG_S
    while _alerts(alertmanager, 'canary="paused-one"') and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alerts(alertmanager, 'canary="paused-one"') == []
    assert notifier.count("alertmanager", "delivered") == 2


def test_alertmanager_rejecting_bad_alerts_is_a_failure_not_a_retry_loop(
    alertmanager: Alertmanager,
) -> None:
    """A wrong URL path answers 404 from the real server: failed once, no retries."""
    obj = canary_obj([{"alertmanager": {"url": alertmanager.url + "/nope/api/v2/alerts"}}])
    canary = canary_of(obj)
    notifier = AlertNotifier(None, NotifySettings(backoff_base_s=0.01))
    try:
        notifier.notify(obj, canary, *rollback(canary))
        assert notifier.flush(HANG_S)
    finally:
        notifier.close(2)
    assert notifier.count("alertmanager", "failed") == 1
