"""Logging that shows no secret URL: the HTTP client libraries' loggers kept at WARNING.

httpx logs every request at INFO as ``HTTP Request: POST <url> "HTTP/1.1 200 OK"``: for a Slack
alert the URL is the webhook, a secret read from the tenant's Secret; for the git hosts' APIs and
Alertmanager it may carry credentials. httpcore logs connection details at DEBUG, and urllib3
(under requests: Prometheus, the Argo Server) logs each request's path and query at DEBUG.
:func:`quiet_http_loggers` sets these loggers to WARNING, so a controller running at
``--log-level INFO`` (or DEBUG) logs none of those lines; their warnings and errors still show.

Owns :data:`HTTP_LOGGERS` and :func:`quiet_http_loggers`. Called once where a process configures
logging: ``canaryctl controller`` (:mod:`controlplane.cli.controller`), the command line's entry
point (:mod:`controlplane.cli.main`) for every verb that may reach an HTTP client library (a verb
module setting ``USES_HTTP_LIBRARIES = False`` says it does not), and
:func:`controlplane.cli.cluster.connect` before it loads the Kubernetes client. Imports nothing but
:mod:`logging`.
"""

from __future__ import annotations

import logging

HTTP_LOGGERS: tuple[str, ...] = ("httpx", "httpcore", "urllib3", "hpack")
"""The loggers of the HTTP client libraries (``hpack``: httpx's HTTP/2 header codec)."""


def quiet_http_loggers() -> None:
    """Set every logger of :data:`HTTP_LOGGERS` to WARNING: no request URLs in the log at INFO
    or DEBUG. Idempotent; the root logger's level and handlers are left alone."""
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
