"""Logging that shows no secret URL: the HTTP client libraries' loggers kept at WARNING.

httpx logs every request URL at INFO (a Slack webhook URL is a secret); httpcore and urllib3
log details at DEBUG. :func:`quiet_http_loggers` keeps :data:`HTTP_LOGGERS` at WARNING; it is
called where a process configures logging (``canaryctl controller``, the CLI's entry point,
:func:`controlplane.cli.cluster.connect`). See docs/security.md.
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
