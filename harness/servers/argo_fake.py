"""A small, real HTTP server on 127.0.0.1:0 speaking the Argo Server endpoints gates use.

``POST /api/v1/workflows/{namespace}`` creates a Workflow (409 with Argo's AlreadyExists message
when the name is taken) and ``GET /api/v1/workflows/{namespace}/{name}`` returns it, with its
``status`` taken from a per-workflow *script*: a list of ``(phase, message)`` steps, one consumed
per GET, the last one repeated (phase None: no ``status.phase`` at all, as Argo answers before
the controller picks the Workflow up; a script's key may be a part of the names it is for).

A Workflow whose template is in ``refuse`` is refused with that message: 404 (``code`` 5) when it
says "... not found", as the real Argo Server v3.7.3 refuses a missing WorkflowTemplate (the
contract tests of ``tests/controller/test_argo_real.py``), else 400 (``code`` 3).

``PUT /api/v1/workflows/{namespace}/{name}/stop`` stops it (every later GET answers ``Failed``,
as Argo's stop strategy ends a Workflow), or answers 500 with Argo's "cannot shutdown a
completed workflow" when it has finished (the script's step the next GET would serve is final:
it finished after the last GET); ``refuse_stops`` makes it answer 503.

``down`` makes every request answer 503 (an unreachable Argo Server behind a proxy);
:meth:`ArgoFake.stop` closes the socket (connection refused). Requests must carry
``Authorization: Bearer <token>``. ``requests`` records every request that arrived, whatever its
route: ``(method, path, Authorization header)``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Script = list[tuple[str | None, str]]

STARTED = "2026-11-02T10:00:00Z"
FINISHED = "2026-11-02T10:20:00Z"


@dataclass
class ArgoFake:
    token: str = "s3cret"
    default: Script = field(
        default_factory=lambda: [(None, ""), ("Running", ""), ("Succeeded", "")]
    )
    scripts: dict[str, Script] = field(default_factory=dict)
    workflows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    gets: list[tuple[str, str]] = field(default_factory=list)
    stops: list[tuple[str, str, str]] = field(default_factory=list)  # namespace, name, message
    refuse: dict[str, str] = field(default_factory=dict)  # template name -> 400 (404: not found)
    down: bool = False
    refuse_stops: bool = False  # PUT .../stop answers 503 (the rest works)
    unauthorized: int = 0
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._cursor: dict[tuple[str, str], int] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, name: str, steps: Script) -> None:
        with self.lock:
            self.scripts[name] = steps

    # ------------------------------------------------------------------ behaviour

    def create(self, namespace: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        workflow = body.get("workflow") or {}
        name = (workflow.get("metadata") or {}).get("name", "")
        with self.lock:
            self.posts.append((namespace, body))
            template = ((workflow.get("spec") or {}).get("workflowTemplateRef") or {}).get("name")
            if template in self.refuse:
                message = self.refuse[template]
                if message.endswith(" not found"):  # as the real Argo Server v3.7.3 answers
                    return 404, {"code": 5, "message": message}
                return 400, {"code": 3, "message": message}
            if (namespace, name) in self.workflows:
                message = f'workflows.argoproj.io "{name}" already exists'
                return 409, {"code": 6, "message": message}
            stored = json.loads(json.dumps(workflow))
            stored.setdefault("metadata", {})["namespace"] = namespace
            stored["metadata"]["uid"] = f"uid-{len(self.workflows) + 1}"
            self.workflows[(namespace, name)] = stored
            return 200, stored

    def get(self, namespace: str, name: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.gets.append((namespace, name))
            stored = self.workflows.get((namespace, name))
            if stored is None:
                message = f'workflows.argoproj.io "{name}" not found'
                return 404, {"code": 5, "message": message}
            steps = self._script_of(name)
            index = self._cursor.get((namespace, name), 0)
            self._cursor[(namespace, name)] = min(index + 1, len(steps) - 1)
            phase, message = steps[index]
            status: dict[str, Any] = {}
            if phase is not None:
                status["phase"] = phase
                if phase != "Pending":
                    status["startedAt"] = STARTED
                if phase in ("Succeeded", "Failed", "Error"):
                    status["finishedAt"] = FINISHED
            if message:
                status["message"] = message
            return 200, {**stored, "status": status}

    def _script_of(self, name: str) -> Script:
        """The Workflow's script: by its name, else the first whose key is part of the name
        (``-soak-`` for every run of gate ``soak``), else the default."""
        if name in self.scripts:
            return self.scripts[name]
        return next((v for k, v in self.scripts.items() if k in name), self.default)

    def stop_workflow(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            stored = self.workflows.get((namespace, name))
            if stored is None:
                message = f'workflows.argoproj.io "{name}" not found'
                return 404, {"code": 5, "message": message}
            if self.refuse_stops:
                return 503, {"code": 14, "message": "upstream connect error"}
            steps = self._script_of(name)
            now = steps[self._cursor.get((namespace, name), 0)][0]
            if now in ("Succeeded", "Failed", "Error"):
                return 500, {"code": 2, "message": "cannot shutdown a completed workflow"}
            self.stops.append((namespace, name, str(body.get("message") or "")))
            self.scripts[name] = [("Failed", "Stopped with strategy 'Stop'")]
            self._cursor[(namespace, name)] = 0
            return 200, stored

    def count_posts(self, name: str) -> int:
        return sum(1 for _, body in self.posts if body["workflow"]["metadata"]["name"] == name)


def _handler(fake: ArgoFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _guard(self) -> bool:
            with fake.lock:
                fake.requests.append((self.command, self.path, self.headers.get("Authorization")))
            if fake.down:
                self._answer(503, {"code": 14, "message": "upstream connect error"})
                return False
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                fake.unauthorized += 1
                self._answer(401, {"code": 16, "message": "token not valid"})
                return False
            return True

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            body: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
            return body

        def do_POST(self) -> None:
            body = self._body()
            if not self._guard():
                return
            parts = self.path.strip("/").split("/")
            if parts[:3] != ["api", "v1", "workflows"] or len(parts) != 4:
                self._answer(404, {"code": 5, "message": f"no route {self.path}"})
                return
            self._answer(*fake.create(parts[3], body))

        def do_PUT(self) -> None:
            body = self._body()
            if not self._guard():
                return
            parts = self.path.strip("/").split("/")
            if parts[:3] != ["api", "v1", "workflows"] or len(parts) != 6 or parts[5] != "stop":
                self._answer(404, {"code": 5, "message": f"no route {self.path}"})
                return
            self._answer(*fake.stop_workflow(parts[3], parts[4], body))

        def do_GET(self) -> None:
            if not self._guard():
                return
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[:3] != ["api", "v1", "workflows"] or len(parts) != 5:
                self._answer(404, {"code": 5, "message": f"no route {self.path}"})
                return
            self._answer(*fake.get(parts[3], parts[4]))

    return Handler


@contextmanager
def running_argo(**kwargs: Any) -> Iterator[ArgoFake]:
    fake = ArgoFake(**kwargs)
    try:
        yield fake
    finally:
        fake.stop()
