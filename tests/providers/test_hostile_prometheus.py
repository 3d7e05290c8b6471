"""Issue 33: a Prometheus the tenant names answers as an attacker would. The provider reads at
most :data:`MAX_ANSWER_BYTES` of an answer, refuses JSON nested deeper than
:data:`MAX_ANSWER_DEPTH`, never follows a redirect, cuts a dripping answer at its timeout, and
puts no byte of an answer's body in an error message but Prometheus' own error text (cut).

Every server here is a real HTTP server on a loopback port
(:mod:`harness.servers.hostile_prometheus`); no program is started. ``canaryctl simulate`` against
the same servers, as a process, is ``test_simulate_hostile.py``; the controller,
``tests/controller/test_controller_no_reflection.py``.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import tracemalloc
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from prometheus_api_client.exceptions import PrometheusApiClientException

from controlplane.errors import ProviderError, ProviderQueryError, ProviderUnavailable
from controlplane.providers import bounded
from controlplane.providers.bounded import (
    ERROR_TEXT_CHARS,
    MAX_ANSWER_BYTES,
    nesting_over,
    read_capped,
)
from controlplane.providers.prometheus import PrometheusProvider, from_url, translate_error
from harness.servers.hostile_prometheus import (
    DEEP,
    PROM_ERROR_TEXT,
    SECRET,
    hostile,
    secret_page,
)
from harness.servers.loopback import serving

AT = 1_700_000_000.0
MiB = 1 << 20


def calls(provider: PrometheusProvider) -> dict[str, Callable[[], Any]]:
    """Each way a query reaches Prometheus: instant and vector (POST), range (GET)."""
    return {
        "instant": lambda: provider.instant("up", AT),
        "vector": lambda: provider.vector("up", AT),
        "range": lambda: provider.range("up", AT, AT + 600, 60),
    }


def provider_for(url: str, **limits: int) -> PrometheusProvider:
    return PrometheusProvider(from_url(url + "/internal/admin?ignore=", 5, 0, **limits))


@pytest.mark.parametrize("mode", ["huge", "huge-declared"])
def test_a_55_mb_answer_is_refused_holding_no_more_than_the_cap(mode: str) -> None:
    """Before: the 55 MB answer was read whole, then parsed into ~1.3 GB of Python objects."""
    with hostile(mode) as server:
        provider = provider_for(server.url)
        for name, call in calls(provider).items():
            tracemalloc.start()
            try:
                with pytest.raises(ProviderUnavailable, match="answer over 16 MiB: refused"):
                    call()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak < MAX_ANSWER_BYTES + 8 * MiB, (name, peak)
    assert 16 * MiB == MAX_ANSWER_BYTES


def test_the_caller_may_set_a_smaller_cap() -> None:
    answer = {
        "status": "success",
        "data": {"resultType": "scalar", "result": [AT, "0." + "1" * 4000]},
    }

    class Handler(_Fixed):
        body = json.dumps(answer).encode()

    with serving(Handler) as url:
        assert provider_for(url).instant("up", AT) == float("0." + "1" * 4000)
        with pytest.raises(ProviderUnavailable, match="answer over 1 KiB: refused"):
            provider_for(url, max_bytes=1024).instant("up", AT)


def test_a_200000_deep_answer_is_a_provider_error_not_a_recursion_error() -> None:
    """Before: ``RecursionError`` out of the parser, which nothing translated (a traceback in
    ``canaryctl simulate``; in the controller a failed tick, retried every 300 s for ever)."""
    with hostile("deep") as server:
        for name, call in calls(provider_for(server.url)).items():
            with pytest.raises(ProviderUnavailable, match="nested deeper than 64: refused"):
                call()
            assert name


def test_the_depth_limit_is_the_callers_to_set() -> None:
    nested: Any = [AT, "1"]
    for _ in range(9):
        nested = [nested]
    answer = {"status": "success", "data": {"resultType": "vector", "result": nested}}

    class Handler(_Fixed):
        body = json.dumps(answer).encode()

    with serving(Handler) as url:
        with pytest.raises(ProviderUnavailable, match="nested deeper than 8"):
            provider_for(url, max_depth=8).vector("up", AT)
        with pytest.raises(ProviderUnavailable, match="unexpected sample"):
            provider_for(url).vector("up", AT)  # within 64: read, and refused for its shape


@pytest.mark.parametrize("mode", ["forbidden", "forbidden-json", "ok-secret"])
def test_no_byte_of_an_answer_reaches_the_message(mode: str) -> None:
    """Before: 500 characters of the internal page's 403 body were in the message (and so in
    ``status.checks[].message``, ``status.reason`` and a Warning Event)."""
    with hostile(mode) as server:
        for call in calls(provider_for(server.url)).values():
            with pytest.raises(ProviderError) as caught:
                call()
            message = str(caught.value)
            assert SECRET not in message
            assert "hunter2" not in message
            if mode.startswith("forbidden"):
                assert isinstance(caught.value, ProviderQueryError)
                assert message.endswith("HTTP 403 Forbidden")


def test_prometheus_own_error_is_kept_and_cut() -> None:
    """A PromQL parse error is what a user needs to fix the query: Prometheus' error shape keeps
    its ``errorType`` and ``error``, cut to 200 characters."""
    with hostile("prom-error") as server:
        for call in calls(provider_for(server.url)).values():
            with pytest.raises(ProviderQueryError) as caught:
                call()
            message = str(caught.value)
            assert "HTTP 400 Bad Request: bad_data: 1:5: parse error: unclosed left" in message
            error = message.split("bad_data: ", 1)[1]
            assert len(error) == ERROR_TEXT_CHARS
            assert error.endswith("...")
            assert PROM_ERROR_TEXT not in message


def test_the_library_exception_loses_its_body_too() -> None:
    """``prometheus-api-client``'s own client quotes the whole body in its exception."""
    page = PrometheusApiClientException(f"HTTP Status Code 403 ({secret_page().encode()!r})")
    text = str(translate_error(page, "up"))
    assert SECRET not in text
    assert text == "Prometheus rejected the query 'up': HTTP 403"
    body = json.dumps({"status": "error", "errorType": "execution", "error": "too many samples"})
    own = PrometheusApiClientException(f"HTTP Status Code 422 ({body.encode()!r})")
    assert str(translate_error(own, "up")).endswith("HTTP 422: execution: too many samples")
    deep = translate_error(RecursionError("maximum recursion depth exceeded"), "up")
    assert isinstance(deep, ProviderUnavailable)


class _Fixed(http.server.BaseHTTPRequestHandler):
    """Answers ``status`` with ``body`` and ``headers`` to every query."""

    status = 200
    body = b""
    headers_out: ClassVar[dict[str, str]] = {}
    hits: ClassVar[list[str]] = []

    def _answer(self) -> None:
        self.hits.append(self.path)
        self.send_response(self.status)
        for key, value in self.headers_out.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_redirect_is_not_followed() -> None:
    """A redirect would take the query (and any credentials of the URL) past an allow-list."""

    class Target(_Fixed):
        hits: ClassVar[list[str]] = []
        body = b'{"status":"success","data":{"resultType":"vector","result":[]}}'

    with serving(Target) as target:

        class Redirect(_Fixed):
            status = 307
            headers_out: ClassVar[dict[str, str]] = {"Location": f"{target}/api/v1/query"}

        with serving(Redirect) as url:
            for call in calls(provider_for(url)).values():
                with pytest.raises(ProviderUnavailable, match=r"HTTP 307 Temporary Redirect$"):
                    call()
    assert Target.hits == []


DRIP_BYTES = 30_000
"""How many bytes :class:`_Drip` sends at most: 300 s of drip, past pytest's 120 s timeout, so
a client that never gives up hangs the test there; the count only lets the server's thread end
by itself."""


class _Drip(http.server.BaseHTTPRequestHandler):
    """A 200 that sends one byte every 0.01 s (each far within the client's 1 s read timeout),
    for :data:`DRIP_BYTES` bytes; ``gone`` is set when a write fails (the client went away),
    ``finished`` when every byte was sent."""

    gone: ClassVar[threading.Event]
    finished: ClassVar[threading.Event]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            for _ in range(DRIP_BYTES):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.01)
        except OSError:
            self.gone.set()
            return
        self.finished.set()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_answer_that_drips_is_cut_at_the_timeout() -> None:
    """Each byte comes within the read timeout, so only a deadline on the whole body ends it.

    No seconds are asserted: without the deadline the client reads the 300 s drip to its end,
    and pytest's 120 s timeout fails the test; with it, the provider gives up with its own
    message and the server sees the connection closed before the drip finished. How the
    deadline is counted is :func:`test_read_capped_stops_at_its_deadline`'s, on a fake clock."""

    class Drip(_Drip):
        gone = threading.Event()
        finished = threading.Event()

    with serving(Drip) as url:
        provider = PrometheusProvider(from_url(url, timeout_s=1.0, retries=0))
        with pytest.raises(ProviderUnavailable, match="not read within the timeout"):
            provider.instant("up", AT)
        # the closed connection fails the server's next write (or the one after it)
        assert Drip.gone.wait(60), "the server never saw the client go away"
    assert not Drip.finished.is_set()


def test_read_capped_stops_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The body is refused at the first chunk that arrives after ``deadline`` (a fake clock:
    each chunk read moves it 0.25 s on, a step exact in binary), not before and not later."""
    now = [100.0]
    monkeypatch.setattr(bounded, "time", SimpleNamespace(monotonic=lambda: now[0]))
    read: list[int] = []

    def dripping() -> Any:
        for n in range(1000):
            read.append(n)
            now[0] += 0.25
            yield b" "

    assert read_capped(dripping(), MAX_ANSWER_BYTES, deadline=101.0) == (
        "not read within the timeout"
    )
    assert len(read) == 5  # at 101.25, the first past the deadline (101.0 is not past it)
    now[0], read[:] = 100.0, []
    assert read_capped(dripping(), MAX_ANSWER_BYTES, deadline=None) == bytearray(b" " * 1000)


# --------------------------------------------------------------------------- the depth scan


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("text", "limit", "over"),
    [
        pytest.param(nested(64), 64, False, id="at-the-limit"),
        pytest.param(nested(65), 64, True, id="one-over"),
        pytest.param(nested(DEEP), 64, True, id="200000-deep"),
        pytest.param(json.dumps(["[" * 500, {"a": "{" * 500}]).encode(), 2, False, id="in-strings"),
        pytest.param(json.dumps(['x"[[[[\\"' * 50, [[1]]]).encode(), 3, False, id="escapes"),
        pytest.param(json.dumps(["x\\", [[[1]]]]).encode(), 3, True, id="escaped-backslash"),
        pytest.param(b'{"a":{"b":[1,{"c":[]}]}}', 5, False, id="objects-5"),
        pytest.param(b'{"a":{"b":[1,{"c":[]}]}}', 4, True, id="objects-over-4"),
        pytest.param(b"not json [[[", 2, True, id="not-json-is-the-parsers"),
    ],
)
def test_nesting_is_counted_outside_strings(text: bytes, limit: int, over: bool) -> None:
    assert nesting_over(text, limit) is over
    if not over and text.startswith((b"[", b"{")):
        json.loads(text)  # what was let through parses


def test_the_scan_carries_strings_and_depth_across_its_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bounded, "_SCAN", 3)
    text = json.dumps([["[[[[[[", {"k": "]]]]"}], [[[[1]]]]]).encode()
    assert nesting_over(text, 5) is False
    assert nesting_over(text, 4) is True
    assert nesting_over(nested(7), 6) is True


def test_read_capped_stops_reading_at_the_cap() -> None:
    read: list[int] = []

    def chunks() -> Any:
        for n in range(1000):
            read.append(n)
            yield b"x" * 1000

    assert read_capped(chunks(), 10_000) == "over 10000 bytes"
    assert len(read) == 11
    assert read_capped([b"ab", b"c"], 3) == bytearray(b"abc")


@pytest.mark.parametrize(
    ("body", "limit", "expected"),
    [
        pytest.param(b'{"message": "no"}', None, {"message": "no"}, id="object"),
        pytest.param('{"message": "no"}', 5, None, id="too-long"),
        pytest.param(b"[" * 100 + b"]" * 100, None, None, id="too-deep"),
        pytest.param(b'{"a": ' * 65 + b"1" + b"}" * 65, None, None, id="deep-object"),
        pytest.param(b"<html>", None, None, id="not-json"),
        pytest.param(b"[1, 2]", None, None, id="not-an-object"),
    ],
)
def test_json_object_never_raises(body: bytes | str, limit: int | None, expected: object) -> None:
    from controlplane.providers.bounded import json_object

    assert json_object(body, limit) == expected
