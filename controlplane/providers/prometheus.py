"""The Prometheus metric provider, on ``prometheus-api-client``.

Owns the HTTP exchange with a Prometheus (instant queries in a POST body) and the mapping of its
answers and failures onto ``ProviderUnavailable``, ``ProviderQueryError`` and ``NoData``. The URL
may be a tenant's: answers are bounded and no body reaches a message beyond Prometheus' own
``errorType`` and ``error``, cut. Called through the controller's source, ``simulate``, ``up`` and
the demo. docs/analysis.md, "No data, errors and the evaluator".
"""

from __future__ import annotations

import ast
import json
import math
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from controlplane.errors import NoData, ProviderError, ProviderQueryError, ProviderUnavailable
from controlplane.providers.bounded import (
    ERROR_TEXT_CHARS,
    MAX_ANSWER_BYTES,
    MAX_ANSWER_DEPTH,
    arriving,
    clip,
    declared_over,
    json_object,
    nesting_over,
    read_capped,
    size_text,
    without_bytes,
)

__all__ = [
    "ERROR_TEXT_CHARS",
    "MAX_ANSWER_BYTES",
    "MAX_ANSWER_DEPTH",
    "MAX_ERROR_BYTES",
    "BodyQueries",
    "PrometheusProvider",
    "from_url",
    "parse_answer",
    "prometheus_error",
    "translate_error",
    "transport_failure",
]

MAX_ERROR_BYTES = 64 * 1024
"""How much of a non-200 answer is read to look for Prometheus' error JSON (the rest is not)."""

_STATUS = re.compile(r"HTTP Status Code (\d+)")
_BODY = re.compile(r"\((b'.*'|b\".*\")\)\s*$", re.DOTALL)
_TRANSIENT_STATUS = frozenset({408, 429})
_CHUNK_BYTES = 64 * 1024
T = TypeVar("T")
_PARSING = threading.Lock()
"""One answer is parsed at a time in the process: ``json.loads`` holds the GIL anyway, and the
objects an answer parses into (up to ~11 times its bytes) then never add up across the queries
in flight."""


def prometheus_error(body: bytes | bytearray | str) -> tuple[str, str] | None:
    """(errorType, error cut to :data:`ERROR_TEXT_CHARS`) when ``body`` is Prometheus' error
    JSON ``{"status": "error", "errorType": ..., "error": ...}``; else None."""
    data = json_object(body, MAX_ERROR_BYTES)
    if data is None or data.get("status") != "error":
        return None
    error_type, error = data.get("errorType"), data.get("error")
    if not isinstance(error_type, str) or not isinstance(error, str):
        return None
    return clip(error_type, 40), clip(error)


def failure(status: int, detail: str, query: str) -> ProviderError:
    """The product error of a non-200 answer described by ``detail`` (``HTTP 400 Bad Request:
    bad_data: ...``): 4xx but 408 / 429 is the query's fault, the rest the server's."""
    if 400 <= status < 500 and status not in _TRANSIENT_STATUS:
        return ProviderQueryError(f"Prometheus rejected the query {query!r}: {detail}")
    return ProviderUnavailable(f"Prometheus answered {detail}")


def parse_answer(body: bytes | bytearray, max_depth: int = MAX_ANSWER_DEPTH) -> Any:
    """``data.result`` of a Prometheus success answer; ProviderUnavailable for anything else
    (nested deeper than ``max_depth``, not JSON, not Prometheus' shape)."""
    deep = f"Prometheus answer nested deeper than {max_depth}: refused"
    if nesting_over(body, max_depth):
        raise ProviderUnavailable(deep)
    try:
        with _PARSING:
            answer = json.loads(body)
    except RecursionError:
        raise ProviderUnavailable(deep) from None
    except ValueError as exc:
        where = f" ({exc.msg} at byte {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ProviderUnavailable(f"the answer is not Prometheus API JSON{where}") from None
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict) or "result" not in data:
        raise ProviderUnavailable("the answer is not Prometheus API JSON (no data.result)")
    return data["result"]


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
    """``PrometheusConnect`` reading bounded answers (module docstring), instant queries in a POST
    form body: a grouped query's text is hundreds of kilobytes, and in a URL requests and urllib3
    re-scan it in Python (a tenth of a tick's CPU at 3,000 canaries); errors as :func:`failure`.
    """

    def __init__(
        self,
        *args: Any,
        max_bytes: int = MAX_ANSWER_BYTES,
        max_depth: int = MAX_ANSWER_DEPTH,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    def _ask(self, method: str, path: str, query: str, timeout: float | None, **fields: Any) -> Any:
        """``data.result`` of ``method path`` with ``fields`` (``data=`` / ``params=``); the
        product's error when the answer is not a bounded Prometheus success answer."""
        limit = self._timeout if timeout is None else timeout
        response = self._session.request(
            method=method,
            url=f"{self.url}{path}",
            verify=self._session.verify,
            headers=self.headers,
            auth=self.auth,
            cert=self._session.cert,
            timeout=limit,
            stream=True,
            allow_redirects=False,
            **fields,
        )
        try:
            if response.status_code != 200:
                raise _http_failure(response, query)
            if declared_over(response.headers, self.max_bytes):
                raise ProviderUnavailable(
                    f"Prometheus answer over {size_text(self.max_bytes)}: refused"
                )
            deadline = time.monotonic() + float(limit) if isinstance(limit, int | float) else None
            body = read_capped(arriving(response.raw, _CHUNK_BYTES), self.max_bytes, deadline)
        except urllib3.exceptions.HTTPError as exc:  # read from urllib3 itself: its errors
            raise ProviderUnavailable(
                f"Prometheus answer broken off: {without_bytes(str(exc))}"
            ) from None
        finally:
            response.close()
        if isinstance(body, str):
            raise ProviderUnavailable(f"Prometheus answer {body}: refused")
        return parse_answer(body, self.max_depth)

    def custom_query(
        self, query: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        form = {"query": str(query), **(params or {})}
        return self._ask("POST", "/api/v1/query", str(query), timeout, data=form)

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        # as the library: whole seconds, which ``params`` may override
        asked = {
            "query": str(query),
            "start": round(start_time.timestamp()),
            "end": round(end_time.timestamp()),
            "step": step,
            **(params or {}),
        }
        return self._ask(self._method, "/api/v1/query_range", str(query), timeout, params=asked)


def _http_failure(response: requests.Response, query: str) -> ProviderError:
    """The error of a non-200 answer: its status and reason phrase, and Prometheus' own error
    when its body (at most :data:`MAX_ERROR_BYTES` of it read) is Prometheus' error JSON."""
    try:
        body = read_capped(arriving(response.raw, _CHUNK_BYTES), MAX_ERROR_BYTES)
    except urllib3.exceptions.HTTPError:
        body = "unread"
    found = None if isinstance(body, str) else prometheus_error(body)
    reason = response.reason if isinstance(response.reason, str) else ""
    detail = f"HTTP {response.status_code} {clip(reason, 60)}".rstrip()
    if found is not None:
        detail += f": {found[0]}: {found[1]}"
    return failure(response.status_code, detail, query)


def from_url(
    url: str,
    timeout_s: float = 10.0,
    retries: int = 1,
    *,
    max_bytes: int = MAX_ANSWER_BYTES,
    max_depth: int = MAX_ANSWER_DEPTH,
) -> PrometheusConnect:
    """A ``PrometheusConnect`` for ``url`` (:class:`BodyQueries`: bounded answers, instant
    queries in a POST body) with a per-request timeout and a short retry policy.

    The library's default policy retries three times with a 1 s backoff, which makes an outage
    take seconds to report; here connection errors and 502/503/504 are retried ``retries`` times
    (POST included: a query changes nothing). ``max_bytes`` / ``max_depth``: the answer limits
    (:data:`MAX_ANSWER_BYTES`, :data:`MAX_ANSWER_DEPTH`).
    """
    retry = Retry(
        total=retries,
        backoff_factor=0.1,
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET", "POST"}),
        redirect=0,
        raise_on_redirect=False,
    )
    return BodyQueries(
        url=url, timeout=timeout_s, retry=retry, max_bytes=max_bytes, max_depth=max_depth
    )


def _library_error(text: str) -> tuple[int, str]:
    """Status and detail of ``prometheus-api-client``'s own ``HTTP Status Code N (b'body')``
    (a client other than :class:`BodyQueries`): Prometheus' error if the body is its error JSON,
    else nothing of the body."""
    match = _STATUS.search(text)
    status = int(match.group(1)) if match else 0
    detail = f"HTTP {status}"
    body = _BODY.search(text)
    if body and len(body.group(1)) <= 4 * MAX_ERROR_BYTES:
        try:
            raw = ast.literal_eval(body.group(1))
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raw = None
        found = prometheus_error(raw) if isinstance(raw, bytes) else None
        if found is not None:
            detail += f": {found[0]}: {found[1]}"
    return status, detail


def translate_error(exc: Exception, query: str) -> ProviderError | None:
    """The product error for a failure of the client running ``query`` (None: not ours, a bug).

    Messages never carry an answer's body (module docstring)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, PrometheusApiClientException):
        return failure(*_library_error(str(exc)), query)
    if isinstance(exc, RecursionError):
        return ProviderUnavailable(f"Prometheus answer nested deeper than {MAX_ANSWER_DEPTH}")
    if isinstance(exc, _BAD_URL):  # also ValueErrors: not the answer's fault
        return ProviderUnavailable(
            f"the Prometheus URL is not usable ({type(exc).__name__}): write it as "
            "http://HOST:PORT or https://HOST:PORT"
        )
    if isinstance(exc, (ValueError, KeyError, TypeError)):  # incl. requests' JSONDecodeError
        return ProviderUnavailable(f"the answer is not Prometheus API JSON ({type(exc).__name__})")
    if isinstance(exc, requests.exceptions.RequestException):
        return ProviderUnavailable(transport_failure(exc))
    return None


_BAD_URL = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)

_CAUSES: tuple[tuple[str, str], ...] = (
    ("connection refused", "connection refused (is Prometheus running on that port?)"),
    ("name or service not known", "host name not found"),
    ("nodename nor servname", "host name not found"),
    ("temporary failure in name resolution", "host name not found (DNS unavailable)"),
    ("failed to resolve", "host name not found"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network unreachable"),
    ("connection reset", "connection reset by the server"),
    ("remote end closed connection", "the server closed the connection"),
    ("certificate verify failed", "TLS certificate not trusted"),
    ("ssl", "TLS handshake failed"),
)


def _address(exc: requests.exceptions.RequestException) -> str:
    """``scheme://host:port`` of the failed request (no path, query or credentials); ``?``."""
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if not isinstance(url, str):
        return "?"
    parts = urlsplit(url)
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}" if parts.scheme else host


def transport_failure(exc: requests.exceptions.RequestException) -> str:
    """One line for a request that got no answer: the address and the cause in words
    (``Prometheus at http://127.0.0.1:9 is unreachable: connection refused``), never the URL's
    path or URL-encoded query, nor urllib3's retry wrapper text. Pure."""
    where = f"Prometheus at {_address(exc)}"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"{where} is unreachable: connecting timed out"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"{where} timed out: no answer within the request timeout"
    text = str(exc).lower()
    for needle, cause in _CAUSES:
        if needle in text:
            return f"{where} is unreachable: {cause}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"{where} is unreachable: {type(exc).__name__}"
    return f"{where} failed: {without_bytes(_no_url(str(exc)), 200)}"


def _no_url(text: str) -> str:
    """``text`` without the request's path and query (``url: /api/v1/query_range?query=...``)."""
    return re.sub(r"(url: )?/api/v1/\S*", "", text)


def _labels(result: list[Any]) -> str:
    """The label sets of a several-series result's first three series, cut to 200 characters."""
    text = ", ".join(
        json.dumps(r.get("metric", {}), sort_keys=True) for r in result[:3] if isinstance(r, dict)
    )
    return clip(text)


def _single(result: Any, query: str) -> Any:
    """The one series of a vector / matrix result; None when empty."""
    if not isinstance(result, list):
        raise ProviderUnavailable(
            f"unexpected Prometheus result for {query!r} (a {type(result).__name__})"
        )
    if not result:
        return None
    if len(result) > 1:
        raise ProviderQueryError(
            f"query {query!r} returned {len(result)} series ({_labels(result)}...); a check "
            "needs one number: aggregate it, e.g. sum(...) or avg(...)"
        )
    return result[0]


def _bare(call: Callable[[], T]) -> T:
    """``call()``; a :class:`~controlplane.errors.ProviderError` it raises is raised again
    without its traceback, cause and context. Callers keep these errors (a tick keeps one per
    failed query until it ends, a replay in its futures), and the frames of a traceback hold
    their locals: the answer just parsed, up to ~11 times the cap in objects."""
    try:
        return call()
    except ProviderError as exc:
        error = exc
    error.__traceback__ = error.__cause__ = error.__context__ = None
    raise error


class PrometheusProvider:
    """A :class:`~controlplane.analysis.metric_provider.MetricProvider` over an injected
    ``PrometheusConnect``. Its errors carry no traceback (:func:`_bare`)."""

    def __init__(self, client: PrometheusClient) -> None:
        self._client = client

    def instant(self, query: str, at: float) -> float:
        return _bare(lambda: self._instant(query, at))

    def vector(self, query: str, at: float) -> list[tuple[dict[str, str], float]]:
        """Every series of ``query`` at ``at`` (the ``VectorProvider`` extension)."""
        return _bare(lambda: self._vector(query, at))

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        return _bare(lambda: self._range(query, start, end, step))

    def _query(self, query: str, at: float) -> Any:
        """The instant query's raw result; the client's errors as the product's."""
        try:
            return self._client.custom_query(query, params={"time": repr(float(at))})
        except Exception as exc:  # the client raises requests' errors and its own
            error = translate_error(exc, query)
            if error is None:
                raise
            raise error from None

    def _instant(self, query: str, at: float) -> float:
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
            except (KeyError, IndexError, TypeError):
                raise ProviderUnavailable(f"unexpected sample in the answer to {query!r}") from None
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ProviderUnavailable(
                f"unexpected sample value (a {type(raw).__name__}) in the answer to {query!r}"
            ) from None
        if not math.isfinite(value):
            raise NoData(f"{query!r} is {value}")
        return value

    def _vector(self, query: str, at: float) -> list[tuple[dict[str, str], float]]:
        result = self._query(query, at)
        if not isinstance(result, list):
            raise ProviderUnavailable(
                f"unexpected Prometheus result for {query!r} (a {type(result).__name__})"
            )
        out: list[tuple[dict[str, str], float]] = []
        for series in result:
            try:
                labels = series["metric"]  # JSON object: str -> str already
                if not isinstance(labels, dict):
                    raise TypeError(f"labels of {type(labels).__name__}")
                out.append((labels, float(series["value"][1])))
            except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                raise ProviderUnavailable(f"unexpected sample in the answer to {query!r}") from None
        return out

    def _range(
        self, query: str, start: float, end: float, step: float
    ) -> list[tuple[float, float]]:
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
            raise error from None
        series = _single(result, query)
        if series is None:
            return []
        values = series.get("values") if isinstance(series, dict) else None
        asked = math.floor((end - start) / step + 1e-9) + 1 if step > 0 else 1
        if isinstance(values, list) and len(values) > asked:
            raise ProviderUnavailable(
                f"range answer for {query!r} has {len(values)} samples, more than the "
                f"{asked} asked: refused"
            )
        try:
            return [(float(t), float(v)) for t, v in values]  # type: ignore[union-attr]
        except (KeyError, TypeError, ValueError):
            raise ProviderUnavailable(f"unexpected range answer for {query!r}") from None
