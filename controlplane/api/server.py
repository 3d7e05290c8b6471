"""Serve an ASGI application with uvicorn on a background thread.

Owns :class:`ApiServer`, which runs the API beside the reconcile loop (and for the dashboard
verbs and the tests, on ``127.0.0.1:0``): ``start`` returns once the socket listens; ``stop``
ends the live streams through ``state.stop_hooks`` and shuts down gracefully.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from controlplane.errors import ControlPlaneError

GRACE_S = 2
"""The longest a stop waits for responses still running before they are cancelled."""


class ApiServer:
    """``app`` served on ``host:port`` (port 0: any free port) by uvicorn in a daemon thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.app = host, app
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise ControlPlaneError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACE_S,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="api", daemon=True
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> ApiServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ControlPlaneError(f"the API server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        state = getattr(self.app, "state", None)
        for hook in getattr(state, "stop_hooks", ()):
            hook()
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._sock.close()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
