"""Real HTTP servers on 127.0.0.1:0 for the gitops tests.

- :class:`ApiServer` stands in for the GitHub / GitLab REST API: it records every request (method,
  path, headers, JSON body) and answers from a queue of scripted responses.
- :func:`git_http_server` serves bare repositories over git's smart HTTP protocol, on TLS,
  through the real ``git http-backend`` (CGI), requiring HTTP basic auth with one user name and
  token (:mod:`support.git_https`).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from support.git_https import serving


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class ApiServer:
    """Records requests; answers with ``responses`` (status, JSON) in order, then 201 ``{}``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.responses: deque[tuple[int, Any]] = deque()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                outer.requests.append(
                    Recorded(
                        "POST",
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        json.loads(raw or b"null"),
                    )
                )
                status, body = outer.responses.popleft() if outer.responses else (201, {})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> ApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def git_http_server(root: Path, username: str, token: str) -> Iterator[tuple[str, list[str]]]:
    """Serve the bare repositories under ``root`` at ``https://127.0.0.1:PORT/`` (TLS: the
    product takes no plain-http git URL), asking for basic auth as ``username`` / ``token``;
    yields the base URL and the list of Authorization outcomes ("ok" / "denied") for each
    request (:func:`support.git_https.serving`)."""
    with serving(root, username, token) as (url, outcomes):
        yield url, outcomes
