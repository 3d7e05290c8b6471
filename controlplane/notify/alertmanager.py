"""The Alertmanager channel: alerts for ``POST /api/v2/alerts``.

Owns :func:`alertmanager_alerts` and :func:`alerts_url`. A pause or a throttle carries no
``step`` / ``metric`` labels because the resolving post must name the same alert. Pure. Labels,
annotations and timing: docs/alerts.md, "Alertmanager".
"""

from __future__ import annotations

from typing import Any

from controlplane.notify.alert import ALERT_NAMES, Alert, rfc3339

API_PATH = "/api/v2/alerts"
CONDITIONS = frozenset({"pause", "throttle"})


def alerts_url(base: str) -> str:
    """``base`` (Alertmanager's root URL, or already the alerts endpoint) + ``/api/v2/alerts``."""
    trimmed = base.rstrip("/")
    return trimmed if trimmed.endswith(API_PATH) else trimmed + API_PATH


def alertmanager_labels(alert: Alert) -> dict[str, str]:
    alertname, severity = ALERT_NAMES[alert.kind]
    labels = {
        "alertname": alertname,
        "severity": severity,
        "namespace": alert.namespace,
        "canary": alert.name,
    }
    if alert.kind not in CONDITIONS:
        labels["step"] = str(alert.step)
        if alert.breach is not None:
            labels["metric"] = alert.breach.metric
        if alert.reason_kind is not None:
            labels["reason"] = alert.reason_kind
    return labels


def alertmanager_alerts(
    alert: Alert,
    *,
    hold_s: float = 3600.0,
    open_s: float = 7 * 86400.0,
    generator_url: str | None = None,
) -> list[dict[str, Any]]:
    """The JSON array posted for ``alert`` (one element)."""
    description = alert.message
    breach = alert.breach
    if breach is not None:
        description += (
            f"\nmetric {breach.metric}: {breach.value_text} (threshold {breach.threshold_text});"
            f" candidate {alert.candidate_variant} {breach.candidate_text},"
            f" stable {alert.stable_variant} {breach.stable_text}"
        )
    annotations = {
        "summary": alert.summary,
        "description": description,
        "event": alert.event_type,
        "weight": str(alert.weight),
        "id": alert.fingerprint,
    }
    if alert.kind in CONDITIONS:
        annotations["step"] = str(alert.step)
        if breach is not None:
            annotations["metric"] = breach.metric
    if alert.dashboard_url:
        annotations["dashboard"] = alert.dashboard_url
    if alert.resolved:
        starts, ends = alert.time - 1.0, alert.time
    elif alert.kind in CONDITIONS:
        starts, ends = alert.time, alert.time + open_s
    else:
        starts, ends = alert.time, alert.time + hold_s
    item: dict[str, Any] = {
        "labels": alertmanager_labels(alert),
        "annotations": annotations,
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
    }
    url = generator_url or alert.dashboard_url
    if url:
        item["generatorURL"] = url
    return [item]
