"""A hostile "Prometheus" on a loopback port: the answers a tenant-chosen URL may give.

:func:`hostile` serves one of these to every query (instant queries come as a POST form, range
queries as a GET), on ``127.0.0.1`` through :func:`harness.servers.loopback.serving`:

- ``huge``: HTTP 200 with Prometheus-shaped JSON of about 55 MB (a matrix of seven million
  ``[1,"1"]`` samples, the shape that costs most memory once parsed), close-delimited (no
  ``Content-Length``, so only a streamed byte cap stops it);
- ``huge-declared``: the same with its ``Content-Length``;
- ``deep``: HTTP 200 with a JSON array nested 200,000 deep;
- ``forbidden``: HTTP 403 whose text body carries :data:`SECRET` (what an internal admin page
  would show), 600 characters long;
- ``forbidden-json``: the same 403 body as JSON that is not Prometheus' error shape;
- ``ok-secret``: HTTP 200 with Prometheus' success shape whose ``result`` is a string holding
  :data:`SECRET`;
- ``prom-error``: HTTP 400 with Prometheus' own error JSON (``bad_data``), its error text 400
  characters long.

``Hostile.hits`` counts the requests answered.
"""

from __future__ import annotations

import http.server
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

from harness.servers.loopback import serving

SECRET = "TOP-SECRET-ADMIN-PAGE"
HUGE_SAMPLES = 7_000_000
DEEP = 200_000
MODES = (
    "huge",
    "huge-declared",
    "deep",
    "forbidden",
    "forbidden-json",
    "ok-secret",
    "prom-error",
)


def huge_answer(samples: int = HUGE_SAMPLES) -> bytes:
    """A Prometheus matrix answer of ``samples`` one-byte samples (8 bytes each)."""
    head = b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":['
    return head + b'[1,"1"],' * (samples - 1) + b'[1,"1"]]}]}}'


def deep_answer(depth: int = DEEP) -> bytes:
    return b"[" * depth + b"]" * depth


def secret_page() -> str:
    """600 characters of an admin page that must never reach a tenant."""
    line = f"{SECRET}: db password hunter2; "
    return (line * (600 // len(line) + 1))[:600]


PROM_ERROR_TEXT = "1:5: parse error: unclosed left parenthesis " + "x" * 356


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    declared: bool = True


def answer(mode: str) -> _Answer:
    if mode == "huge":
        return _Answer(200, huge_answer(), declared=False)
    if mode == "huge-declared":
        return _Answer(200, huge_answer())
    if mode == "deep":
        return _Answer(200, deep_answer())
    if mode == "forbidden":
        return _Answer(403, secret_page().encode(), "text/html")
    if mode == "forbidden-json":
        return _Answer(403, json.dumps({"message": secret_page()}).encode())
    if mode == "ok-secret":
        body = {"status": "success", "data": {"resultType": "vector", "result": secret_page()}}
        return _Answer(200, json.dumps(body).encode())
    if mode == "prom-error":
        body = {"status": "error", "errorType": "bad_data", "error": PROM_ERROR_TEXT}
        return _Answer(400, json.dumps(body).encode())
    raise ValueError(f"unknown mode {mode!r}")


@dataclass
class Hostile:
    url: str
    mode: str
    hits: list[str] = field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    the: ClassVar[_Answer]
    record: ClassVar[list[str]]

    def _answer(self) -> None:
        self.record.append(f"{self.command} {self.path.split('?', 1)[0]}")
        self.send_response(self.the.status)
        self.send_header("Content-Type", self.the.content_type)
        if self.the.declared:
            self.send_header("Content-Length", str(len(self.the.body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            view = memoryview(self.the.body)
            for at in range(0, len(view), 1 << 20):
                self.wfile.write(view[at : at + (1 << 20)])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what a capped reader does

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def hostile(mode: str) -> Iterator[Hostile]:
    """Serve ``mode``'s answer to every request; yields the server's URL and its hits."""
    hits: list[str] = []
    handler = type("Handler", (_Handler,), {"the": answer(mode), "record": hits})
    with serving(handler) as url:
        yield Hostile(url, mode, hits)
