"""Slack and signed-webhook deliveries to a real local HTTP receiver; Secrets; rendering."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pytest
from support.notify import (
    LATENCY_REASON,
    NAME,
    NS,
    T0,
    canary_obj,
    canary_of,
    events_of,
    plain_event,
    rollback,
    secret,
)

from controlplane.kube.client import Ref
from controlplane.notify import AlertNotifier, NotifySettings, build_alert, verify_signature
from controlplane.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from controlplane.rollout.state import Reason
from controlplane.spec.units import time_value
from harness.kube.fake import FakeKube
from harness.servers.receiver import Reply, receiving

FAST = NotifySettings(
    grafana_url="https://grafana.example.org/",
    backoff_base_s=0.05,
    backoff_max_s=0.2,
    timeout_s=2.0,
)


def _texts(blocks: list[dict[str, Any]]) -> str:
    """Every text of a Block Kit message, joined (to assert on content)."""
    out = []
    for block in blocks:
        if "text" in block:
            out.append(block["text"]["text"])
        for f in block.get("fields", []):
            out.append(f["text"])
        for e in block.get("elements", []):
            out.append(e.get("text", {}).get("text", "") if e["type"] == "button" else e["text"])
    return "\n".join(out)


def test_slack_rollback_message_carries_breach_both_variants_and_dashboard() -> None:
    kube = FakeKube()
    with receiving() as slack:
        secret(kube, "slack-hook", "url", f"{slack.url}/services/T000/B000/XXX\n")
        obj = canary_obj(
            [
                {
                    "slack": {
                        "webhookSecretRef": {"name": "slack-hook", "key": "url"},
                        "channel": "#ml-canaries",
                    }
                }
            ]
        )
        canary = canary_of(obj)
        notifier = AlertNotifier(kube, FAST)
        try:
            state, event = rollback(canary)
            notifier.notify(obj, canary, state, event)
            (request,) = slack.wait_for(1)
            assert notifier.flush(5)
        finally:
            notifier.close(2)
    assert request.path == "/services/T000/B000/XXX"
    body = json.loads(request.body)
    assert body["channel"] == "#ml-canaries"
    assert body["text"].startswith("Rolled back: ml-serving/support-triage at step 1")
    blocks = body["blocks"]
    assert blocks[0]["type"] == "header"
    assert "Rolled back: ml-serving/support-triage" in blocks[0]["text"]["text"]
    text = _texts(blocks)
    assert "`ml-serving/support-triage`" in text
    assert "*Step*\n1 of 4 (step weight 5%)" in text
    assert "*Candidate weight*\n0%" in text
    assert "*Metric*\n`latency` (`steps[0].rollbackOn[0]`)" in text
    assert "*Threshold*\n> 300.0ms over 5m" in text
    assert "*Candidate (nf4)*\n412.3ms" in text
    assert "*Stable (bf16)*\n291.7ms" in text
    (button,) = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert button["url"].startswith("https://grafana.example.org/d/modelcanary/modelcanary?")
    assert "var-namespace=ml-serving" in button["url"]
    assert "var-canary=support-triage" in button["url"]
    assert notifier.count("slack", "delivered") == 1


def test_baseline_drift_renders_drift_and_raw_values_in_metric_units() -> None:
    obj = canary_obj([])
    canary = canary_of(obj)
    reason = Reason(
        kind="breach",
        message="kpi drift",
        at=T0 + 900,
        step=2,
        key="steps[1].rollbackOn[0]",
        metric="kpi",
        value=0.071,
        candidate=0.642,
        stable=0.6,
        above=0.05,
        below=-0.05,
        window="4h",
    )
    state, event = rollback(canary, reason)
    alert = build_alert(obj, canary, state, event)
    assert alert is not None
    assert alert.breach is not None
    assert alert.breach.baseline
    assert alert.breach.threshold_text == "outside [-5%, 5%] vs stable over 4h"
    assert alert.breach.value_text == "+7.1%"
    assert alert.breach.candidate_text == "0.642"
    assert alert.breach.stable_text == "0.6"
    assert alert.step_weight == 25


def test_stable_value_absent_is_said_so() -> None:
    obj = canary_obj([])
    canary = canary_of(obj)
    state, event = rollback(canary, replace(LATENCY_REASON, stable=None))
    alert = build_alert(obj, canary, state, event)
    assert alert is not None
    assert alert.breach is not None
    assert alert.breach.stable_text == "not recorded"


def test_reason_of_a_later_event_is_not_attached_to_an_older_one() -> None:
    obj = canary_obj([])
    canary = canary_of(obj)
    state, _ = rollback(canary)
    older = plain_event(canary, "Paused", T0 + 100)[1]
    alert = build_alert(obj, canary, state, older)
    assert alert is not None
    assert alert.breach is None
    assert alert.reason_kind is None


def test_events_without_alert_kind_are_ignored() -> None:
    obj = canary_obj([])
    canary = canary_of(obj)
    for type_ in ("Breached", "Held", "Restarted"):
        state, event = plain_event(canary, type_, T0 + 5)
        assert build_alert(obj, canary, state, event) is None


def test_signed_webhook_verifies_and_tampering_fails() -> None:
    kube = FakeKube()
    key = b"s3cr3t-hmac-key"
    secret(kube, "hook-hmac", "key", key + b"\n")
    with receiving() as hook:
        obj = canary_obj(
            [
                {
                    "webhook": {
                        "url": f"{hook.url}/canary",
                        "hmacSecretRef": {"name": "hook-hmac", "key": "key"},
                    }
                }
            ]
        )
        canary = canary_of(obj)
        notifier = AlertNotifier(kube, FAST)
        try:
            state, event = rollback(canary)
            notifier.notify(obj, canary, state, event)
            (request,) = hook.wait_for(1)
        finally:
            notifier.close(2)
    now = time.time()
    assert request.headers["X-Canary-Event"] == "rollback"
    assert verify_signature(key, request.body, request.headers, now=now)
    payload = json.loads(request.body)
    assert payload["event"] == "rollback"
    assert payload["type"] == "RolledBack"
    assert payload["canary"] == {
        "namespace": NS,
        "name": NAME,
        "uid": "0f1e2d3c-uid",
        "specHash": payload["canary"]["specHash"],
    }
    assert payload["reason"]["metric"] == "latency"
    assert payload["reason"]["candidate"] == 0.4123
    assert payload["reason"]["stable"] == 0.2917
    assert payload["reason"]["above"] == 0.3
    assert request.headers["X-Canary-Delivery"] == payload["id"]
    tampered = request.body.replace(b'"latency"', b'"errors"')
    assert tampered != request.body
    assert not verify_signature(key, tampered, request.headers, now=now)
    assert not verify_signature(b"wrong-key", request.body, request.headers, now=now)
    # a replay outside the tolerance fails even with the original body and signature
    assert not verify_signature(key, request.body, request.headers, now=now + 3600)
    # and the timestamp is part of what is signed: moving it breaks the signature
    moved = dict(request.headers)
    moved[TIMESTAMP_HEADER] = str(int(moved[TIMESTAMP_HEADER]) + 1)
    assert not verify_signature(key, request.body, moved, now=now)


def test_signature_is_the_documented_construction() -> None:
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(b"k", body, 1_700_000_000) == f"sha256={expected}"
    headers = {SIGNATURE_HEADER.lower(): f"sha256={expected}", "x-canary-timestamp": "1700000000"}
    assert verify_signature(b"k", body, headers, now=1_700_000_100)
    assert not verify_signature(b"k", body, {"x-canary-timestamp": "x"}, now=1_700_000_000)


def test_unsigned_webhook_has_no_signature_header() -> None:
    with receiving() as hook:
        obj = canary_obj([{"webhook": {"url": hook.url}}])
        canary = canary_of(obj)
        notifier = AlertNotifier(None, FAST)
        try:
            notifier.notify(obj, canary, *rollback(canary))
            (request,) = hook.wait_for(1)
        finally:
            notifier.close(2)
    assert SIGNATURE_HEADER not in request.headers
    assert json.loads(request.body)["event"] == "rollback"


@pytest.mark.parametrize(
    ("secret_name", "key", "expected"),
    [
        ("absent", "url", "Secret ml-serving/absent not found (spec.alerts[0].slack)"),
        ("slack-hook", "other", "Secret ml-serving/slack-hook has no key 'other'"),
    ],
)
def test_missing_secret_fails_delivery_with_event_not_exception(
    secret_name: str, key: str, expected: str
) -> None:
    kube = FakeKube()
    with receiving() as slack:
        secret(kube, "slack-hook", "url", f"{slack.url}/hook")
        obj = canary_obj([{"slack": {"webhookSecretRef": {"name": secret_name, "key": key}}}])
        canary = canary_of(obj)
        notifier = AlertNotifier(kube, FAST)
        try:
            notifier.notify(obj, canary, *rollback(canary))  # must not raise
            assert notifier.flush(5)
        finally:
            notifier.close(2)
        assert slack.requests == []
    assert notifier.count("slack", "failed") == 1
    assert notifier.count("slack", "delivered") == 0
    (ev,) = events_of(kube, "AlertDeliveryFailed")
    assert ev["type"] == "Warning"
    assert expected in ev["message"]
    assert ev["involvedObject"]["name"] == NAME


def test_4xx_is_not_retried() -> None:
    with receiving([Reply(400, body=b"invalid_payload")]) as hook:
        obj = canary_obj([{"webhook": {"url": hook.url}}])
        canary = canary_of(obj)
        notifier = AlertNotifier(None, FAST)
        try:
            notifier.notify(obj, canary, *rollback(canary))
            assert notifier.flush(5)
        finally:
            notifier.close(2)
        assert len(hook.requests) == 1
    assert notifier.count("webhook", "failed") == 1


def test_only_subscribed_events_are_sent() -> None:
    with receiving() as hook:
        obj = canary_obj(
            [
                {"webhook": {"url": f"{hook.url}/default"}},
                {"webhook": {"url": f"{hook.url}/steps"}, "events": ["step", "promotion"]},
            ]
        )
        canary = canary_of(obj)
        notifier = AlertNotifier(None, FAST)
        try:
            notifier.notify(obj, canary, *plain_event(canary, "Advanced", T0 + 10, 2, 25))
            notifier.notify(obj, canary, *plain_event(canary, "Held", T0 + 20, 2, 25))
            notifier.notify(obj, canary, *rollback(canary))
            assert notifier.flush(5)
        finally:
            notifier.close(2)
        paths = sorted(r.path for r in hook.requests)
    assert paths == ["/default", "/steps"]
    kinds = {r.path: json.loads(r.body)["type"] for r in hook.requests}
    assert kinds == {"/default": "RolledBack", "/steps": "Advanced"}


def test_a_failed_delivery_is_in_the_status_warnings() -> None:
    """Issue #41: AlertDeliveryFailed showed only in ``kubectl get events``."""
    kube = FakeKube()
    obj = canary_obj([{"slack": {"webhookSecretRef": {"name": "absent", "key": "url"}}}])
    del obj["metadata"]["resourceVersion"]
    stored = kube.create(obj)
    canary = canary_of(stored)
    notifier = AlertNotifier(kube, FAST)
    later = replace(LATENCY_REASON, at=LATENCY_REASON.at + 60)
    try:
        notifier.notify(stored, canary, *rollback(canary))
        assert notifier.flush(5)
        notifier.notify(stored, canary, *rollback(canary, later))
        assert notifier.flush(5)
    finally:
        notifier.close(2)
    (warning,) = kube.get(Ref.of(stored))["status"]["warnings"]
    assert warning["type"] == "AlertDeliveryFailed"
    assert "Secret ml-serving/absent not found (spec.alerts[0].slack)" in warning["message"]
    assert warning["count"] == 2  # the same failure twice is one entry
    assert isinstance(warning["at"], str)  # RFC 3339, read back as unix seconds
    assert time_value(warning["at"]) > 0
