"""Helpers for the local-stack tests: the demo spec, running ``canaryctl up``, tiny backends."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

from controlplane.proxying import bind_socket
from controlplane.spec.load import load_file
from controlplane.spec.models import ModelCanary

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "canary" / "local-demo.yml"
UP_VERB = ("controlplane.cli.up", "run a canary end to end on this machine")
# `python -c` program running `canaryctl up`, whether or not the dispatcher lists the verb yet.
UP_PROGRAM = (
    "import sys; from controlplane.cli import main; "
    f"main.VERBS.setdefault('up', {UP_VERB!r}); "
    "raise SystemExit(main.main(['up', *sys.argv[1:]]))"
)
PYTHON = sys.executable


def demo() -> ModelCanary:
    return load_file(DEMO)[0]


class Backend:
    """A real HTTP server on loopback answering every /v1 request with its name after ``delay``
    (streamed in ``chunks`` pieces), counting what it received."""

    def __init__(self, name: str, delay: float = 0.0, chunks: int = 1) -> None:
        self.name = name
        self.delay = delay
        self.chunks = chunks
        self.received = 0
        self.headers: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.received += 1
        self.headers.append(dict(request.headers))
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        for i in range(self.chunks):
            if self.delay:
                await asyncio.sleep(self.delay / self.chunks)
            await response.write(f"{self.name}:{i};".encode())
        await response.write_eof()
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = bind_socket()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
