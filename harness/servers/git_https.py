"""Loopback HTTPS git hosts for the tests: git's own smart-HTTP server behind TLS.

The product reads and pushes only ``https://``, ``ssh://`` and ``user@host:path`` remotes
(:mod:`controlplane.spec.git_url`), so the tests reach their bare repositories as a git host
serves them: ``git http-backend`` (fetch and push, the protocol a real host speaks) as a CGI
behind a TLS server whose throwaway self-signed certificate ``openssl`` makes once per test
process. git trusts it through ``GIT_SSL_CAINFO`` in the test process's environment, which every
git the product runs inherits: what an administrator with a private CA sets on the controller
too, no seam in the product.

- :func:`url_of`: ``https://127.0.0.1:PORT/<absolute path>`` of a bare repository on the
  process's shared host (no authentication), started on first use.
- :func:`serving`: a host of its own for the bare repositories under a root, optionally asking
  for HTTP basic auth with one user name and token (and recording each request's outcome).
"""

from __future__ import annotations

import atexit
import base64
import os
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote, unquote, urlsplit

_LOCK = threading.Lock()
_SHARED_LOCK = threading.Lock()
_CERT: tuple[Path, Path] | None = None
_SHARED: tuple[ThreadingHTTPServer, str] | None = None


def certificate() -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, made once per process; git trusts the certificate
    from then on (``GIT_SSL_CAINFO``)."""
    global _CERT
    with _LOCK:
        if _CERT is None:
            folder = Path(tempfile.mkdtemp(prefix="git-https-"))
            cert, key = folder / "cert.pem", folder / "key.pem"
            command = [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
                *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
                *("-keyout", str(key), "-out", str(cert)),
            ]
            subprocess.run(command, check=True, capture_output=True)
            os.environ["GIT_SSL_CAINFO"] = str(cert)
            _CERT = (cert, key)
        return _CERT


class _Backend(BaseHTTPRequestHandler):
    """``git http-backend`` for one request; the subclass of :func:`_handler` sets the root,
    the expected Authorization and where outcomes go."""

    protocol_version = "HTTP/1.1"
    root = "/"
    expected: str | None = None
    outcomes: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _serve(self) -> None:
        body = self._body() if self.command == "POST" else b""
        if self.expected is not None:
            if self.headers.get("Authorization") != self.expected:
                self.outcomes.append("denied")
                self._reply(401, [("WWW-Authenticate", 'Basic realm="git"')], b"")
                return
            self.outcomes.append("ok")
        parts = urlsplit(self.path)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "REMOTE_USER": "tester",  # http-backend takes pushes from a known user only
            "REMOTE_ADDR": self.client_address[0],
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(parts.path),
            "QUERY_STRING": parts.query,
            "CONTENT_TYPE": self.headers.get("Content-Type") or "",
            "CONTENT_LENGTH": str(len(body)),
        }
        for header, var in (
            ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
            ("Git-Protocol", "GIT_PROTOCOL"),
        ):
            if self.headers.get(header):
                env[var] = self.headers[header]
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, sep, payload = done.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = done.stdout.partition(b"\n\n")
        if not sep:
            self._reply(500, [], done.stderr)
            return
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self._reply(status, headers, payload)


def _start(root: Path, expected: str | None, outcomes: list[str]) -> ThreadingHTTPServer:
    cert, key = certificate()
    handler = type(
        "Backend", (_Backend,), {"root": str(root), "expected": expected, "outcomes": outcomes}
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def _base(server: ThreadingHTTPServer) -> str:
    return f"https://127.0.0.1:{server.server_address[1]}"


@contextmanager
def serving(root: Path, username: str, token: str) -> Iterator[tuple[str, list[str]]]:
    """Serve the bare repositories under ``root`` at ``https://127.0.0.1:PORT/``, asking for
    basic auth as ``username`` / ``token``; yields the base URL and each request's outcome
    ("ok" / "denied")."""
    expected = "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()
    outcomes: list[str] = []
    server = _start(root, expected, outcomes)
    try:
        yield _base(server), outcomes
    finally:
        server.shutdown()
        server.server_close()


def url_of(bare: Path) -> str:
    """``https://`` URL of the bare repository ``bare`` on the process's shared git host."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            server = _start(Path("/"), None, [])
            atexit.register(server.shutdown)
            _SHARED = (server, _base(server))
        base = _SHARED[1]
    return f"{base}{quote(str(bare.resolve()))}"
