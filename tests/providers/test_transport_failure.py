"""A Prometheus that gives no answer is said in one line: its address and the cause in words,
never urllib3's retry text with the URL-encoded query (issue #41)."""

from __future__ import annotations

import pytest
import requests

from controlplane.errors import ProviderUnavailable
from controlplane.providers.prometheus import translate_error, transport_failure

QUERY_URL = (
    "http://alice:secret@prom.example:9090/api/v1/query_range?query=histogram_quantile%280.95"
    "%2C+sum+by+%28le%29&start=1&end=2&step=60"
)


def _failed(exc_type: type[requests.exceptions.RequestException], text: str) -> Exception:
    request = requests.Request("GET", QUERY_URL).prepare()
    return exc_type(text, request=request)


@pytest.mark.parametrize(
    ("exc_type", "text", "cause"),
    [
        (
            requests.exceptions.ConnectionError,
            "HTTPConnectionPool(host='prom.example', port=9090): Max retries exceeded with url: "
            "/api/v1/query_range?query=histogram_quantile%280.95 (Caused by NewConnectionError("
            "'Failed to establish a new connection: [Errno 111] Connection refused'))",
            "is unreachable: connection refused",
        ),
        (
            requests.exceptions.ConnectionError,
            'Max retries exceeded (Caused by NameResolutionError("Failed to resolve '
            "'prom.example' ([Errno -2] Name or service not known)\"))",
            "is unreachable: host name not found",
        ),
        (requests.exceptions.ConnectTimeout, "timed out", "is unreachable: connecting timed out"),
        (requests.exceptions.ReadTimeout, "Read timed out. (read timeout=2)", "timed out"),
    ],
    ids=["refused", "dns", "connect-timeout", "read-timeout"],
)
def test_one_line_with_address_and_cause(
    exc_type: type[requests.exceptions.RequestException], text: str, cause: str
) -> None:
    error = translate_error(_failed(exc_type, text), "histogram_quantile(0.95, ...)")
    assert isinstance(error, ProviderUnavailable)
    line = str(error)
    assert line.startswith("Prometheus at http://prom.example:9090 ")
    assert cause in line
    assert "\n" not in line
    for leak in ("%28", "query_range", "Max retries", "secret", "alice"):
        assert leak not in line


def test_an_unknown_transport_failure_still_names_the_address() -> None:
    failed = _failed(requests.exceptions.ChunkedEncodingError, "Connection broken: IncompleteRead")
    assert isinstance(failed, requests.exceptions.RequestException)
    line = transport_failure(failed)
    assert line.startswith("Prometheus at http://prom.example:9090 failed: ")
    assert "IncompleteRead" in line


def test_a_url_requests_cannot_use_is_said_so_not_blamed_on_the_answer() -> None:
    error = translate_error(requests.exceptions.InvalidURL("Invalid URL 'prom:9090'"), "up")
    assert str(error) == (
        "the Prometheus URL is not usable (InvalidURL): write it as http://HOST:PORT or "
        "https://HOST:PORT"
    )
