"""A replica of ``canaryctl up``: one model server in an OS process of its own, run as a pod's.

Owns a replica's command line (:func:`serve_command`: what a pod of the variant runs, so its
scheduler and KV cache are sized as vLLM's) and its process (:class:`ServerProcess`: started and
stopped as the kubelet does, killed with ``canaryctl`` on Linux, failures with its last lines).
Called by :mod:`controlplane.local.stack`. See docs/local.md, "What runs".
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import re
import signal
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from controlplane.errors import ControlPlaneError
from controlplane.local.engines.base import EngineError
from controlplane.local.inject import Faults
from controlplane.local.server import ModelServer
from controlplane.profiles.catalog import Catalog
from controlplane.serving.chat_template import chat_template
from controlplane.serving.vllm_args import vllm_flags
from controlplane.spec.models import ModelCanary, VariantSpec

SERVE_MODULE = "controlplane.local.serve"
START_TIMEOUT_S = 120.0
"""How long a replica may take to listen (the transformers engine loads a model first)."""
STOP_GRACE_S = 10.0
"""How long a replica has to stop after SIGTERM before it is killed."""
TAIL_LINES = 40
_LISTENING = re.compile(r"running on (http://(\S+):(\d+))")
_ERROR = re.compile(rf"^{re.escape(f'python -m {SERVE_MODULE}')}: error: (.*)$")
"""The one line the serve process prints for a refusal (``serve.PROG``, then ``error:``)."""
PR_SET_PDEATHSIG = 1
"""``prctl``'s option (Linux ``include/uapi/linux/prctl.h``): the signal sent at the parent's
death."""


class LocalStackError(ControlPlaneError):
    """The local stack could not start or run (ports, processes, Prometheus targets)."""


class ReplicaServer(Protocol):
    """What the stack needs of a replica's server: where it listens, what it serves, its life."""

    url: str
    port: int

    @property
    def description(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class InProcess:
    """A model server in this process: the ``vllm`` engine's (one GPU, shared by the variants'
    engines, so not one process per replica)."""

    def __init__(self, server: ModelServer) -> None:
        self.server = server
        self.url = ""
        self.port = 0

    @property
    def description(self) -> str:
        return self.server.engine.description

    async def start(self) -> None:
        await self.server.start()
        self.url, self.port = self.server.url, self.server.port

    async def stop(self) -> None:
        await self.server.stop()


def hf_config(canary: ModelCanary) -> dict[str, int] | None:
    """The ``config.json`` fields that give vLLM the model's shape (``architecture``), or None
    without one: ``num_hidden_layers``, ``num_key_value_heads``, ``head_dim``."""
    arch = canary.spec.model.architecture
    if arch is None:
        return None
    return {
        "num_hidden_layers": arch.layers,
        "num_key_value_heads": arch.kv_heads,
        "num_attention_heads": arch.kv_heads,
        "head_dim": arch.head_dim,
    }


def serve_command(
    canary: ModelCanary,
    variant: VariantSpec,
    catalog: Catalog,
    *,
    engine: str,
    faults: Faults,
    seed: int,
    files: Path,
) -> list[str]:
    """The argv of one replica of ``variant`` (module docstring). ``files``: a folder for what
    the command reads (the chat template, the model's ``config.json``), written here."""
    model = canary.spec.model
    template: str | None = None
    if variant.system_prompt is not None:
        path = files / f"{variant.name}-chat-template.jinja"
        text = chat_template(variant.system_prompt, variant.storage_uri, path="systemPrompt")
        path.write_text(text, encoding="utf-8")
        template = str(path)
    argv = [
        sys.executable,
        "-m",
        SERVE_MODULE,
        variant.storage_uri.removeprefix("hf://"),
        f"--served-model-name={model.name}",
        *vllm_flags(model, variant, catalog, chat_template=template),
    ]
    shape = hf_config(canary)
    if shape is not None:
        folder = files / f"{variant.name}-config"
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_text(json.dumps(shape), encoding="utf-8")
        argv.append(f"--hf-config-path={folder}")
    argv += [
        f"--engine={engine}",
        f"--namespace={canary.metadata.namespace}",
        f"--canary={canary.metadata.name}",
        f"--variant={variant.name}",
        f"--simulated-gpu={variant.gpu}",
        f"--seed={seed}",
        "--host=127.0.0.1",
        "--port=0",
        *(f"--inject={text}" for text in faults.injections()),
    ]
    if model.parameters is not None:
        argv.append(f"--simulated-parameters={model.parameters!r}")
    return argv


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Ask Linux to send this process SIGTERM when its parent dies (``prctl``)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class ServerProcess:
    """One model server process: ``start()`` until it listens, then ``url`` / ``port``;
    ``stop()`` as a pod is stopped. ``description``: what it said it serves."""

    def __init__(self, argv: Sequence[str], name: str) -> None:
        self.argv = list(argv)
        self.name = name
        self.url = ""
        self.port = 0
        self._description = ""
        self.returncode: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._readers: list[asyncio.Task[None]] = []

    @property
    def description(self) -> str:
        """What it said it serves: the engine of its start-up line."""
        return self._description

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        """Start it and return once it listens (module docstring for the errors)."""
        self._process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        assert self._process.stdout is not None
        assert self._process.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self._process.stdout, listening)),
            asyncio.create_task(self._read(self._process.stderr, None)),
        ]
        exited = asyncio.create_task(self._process.wait())
        try:
            waiting: set[asyncio.Future[Any]] = {listening, exited}
            done, _ = await asyncio.wait(
                waiting, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
            if listening in done:
                self.url = listening.result()
                self.port = int(self.url.rsplit(":", 1)[1])
                return
            if exited in done:
                await asyncio.gather(*self._readers, return_exceptions=True)
                self.returncode = exited.result()
                raise self._failed(f"exited with status {self.returncode} before it listened")
            await self.stop()
            raise self._failed(f"did not listen within {START_TIMEOUT_S:g}s")
        finally:
            if not exited.done():
                exited.cancel()
            if not listening.done():
                listening.cancel()

    def _failed(self, what: str) -> Exception:
        refused = next((m.group(1) for line in self._tail if (m := _ERROR.match(line))), None)
        if refused is not None and self.returncode == 1:
            return EngineError(refused)
        lines = "\n".join(self._tail) or "(no output)"
        return LocalStackError(f"replica {self.name} {what}; its output ends with:\n{lines}")

    async def _read(
        self, stream: asyncio.StreamReader, listening: asyncio.Future[str] | None
    ) -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip()
            self._tail.append(line)
            if listening is None or listening.done():
                continue
            if line.startswith("INFO:     serving "):
                self._description = line.partition(" on ")[2].rpartition("; faults:")[0]
            found = _LISTENING.search(line)
            if found is not None:
                listening.set_result(found.group(1))

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`; returns once it has exited."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        self.returncode = process.returncode
        await asyncio.gather(*self._readers, return_exceptions=True)

    def output(self) -> list[str]:
        """Its last lines of output (stdout and stderr as they came)."""
        return list(self._tail)
