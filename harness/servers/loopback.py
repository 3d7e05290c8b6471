"""A real HTTP server on a loopback port, for the stand-ins of a remote API.

:func:`serving` runs a :class:`~http.server.BaseHTTPRequestHandler` class on ``127.0.0.1:0`` in a
thread and yields its base URL; the server is shut down and joined on exit.
:func:`scripted` is a handler that answers request by request as a :class:`Script` says (a status,
or the connection dropped unanswered), for clients that must ask again.
:func:`first_syn_dropped` serves JSON behind a listener that drops the first SYN it gets (the
API clients' connection retries, ``tests/kube``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROC_NET_TCP = Path("/proc/net/tcp")
SYN_SENT = "02"


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port; yields ``http://127.0.0.1:PORT``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Script:
    """What a :func:`scripted` handler answers, one step a request: ``"drop"`` closes the
    connection unanswered, a number is that HTTP status with ``body``. ``seen`` counts the
    requests."""

    steps: list[str]
    body: bytes = b"{}"
    seen: int = 0


def scripted(script: Script) -> type[BaseHTTPRequestHandler]:
    """A handler answering every GET and POST with the next step of ``script``."""

    class Scripted(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            script.seen += 1
            step = script.steps.pop(0)
            if step == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(int(step))
            self.send_header("Content-Length", str(len(script.body)))
            self.end_headers()
            self.wfile.write(script.body)

        do_GET = do_POST = answer

        def log_message(self, *args: Any) -> None:
            pass

    return Scripted


def syn_sent_to(port: int) -> bool:
    """A socket of this machine waits for the answer to its SYN to 127.0.0.1:``port``
    (``/proc/net/tcp``, Linux: state ``02``)."""
    want = f"0100007F:{port:04X}"
    for line in PROC_NET_TCP.read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == want and fields[3] == SYN_SENT:
            return True
    return False


@contextmanager
def first_syn_dropped(answer: Callable[[str], Any], drain: bool = True) -> Iterator[str]:
    """Serve ``answer(path)`` as JSON to every GET, behind a listener that drops the first SYN it
    gets, as a connect was dropped on this project's test machine. The listener's accept queue
    (``listen(0)``: room for one) is held full by a connection nobody accepts, so Linux drops a
    new SYN (``tcp_conn_request``: the accept queue is full). Once a connect waits in SYN_SENT,
    the queue is emptied and the server serves: the waiting connect's SYN goes again only after
    the kernel's initial RTO (1 s), so a client that gives up on it sooner and opens a new
    connection is served at once. With ``drain=False`` the queue stays full and every SYN is
    dropped: a client that tries one connection fails however late its timeout fires."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            body = json.dumps(answer(urlsplit(self.path).path)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class OneInQueue(HTTPServer):
        request_queue_size = 0

    server = OneInQueue(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    filler = socket.create_connection(("127.0.0.1", port))  # the one the queue has room for

    def serve() -> None:
        deadline = time.monotonic() + 60  # a guard against hanging the suite
        while not syn_sent_to(port) and time.monotonic() < deadline:
            time.sleep(0.01)
        filler.close()
        server.serve_forever(poll_interval=0.05)

    thread = threading.Thread(target=serve, daemon=True)
    if drain:
        thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        filler.close()
        if drain:
            server.shutdown()
            thread.join(10)
        server.server_close()
