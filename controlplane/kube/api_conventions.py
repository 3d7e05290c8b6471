"""What the API server's answers mean, as :mod:`controlplane.kube.real` reads them.

Owns :func:`to_kube_error` (an answer or a client exception as the product's error tree),
:func:`retry_after` (as client-go reads it) and the list conventions. Pure: it imports no
Kubernetes client. See docs/kube-adapter.md, "RealKube".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from controlplane.errors import Conflict, Forbidden, KubeError, NotFound
from controlplane.kube.client import expired

NO_ROUTE = ("the server could not find the requested resource", "404 page not found")
"""kube-apiserver's 404 messages for a path it does not serve (a removed CRD's, for instance),
as opposed to a missing object's (``... "name" not found``)."""
DEFAULT_PAGE_SIZE = 500
"""Objects per list request (client-go's pager uses 500 too)."""
CONNECT_ATTEMPTS = 3
"""Connections a request tries before the API server counts as unreachable: one
never made (refused, or no answer to its SYN within the connect timeout) sent no byte of the
request, so a new one is opened at once. Each is a new socket, so a new source port: on this
project's 2-core test machine a loopback connect to kube-apiserver sat in SYN_SENT for 10 s,
three SYNs unanswered, while a connect to the same listener from another socket at that moment
completed at once (docs/kube-adapter.md, "Connections")."""


def selector_string(label_selector: Mapping[str, str] | None) -> str | None:
    """``{"a": "1", "b": "2"}`` -> ``"a=1,b=2"`` (equality-based label selector)."""
    if not label_selector:
        return None
    return ",".join(f"{k}={v}" for k, v in sorted(label_selector.items()))


SERVER_MESSAGE_LIMIT = 300
"""Characters of a ``Status`` message kept in an error (the status, Events and alerts show it)."""


def _server_message(body: Any) -> str | None:
    """The API server's own words in an error answer: ``message`` of a ``kind: Status`` object
    (cut to :data:`SERVER_MESSAGE_LIMIT`), or kube-apiserver's plain-text "404 page not found"
    (how an unserved path is told apart). Any other body -- a proxy's HTML page, an answer from
    something that is not the API server -- is not copied into an error (no upstream body
    reaches a status, an Event or an alert); the reason phrase stands in for it."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return None
    try:
        status = json.loads(body)
    except (ValueError, RecursionError):
        text = body.strip()
        return text if text in NO_ROUTE else None
    if (
        isinstance(status, dict)
        and status.get("kind") == "Status"
        and isinstance(status.get("message"), str)
    ):
        return str(status["message"])[:SERVER_MESSAGE_LIMIT]
    return None


def to_kube_error(exc: object) -> KubeError:
    """The product error for an exception of the ``kubernetes`` client (or its transport), or an
    answer shaped like one."""
    if isinstance(exc, KubeError):
        return exc
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status > 0:
        reason = str(getattr(exc, "reason", "") or "").strip()
        message = _server_message(getattr(exc, "body", None)) or reason or type(exc).__name__
        text = f"{status} {reason}: {message}" if reason and reason != message else message
        if status == 404:
            return NotFound(text if text.startswith("404") else f"404 {text}")
        if status == 403:
            return Forbidden(text if text.startswith("403") else f"403 {text}")
        if status == 409:
            return Conflict(text if text.startswith("409") else f"409 {text}")
        if status == 410:
            return expired(message)
        return KubeError(text if text.startswith(str(status)) else f"{status} {text}")
    name = type(exc).__name__
    if name == "ResourceNotFoundError":
        return KubeError(f"the API server does not serve this kind: {exc}")
    if name == "ConfigException":
        return KubeError(f"no usable Kubernetes configuration: {exc}")
    return KubeError(f"the API server is unreachable: {name}: {exc}")


MAX_RETRIES = 10
"""Retries of one request the server asked to retry (client-go's ``maxRetries``)."""


def retry_after(exc: object) -> float | None:
    """Seconds to wait before retrying, when the server asked for a retry; else None.

    As client-go does (``rest/request.go``, ``checkWait``, k8s.io/client-go v0.34): a 429, or a
    500-504, that carries a numeric ``Retry-After`` header. kube-apiserver sends one with 429
    "storage is (re)initializing" (a new CRD whose watch cache is filling, or a restart) and
    when API Priority and Fairness rejects a request.
    """
    status = getattr(exc, "status", None)
    if not isinstance(status, int) or not (status == 429 or 500 <= status <= 504):
        return None
    headers = getattr(exc, "headers", None) or {}
    try:
        seconds = float(headers.get("Retry-After", ""))
    except (TypeError, ValueError):
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
