"""Alerts on rollout events: Slack, signed JSON webhooks and Alertmanager (``spec.alerts``).

Its modules, one line each: docs/architecture.md, "Module map" (`notify/`).
"""

from controlplane.notify.alert import EVENT_KINDS, Alert, build_alert
from controlplane.notify.notifier import AlertNotifier, NotifySettings
from controlplane.notify.webhook import verify_signature

__all__ = [
    "EVENT_KINDS",
    "Alert",
    "AlertNotifier",
    "NotifySettings",
    "build_alert",
    "verify_signature",
]
