"""Integration: the Prometheus provider and the evaluator against a real Prometheus.

The ``history`` fixture (tests/conftest.py) serves a known synthetic history; every expected value
here is computed from that scenario, not copied from an output.
"""

from __future__ import annotations

import http.server
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from support.canaries import model_canary
from support.history import History
from support.prometheus import start_prometheus
from support.scenario import (
    DAY,
    HOUR,
    lognormal_quantile,
)

from controlplane.analysis.evaluator import evaluate
from controlplane.errors import NoData, ProviderQueryError, ProviderUnavailable
from controlplane.promql import queries
from controlplane.providers.prometheus import PrometheusProvider, from_url
from controlplane.rollout.observations import DueCheck
from harness.servers.loopback import serving

pytestmark = pytest.mark.binary

CANARY = model_canary()


@pytest.fixture(scope="module")
def provider(history: History) -> PrometheusProvider:
    return PrometheusProvider(from_url(history.url, timeout_s=10))


def builtin(name: str, variant: str, at_window: float = 300, quantile: float | None = None) -> str:
    return queries.builtin_query(
        name,  # type: ignore[arg-type]
        queries.selector(CANARY, variant),
        at_window,
        quantile,
    )


def _quantile_case(
    q: float, role: str, metric: str, offset: float
) -> Callable[[History], tuple[float, float]]:
    def expect(h: History) -> tuple[float, float]:
        at = h.scenario.start + offset
        return at, h.scenario.expected_quantile(q, metric, role, at)

    return expect


@pytest.mark.parametrize(
    ("query", "expect"),
    [
        pytest.param(
            builtin("e2e-latency", "nf4", quantile=0.95),
            _quantile_case(0.95, "candidate", "e2e-latency", 12 * HOUR),
            id="p95-latency-day1",
        ),
        pytest.param(
            builtin("e2e-latency", "nf4", quantile=0.95),
            _quantile_case(0.95, "candidate", "e2e-latency", 30 * HOUR),
            id="p95-latency-after-plus-300ms",
        ),
        pytest.param(
            builtin("e2e-latency", "bf16", quantile=0.99),
            _quantile_case(0.99, "stable", "e2e-latency", 30 * HOUR),
            id="p99-latency-stable",
        ),
        pytest.param(
            builtin("ttft", "nf4"),
            _quantile_case(0.95, "candidate", "ttft", 12 * HOUR),
            id="p95-ttft",
        ),
        pytest.param(
            builtin("inter-token-latency", "nf4", quantile=0.5),
            _quantile_case(0.5, "candidate", "inter-token-latency", 12 * HOUR),
            id="p50-inter-token",
        ),
        pytest.param(
            builtin("error-rate", "nf4"),
            lambda h: (h.scenario.start + 12 * HOUR, 0.02),
            id="error-rate-candidate",
        ),
        pytest.param(
            builtin("error-rate", "bf16"),
            lambda h: (h.scenario.start + 12 * HOUR, 0.005),
            id="error-rate-stable",
        ),
        pytest.param(
            builtin("request-rate", "nf4"),
            lambda h: (h.scenario.start + 12 * HOUR, h.scenario.total_rps * 0.25),
            id="request-rate",
        ),
        pytest.param(
            builtin("tokens-per-second", "nf4"),
            lambda h: (h.scenario.start + 12 * HOUR, 2.5 * h.scenario.candidate.tokens_per_request),
            id="tokens-per-second",
        ),
        pytest.param(
            builtin("kv-cache-usage", "nf4"),
            lambda h: (h.scenario.start + 12 * HOUR, h.scenario.candidate.kv_cache),
            id="kv-cache",
        ),
        pytest.param(
            queries.samples_query(queries.selector(CANARY, "nf4"), 300),
            lambda h: (h.scenario.start + 12 * HOUR, 2.5 * 300),
            id="sample-count",
        ),
        pytest.param(
            queries.check_queries(CANARY, CANARY.spec.steps[1].rollback_on[0]).candidate,
            lambda h: (h.scenario.start + 12 * HOUR, h.scenario.candidate.resolved_fraction),
            id="custom-kpi",
        ),
        pytest.param(
            queries.check_queries(CANARY, CANARY.spec.shadow.promote_on).candidate,  # type: ignore[union-attr]
            lambda h: (h.scenario.start + 23 * HOUR, 0.55 - 0.5),
            id="custom-win-rate",
        ),
        pytest.param(
            queries.cost_query(CANARY),
            lambda h: (h.scenario.start + 36 * HOUR, h.scenario.candidate.cost_per_hour * 24),
            id="cost-per-day",
        ),
    ],
)  # fmt: skip
def test_instant_returns_what_the_scenario_put_in(
    provider: PrometheusProvider,
    history: History,
    query: str,
    expect: Callable[[History], tuple[float, float]],
) -> None:
    at, expected = expect(history)
    assert provider.instant(query, at) == pytest.approx(expected, rel=1e-6)


def test_p95_is_within_bucket_resolution_of_the_true_lognormal_quantile(
    provider: PrometheusProvider, history: History
) -> None:
    at = history.scenario.start + 30 * HOUR
    params = history.scenario.params_at("candidate", at)
    true = lognormal_quantile(0.95, params.latency_median_s, params.latency_sigma)
    measured = provider.instant(builtin("e2e-latency", "nf4"), at)
    bounds = (0.0, *history.scenario.buckets("e2e-latency"))
    upper = next(b for b in bounds if b >= true)
    lower = max(b for b in bounds if b < true)
    assert lower <= measured <= upper


@pytest.mark.parametrize(
    ("query", "error", "fragment"),
    [
        pytest.param(
            "sum(rate(x[5m])", ProviderQueryError, "unclosed left parenthesis", id="parse"
        ),
        pytest.param(
            'vllm:request_success_total{variant="nf4"}',
            ProviderQueryError,
            "aggregate",
            id="several-series",
        ),
        pytest.param('up{job="nothing-here"}', NoData, "empty", id="empty"),
        pytest.param("vector(0) / vector(0)", NoData, "nan", id="nan"),
    ],
)
def test_bad_queries(
    provider: PrometheusProvider,
    history: History,
    query: str,
    error: type[Exception],
    fragment: str,
) -> None:
    with pytest.raises(error, match=f"(?i){fragment}"):
        provider.instant(query, history.scenario.start + 12 * HOUR)


def test_range_query_error_is_a_query_error(provider: PrometheusProvider, history: History) -> None:
    start = history.scenario.start
    with pytest.raises(ProviderQueryError):
        provider.range("rate(x[5m]", start, start + HOUR, 60)


def test_stopped_prometheus_is_unavailable(tmp_path: Path) -> None:
    server = start_prometheus(tmp_path / "tsdb")
    provider = PrometheusProvider(from_url(server.url, timeout_s=2, retries=0))
    assert provider.instant("vector(1)", 1_700_000_000) == 1.0
    server.stop()
    with pytest.raises(ProviderUnavailable, match="unreachable"):
        provider.instant("vector(1)", 1_700_000_000)
    with pytest.raises(ProviderUnavailable):
        provider.range("vector(1)", 1_700_000_000, 1_700_000_600, 60)


class _Broken(http.server.BaseHTTPRequestHandler):
    """A server in front of Prometheus answering ``status``/``body`` to every query (instant
    queries come as a POST form, range queries as a GET: :class:`BodyQueries`)."""

    status = 503
    body = b"upstream overloaded"

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(self.body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def broken_server() -> Iterator[tuple[str, type[_Broken]]]:
    handler = type("Handler", (_Broken,), {})
    with serving(handler) as url:
        yield url, handler


@pytest.mark.parametrize(
    ("status", "body", "fragment"),
    [
        pytest.param(500, b"boom", "HTTP 500", id="500"),
        pytest.param(503, b"overloaded", "503", id="503-after-retries"),
        pytest.param(200, b"<html>not prometheus</html>", "not Prometheus", id="not-json"),
    ],
)
def test_server_errors_are_unavailable(
    broken_server: tuple[str, type[_Broken]], status: int, body: bytes, fragment: str
) -> None:
    url, handler = broken_server
    handler.status, handler.body = status, body
    provider = PrometheusProvider(from_url(url, timeout_s=2, retries=0))
    with pytest.raises(ProviderUnavailable, match=fragment):
        provider.instant("vector(1)", 1_700_000_000)


class _Recording(http.server.BaseHTTPRequestHandler):
    """Answers an instant query with ``vector(1)``'s answer and records how it came."""

    seen: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(("POST", self.path, body))
        answer = (
            b'{"status":"success","data":{"resultType":"vector",'
            b'"result":[{"metric":{},"value":[1,"1"]}]}}'
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_instant_query_goes_in_a_post_body_not_in_the_url() -> None:
    """A grouped query is hundreds of kilobytes: it travels as a form body (``/api/v1/query``
    accepts one), not percent-encoded into the URL."""
    handler = type("Handler", (_Recording,), {"seen": []})
    query = 'sum(up{canary=~"' + "|".join(f"c{i:05d}" for i in range(3000)) + '"})'
    with serving(handler) as url:
        assert PrometheusProvider(from_url(url)).instant(query, 1_700_000_000) == 1.0
    ((method, path, body),) = handler.seen
    assert (method, path) == ("POST", "/api/v1/query")
    form = urllib.parse.parse_qs(body.decode())
    assert form == {"query": [query], "time": ["1700000000.0"]}


def test_evaluator_end_to_end(provider: PrometheusProvider, history: History) -> None:
    s = history.scenario
    due = [DueCheck(k, c) for k, c in queries.all_checks(CANARY)]

    def verdicts(offset: float) -> dict[str, str]:
        observations = evaluate(CANARY, due, provider, s.start + offset)
        return {k: r.verdict for k, r in observations.checks.items()}

    day1 = verdicts(12 * HOUR)
    assert day1["steps[0].rollbackOn[0]"] == "pass"  # P95 ~ 178 ms <= 200 ms
    assert day1["steps[0].rollbackOn[1]"] == "breach"  # 2% errors > 0.1%
    assert day1["steps[1].rollbackOn[0]"] == "breach"  # KPI drift -10% < -5%
    # a check is "breached" when its condition holds: for promoteOn that means "promote"
    assert day1["shadow.promoteOn"] == "breach"  # win rate 5% > 3%
    assert verdicts(30 * HOUR)["steps[0].rollbackOn[0]"] == "breach"  # +300 ms
    low = verdicts(36 * HOUR + 30 * 60)  # weight 0.2%: 6 requests in 5 minutes
    assert low["steps[0].rollbackOn[0]"] == "inconclusive"
    none = verdicts(46 * HOUR)  # no traffic at all
    assert none["steps[0].rollbackOn[1]"] == "inconclusive"
    spend = evaluate(CANARY, [], provider, s.start + DAY + 12 * HOUR).spend
    assert spend == pytest.approx(36.0)
