"""HTTP proxy plumbing shared by the local router and the pairer.

Owns what any of this package's HTTP proxies needs below its own logic: a listening socket bound
before its port is read back (:func:`bind_socket`, no race between choosing and binding), the
headers that belong to one hop and are not forwarded (:func:`end_to_end`), and an upstream's
answer streamed back as it comes (:func:`answer_from`, then :func:`relay`). Called by
:mod:`controlplane.local.server`, :mod:`controlplane.local.router` and
:mod:`controlplane.pairing.pairer`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping

import aiohttp
from aiohttp import web

LOOPBACK = "127.0.0.1"
HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    }
)
"""Headers that belong to one hop (RFC 9110 section 7.6.1), or that aiohttp recomputes for the
next one (``host``, ``content-length``, ``content-encoding``)."""


def end_to_end(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers of ``headers`` (its ``items()``) a proxy forwards."""
    return {k: v for k, v in headers if k.lower() not in HOP_HEADERS}


def bind_socket(host: str = LOOPBACK, port: int = 0) -> socket.socket:
    """A listening-ready socket on ``host``: ``port``, by default a free loopback port (no race
    between choosing and binding). An IPv6 address (``::``) binds IPv6; OSError when it cannot."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def answer_from(
    request: web.Request, upstream: aiohttp.ClientResponse, extra: Mapping[str, str] | None = None
) -> web.StreamResponse:
    """The client's answer to ``request``, begun: the upstream's status and end-to-end headers
    (and ``extra``), sent. Once it is begun, a failure can only cut it."""
    headers = end_to_end(upstream.headers.items()) | dict(extra or {})
    response = web.StreamResponse(status=upstream.status, headers=headers)
    await response.prepare(request)
    return response


async def relay(upstream: aiohttp.ClientResponse, response: web.StreamResponse) -> None:
    """The upstream's body written to the begun ``response`` as it arrives, then its end."""
    async for data in upstream.content.iter_any():
        await response.write(data)
    await response.write_eof()
