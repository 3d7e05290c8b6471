"""The Prometheus metric provider, on ``prometheus-api-client``.

Implements :class:`~controlplane.analysis.metric_provider.MetricProvider`. Owns the translation
of Prometheus answers and failures into the product's terms:

- connection errors, timeouts, exhausted retries, HTTP 5xx / 408 / 429, or an answer that is not
  Prometheus JSON -> :class:`~controlplane.errors.ProviderUnavailable`;
- HTTP 4xx (``bad_data``: PromQL parse errors; 422 ``execution`` errors) ->
  :class:`~controlplane.errors.ProviderQueryError`, carrying Prometheus' own message;
- an empty result, NaN or ±Inf -> :class:`~controlplane.errors.NoData`;
- **several series** -> :class:`~controlplane.errors.ProviderQueryError` asking the user to
  aggregate (``sum(...)``, ``avg(...)``). Summing silently would be wrong for ratios, averages and
  quantiles, so a check never guesses which aggregation was meant.

The ``PrometheusConnect`` client is injected; :func:`from_url` builds one with a timeout and a
short retry policy, which sends instant queries in a POST body (:class:`BodyQueries`). Called
by the controller and ``canaryctl simulate`` (through the evaluator and
:mod:`controlplane.analysis.replay`).
"""

from __future__ import annotations

import ast
import json
import math
import re
from datetime import UTC, datetime
from typing import Any, Protocol

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from controlplane.errors import NoData, ProviderError, ProviderQueryError, ProviderUnavailable

_STATUS = re.compile(r"HTTP Status Code (\d+)")
_BODY = re.compile(r"\((b'.*'|b\".*\")\)\s*$", re.DOTALL)
_TRANSIENT_STATUS = frozenset({408, 429})


class PrometheusClient(Protocol):
    """The part of ``PrometheusConnect`` this provider uses."""

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any: ...

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> Any: ...


class BodyQueries(PrometheusConnect):  # type: ignore[misc]
    """``PrometheusConnect`` whose instant queries (``custom_query``) send the PromQL in a POST
    form body, which ``/api/v1/query`` accepts, rather than in the URL; answers and failures
    as the library's own ``custom_query`` gives them.

    A grouped query's text is hundreds of kilobytes (every canary of the group named in its
    selectors); in a URL, requests and urllib3 percent-encode and then re-scan it character
    by character in Python (at 3,000 canaries, a tenth of an analysis tick's CPU).
    """

    def custom_query(
        self, query: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        response = self._session.request(
            method="POST",
            url=f"{self.url}/api/v1/query",
            data={"query": str(query), **(params or {})},
            verify=self._session.verify,
            headers=self.headers,
            auth=self.auth,
            cert=self._session.cert,
            timeout=self._timeout if timeout is None else timeout,
        )
        if response.status_code == 200:
            return response.json()["data"]["result"]
        raise PrometheusApiClientException(
            f"HTTP Status Code {response.status_code} ({response.content!r})"
        )


def from_url(url: str, timeout_s: float = 10.0, retries: int = 1) -> PrometheusConnect:
    """A ``PrometheusConnect`` for ``url`` (:class:`BodyQueries`: instant queries in a POST
    body) with a per-request timeout and a short retry policy.

    The library's default policy retries three times with a 1 s backoff, which makes an outage
    take seconds to report; here connection errors and 502/503/504 are retried ``retries`` times
    (POST included: a query changes nothing).
    """
    retry = Retry(
        total=retries,
        backoff_factor=0.1,
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET", "POST"}),
    )
    return BodyQueries(url=url, timeout=timeout_s, retry=retry)


def _prometheus_message(text: str) -> str:
    """Prometheus' ``error`` field out of the library's ``HTTP Status Code N (b'body')`` text."""
    match = _BODY.search(text)
    if not match:
        return text
    try:
        body = ast.literal_eval(match.group(1))
        error = json.loads(body)["error"]
    except (ValueError, SyntaxError, TypeError, KeyError):
        return match.group(1)[:500]
    return str(error)


def translate_error(exc: Exception, query: str) -> ProviderError | None:
    """The product error for a failure of the client running ``query`` (None: not ours, a bug)."""
    if isinstance(exc, PrometheusApiClientException):
        text = str(exc)
        match = _STATUS.search(text)
        status = int(match.group(1)) if match else 0
        detail = _prometheus_message(text)
        if 400 <= status < 500 and status not in _TRANSIENT_STATUS:
            return ProviderQueryError(f"Prometheus rejected the query {query!r}: {detail}")
        return ProviderUnavailable(f"Prometheus answered HTTP {status}: {detail}")
    if isinstance(exc, (ValueError, KeyError, TypeError)):  # incl. requests' JSONDecodeError
        return ProviderUnavailable(f"the answer is not Prometheus API JSON: {exc!r}")
    if isinstance(exc, requests.exceptions.Timeout):
        return ProviderUnavailable(f"Prometheus timed out: {exc}")
    if isinstance(exc, requests.exceptions.RequestException):
        return ProviderUnavailable(f"Prometheus unreachable: {exc}")
    return None


def _single(result: Any, query: str) -> Any:
    """The one series of a vector / matrix result; None when empty."""
    if not isinstance(result, list):
        raise ProviderUnavailable(f"unexpected Prometheus result for {query!r}: {result!r:.200}")
    if not result:
        return None
    if len(result) > 1:
        labels = ", ".join(
            json.dumps(r.get("metric", {}), sort_keys=True)
            for r in result[:3]
            if isinstance(r, dict)
        )
        raise ProviderQueryError(
            f"query {query!r} returned {len(result)} series ({labels}...); a check needs one "
            "number: aggregate it, e.g. sum(...) or avg(...)"
        )
    return result[0]


class PrometheusProvider:
    """A :class:`~controlplane.analysis.metric_provider.MetricProvider` over an injected
    ``PrometheusConnect``."""

    def __init__(self, client: PrometheusClient) -> None:
        self._client = client

    def _query(self, query: str, at: float) -> Any:
        """The instant query's raw result; the client's errors as the product's."""
        try:
            return self._client.custom_query(query, params={"time": repr(float(at))})
        except Exception as exc:  # the client raises requests' errors and its own
            error = translate_error(exc, query)
            if error is None:
                raise
            raise error from exc

    def instant(self, query: str, at: float) -> float:
        result = self._query(query, at)
        # A scalar result comes back as [time, "value"] rather than a list of series.
        if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
            raw = result[1]
        else:
            series = _single(result, query)
            if series is None:
                raise NoData(f"empty result for {query!r}")
            try:
                raw = series["value"][1]
            except (KeyError, IndexError, TypeError) as exc:
                raise ProviderUnavailable(f"unexpected sample: {series!r:.200}") from exc
        try:
            value = float(raw)
        except (TypeError, ValueError) as exc:
            raise ProviderUnavailable(f"unexpected sample value {raw!r}") from exc
        if not math.isfinite(value):
            raise NoData(f"{query!r} is {value}")
        return value

    def vector(self, query: str, at: float) -> list[tuple[dict[str, str], float]]:
        """Every series of ``query`` at ``at`` (the ``VectorProvider`` extension)."""
        result = self._query(query, at)
        if not isinstance(result, list):
            raise ProviderUnavailable(f"unexpected Prometheus result for {query!r}")
        out: list[tuple[dict[str, str], float]] = []
        for series in result:
            try:
                labels = series["metric"]  # JSON object: str -> str already
                if not isinstance(labels, dict):
                    raise TypeError(f"labels of {type(labels).__name__}")
                out.append((labels, float(series["value"][1])))
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                raise ProviderUnavailable(f"unexpected sample: {series!r:.200}") from exc
        return out

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        # The library rounds start/end to whole seconds; the exact values go in params, which
        # it merges over its own, so the grid is exactly start + k * step.
        params = {"start": repr(float(start)), "end": repr(float(end))}
        try:
            result = self._client.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=repr(float(step)),
                params=params,
            )
        except Exception as exc:
            error = translate_error(exc, query)
            if error is None:
                raise
            raise error from exc
        series = _single(result, query)
        if series is None:
            return []
        try:
            return [(float(t), float(v)) for t, v in series["values"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable(f"unexpected range answer for {query!r}") from exc
