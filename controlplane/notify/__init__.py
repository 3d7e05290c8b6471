"""Alerts on rollout events: Slack, signed JSON webhooks and Alertmanager (``spec.alerts``).

Owns the controller's :class:`~controlplane.controller.reconcile.Notifier` implementation,
:class:`AlertNotifier` (bounded queue, one delivery thread, retries, deduplication, metrics), and
the pure renderings of an :class:`~controlplane.notify.alert.Alert` per channel. Kubernetes
Events are not sent from here: the reconciler already emits one per history entry. docs/alerts.md
describes the channels, the signature, and the retry and deduplication semantics.
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
