"""Issue 33: alert deliveries leak no secret. With logging at INFO, a Slack alert delivered
through the real notifier to a loopback HTTP receiver logs no line holding the webhook URL (a
secret read from the tenant's Secret: httpx logs every request's URL at INFO, so the product
keeps the HTTP client loggers at WARNING, :func:`quiet_http_loggers`); and a receiver that
refuses an alert has its status code and reason phrase in the ``AlertDeliveryFailed`` Event,
never its answer's body, and no credentials or query of a webhook URL are shown."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from support.notify import NS, canary_obj, canary_of, events_of, rollback, secret

from controlplane.notify import AlertNotifier, NotifySettings
from controlplane.providers.logsafety import HTTP_LOGGERS, quiet_http_loggers
from harness.kube.fake import FakeKube
from harness.servers.hostile_prometheus import SECRET, secret_page
from harness.servers.receiver import Reply, receiving

FAST = NotifySettings(backoff_base_s=0.05, backoff_max_s=0.1, timeout_s=2.0, max_attempts=2)
TOKEN = "T0001/B0002/XXXXwebhookTOKENxxxx"


@pytest.fixture
def http_loggers() -> Iterator[None]:
    """Put the HTTP client loggers' levels back as they were after the test."""
    before = {name: logging.getLogger(name).level for name in HTTP_LOGGERS}
    try:
        yield
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def deliver_slack_alert(caplog: pytest.LogCaptureFixture) -> tuple[str, list[str]]:
    """A rollback alert to a Slack webhook served on loopback, logging at INFO: the webhook URL
    and every log line."""
    kube = FakeKube()
    with receiving() as slack:
        webhook = f"{slack.url}/services/{TOKEN}"
        secret(kube, "slack-hook", "url", webhook)
        obj = canary_obj([{"slack": {"webhookSecretRef": {"name": "slack-hook", "key": "url"}}}])
        canary = canary_of(obj)
        notifier = AlertNotifier(kube, FAST)
        with caplog.at_level(logging.INFO):
            try:
                notifier.notify(obj, canary, *rollback(canary))
                assert notifier.flush(5)
            finally:
                notifier.close(2)
        assert [r.path for r in slack.requests] == [f"/services/{TOKEN}"]
    assert notifier.count("slack", "delivered") == 1
    return webhook, [r.getMessage() for r in caplog.records]


def test_a_slack_alert_logs_no_webhook_url(
    http_loggers: None, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_http_loggers()
    webhook, lines = deliver_slack_alert(caplog)
    assert any("slack alert RolledBack" in line for line in lines)  # INFO lines are captured
    assert not [line for line in lines if "webhookTOKEN" in line or webhook in line]
    assert all(logging.getLogger(name).level == logging.WARNING for name in HTTP_LOGGERS)


def test_httpx_logs_the_webhook_url_unless_quietened(
    http_loggers: None, caplog: pytest.LogCaptureFixture
) -> None:
    """What the test above guards against, so that it cannot pass for want of a log line."""
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    webhook, lines = deliver_slack_alert(caplog)
    assert [line for line in lines if webhook in line]


@pytest.mark.parametrize(
    ("script", "said"),
    [
        pytest.param([Reply(403, body=secret_page().encode())], "403 Forbidden", id="403"),
        pytest.param(
            [Reply(500, body=secret_page().encode())] * 2,
            "500 Internal Server Error; gave up after 2 attempts",
            id="500-retried",
        ),
    ],
)
def test_a_refusal_shows_the_status_never_the_body(script: list[Reply], said: str) -> None:
    kube = FakeKube()
    with receiving(script) as hook:
        url = hook.url.replace("http://", "http://alice:pw0rd@") + "/hook?token=q7ery"
        obj = canary_obj([{"webhook": {"url": url}}])
        canary = canary_of(obj)
        notifier = AlertNotifier(kube, FAST)
        try:
            notifier.notify(obj, canary, *rollback(canary))
            assert notifier.flush(5)
        finally:
            notifier.close(2)
        assert len(hook.requests) == len(script)
    (event,) = events_of(kube, "AlertDeliveryFailed", NS)
    message = event["message"]
    assert said in message
    assert f"{hook.url}/hook" in message
    for leak in (SECRET, "hunter2", "pw0rd", "alice", "q7ery"):
        assert leak not in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@hooks.example.com:8443/a/b?token=t#f", "https://hooks.example.com:8443/a/b"),
        ("http://[::1]:9093/api/v2/alerts", "http://[::1]:9093/api/v2/alerts"),
        ("http://host:notaport/x", "the URL"),
    ],
)
def test_shown_url_drops_credentials_query_and_fragment(url: str, shown: str) -> None:
    from controlplane.notify.notifier import shown_url

    assert shown_url(url) == shown
