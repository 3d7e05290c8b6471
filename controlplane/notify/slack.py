"""The Slack channel: an incoming-webhook message in Block Kit.

Owns :func:`slack_message`, the JSON body posted to the webhook URL of
``spec.alerts[].slack.webhookSecretRef``. Pure. What it shows: docs/alerts.md, "Slack".
"""

from __future__ import annotations

from typing import Any

from controlplane.notify.alert import Alert, rfc3339

HEADER_LIMIT = 150
TEXT_LIMIT = 2900
EMOJI = {
    "rollback": ":rotating_light:",
    "promotion": ":white_check_mark:",
    "pause": ":double_vertical_bar:",
    "throttle": ":money_with_wings:",
    "step": ":arrow_up:",
}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(f"*{label}*\n{value}", 2000)}


def _step_text(alert: Alert) -> str:
    if alert.step <= 0:
        return "shadow"
    text = f"{alert.step} of {alert.steps}"
    if alert.step_weight is not None:
        text += f" (step weight {alert.step_weight}%)"
    return text


def slack_message(alert: Alert, channel: str | None = None) -> dict[str, Any]:
    """The webhook body for ``alert``; ``channel`` overrides the webhook's default channel."""
    emoji = "" if alert.resolved else EMOJI.get(alert.kind, "")
    header = _clip(f"{emoji} {alert.title}: {alert.canary}".strip(), HEADER_LIMIT)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(alert.message, TEXT_LIMIT)}},
        {
            "type": "section",
            "fields": [
                _field("Canary", f"`{alert.canary}`"),
                _field("Step", _step_text(alert)),
                _field("Candidate weight", f"{alert.weight}%"),
                _field(
                    "Variants",
                    f"candidate `{alert.candidate_variant}`, stable `{alert.stable_variant}`",
                ),
            ],
        },
    ]
    breach = alert.breach
    if breach is not None:
        check = f" (`{breach.key}`)" if breach.key else ""
        fields = [
            _field("Metric", f"`{breach.metric}`{check}"),
            _field("Threshold", breach.threshold_text),
            _field(f"Candidate ({alert.candidate_variant})", breach.candidate_text),
            _field(f"Stable ({alert.stable_variant})", breach.stable_text),
        ]
        if breach.baseline:
            fields.append(_field("Drift vs stable", breach.value_text))
        elif breach.candidate is None:
            fields.append(_field("Compared value", breach.value_text))
        blocks.append({"type": "section", "fields": fields})
    if alert.dashboard_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open dashboard"},
                        "url": alert.dashboard_url,
                        "action_id": "open-dashboard",
                    }
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"{alert.event_type} at {rfc3339(alert.time)} · phase {alert.phase}"
                    f" · spec {alert.spec_hash} · id {alert.fingerprint}",
                }
            ],
        }
    )
    body: dict[str, Any] = {"text": _clip(alert.summary, TEXT_LIMIT), "blocks": blocks}
    if channel:
        body["channel"] = channel
    return body
