"""The ``vllm`` engine: a ``vllm serve`` process per variant, behind the local model server.

Owns launching and stopping ``vllm serve`` with the flags the controller renders, GPU memory
capped so both variants fit on one GPU; the server in front still measures and injects faults.
:meth:`VllmEngine.start` refuses without ``vllm`` and an NVIDIA GPU. Not exercised by CI. See
docs/local.md, "Engines".
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator

import aiohttp

from controlplane.local.engines.base import Chunk, EngineError, EngineKind, Generation, HostClock
from controlplane.profiles.catalog import Catalog
from controlplane.serving.vllm_args import vllm_flags
from controlplane.spec.models import ModelSpec, VariantSpec

READY_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 20.0


def gpu_present() -> bool:
    """True when ``nvidia-smi -L`` lists at least one GPU."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def model_location(storage_uri: str) -> str:
    """What ``vllm serve`` takes: ``hf://org/name`` -> ``org/name``; paths unchanged."""
    return storage_uri.removeprefix("hf://")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class VllmEngine:
    """One ``vllm serve`` process; generation through its OpenAI API."""

    kind: EngineKind = "vllm"
    clock: HostClock = HostClock()
    """Real inference: the host's time is the model's."""

    def __init__(
        self, model: ModelSpec, variant: VariantSpec, catalog: Catalog, gpu_share: float = 0.45
    ) -> None:
        self.model = model
        self.variant = variant.model_copy(
            update={"gpu_memory_utilization": min(variant.gpu_memory_utilization, gpu_share)}
        )
        self.flags = vllm_flags(model, self.variant, catalog, path=f"spec.{variant.name}")
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._load = 0.0
        self._in_flight = 0

    @property
    def description(self) -> str:
        return f"vllm serve {model_location(self.variant.storage_uri)} {' '.join(self.flags)}"

    def command(self, exe: str = "vllm") -> list[str]:
        return [
            exe,
            "serve",
            model_location(self.variant.storage_uri),
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--served-model-name={self.model.name}",
            *self.flags,
        ]

    async def start(self) -> None:
        exe = shutil.which("vllm")
        if exe is None:
            raise EngineError("--engine vllm needs the `vllm` command (pip install vllm)")
        if not await asyncio.to_thread(gpu_present):
            raise EngineError("--engine vllm needs an NVIDIA GPU (nvidia-smi lists none)")
        self.port = _free_port()
        self._process = subprocess.Popen(
            self.command(exe),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EngineError(f"vllm serve exited with {self._process.returncode}")
            try:
                async with self._session.get(f"http://127.0.0.1:{self.port}/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(1.0)
        await self.stop()
        raise EngineError(f"vllm serve was not ready after {READY_TIMEOUT_S:g}s")

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # vLLM starts worker processes of its own
            try:
                await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                await asyncio.to_thread(process.wait)

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # an estimate; vLLM's own count is in its usage block

    def load(self) -> float:
        return self._load

    def abort_all(self) -> None:
        """Nothing to do: the real vLLM process aborts its own requests when it is stopped."""

    def running(self) -> int:
        return self._in_flight  # requests forwarded and not yet answered

    def waiting(self) -> int:
        return 0  # vLLM's own queue is in its /metrics, which this engine does not read

    async def generate(self, request: Generation) -> AsyncIterator[Chunk]:
        if self._session is None:
            raise EngineError("vllm engine is not started")
        body = {
            "model": self.model.name,
            "prompt": (
                list(request.prompt_token_ids)
                if request.prompt_token_ids is not None
                else request.prompt
            ),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
        }
        url = f"http://127.0.0.1:{self.port}/v1/completions"
        self._in_flight += 1
        try:
            async with self._session.post(url, json=body) as response:
                if response.status != 200:
                    raise EngineError(f"vllm answered HTTP {response.status}")
                async for raw in response.content:
                    line = raw.decode(errors="replace").strip()
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    choice = json.loads(line[6:])["choices"][0]
                    reason = choice.get("finish_reason")
                    yield Chunk(
                        choice.get("text", ""),
                        1,
                        "length" if reason == "length" else ("stop" if reason else None),
                    )
        except aiohttp.ClientError as exc:
            raise EngineError(f"vllm request failed: {exc}") from exc
        finally:
            self._in_flight -= 1
