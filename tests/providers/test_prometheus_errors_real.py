"""Prometheus' own error answer, from a real Prometheus: what a message keeps of it.

``providers/prometheus.py`` keeps ``errorType`` and ``error`` of Prometheus' error JSON (the
``Response`` of ``web/api/v1/api.go``) and nothing else of a body; the canned answers of
``harness.servers.hostile_prometheus`` follow that shape, and this holds the shape to the real
server.
"""

from __future__ import annotations

import pytest
from support.history import History

from controlplane.errors import ProviderQueryError
from controlplane.providers.prometheus import PrometheusProvider, from_url

pytestmark = pytest.mark.binary


@pytest.mark.parametrize("kind", ["instant", "vector", "range"])
def test_a_parse_error_reaches_the_message_as_prometheus_says_it(
    history: History, kind: str
) -> None:
    provider = PrometheusProvider(from_url(history.url, 10, 0))
    at = history.scenario.start + 3600
    ask = {
        "instant": lambda: provider.instant("sum(up", at),
        "vector": lambda: provider.vector("sum(up", at),
        "range": lambda: provider.range("sum(up", at, at + 600, 60),
    }[kind]
    with pytest.raises(ProviderQueryError) as caught:
        ask()
    message = str(caught.value)
    assert "HTTP 400 Bad Request: bad_data: " in message, message
    assert "parse error" in message
    assert '"status"' not in message  # the error's words, not the body
