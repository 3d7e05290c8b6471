"""Profiling a served variant through its OpenAI-compatible endpoint (vLLM, KServe, ``up``).

Owns the client side of ``canaryctl profile --endpoint URL``: concurrent streamed completions
timed per request, the KV-cache peak from ``/metrics``, vLLM's version and, with ``pynvml``, GPU
readings. ``ignore_eos: true`` makes vLLM answer exactly ``max_tokens`` (vLLM 0.24.0 / 0.33.0,
``vllm/entrypoints/openai/completion/protocol.py``). Called by :mod:`controlplane.cli.profile`.
What is measured: docs/profiles.md, "Measured profiles: ``canaryctl profile``".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from controlplane.errors import ControlPlaneError
from controlplane.profiles.measured import RequestSample

_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "tired",
    "owls",
    "watch",
    "quietly",
]


class EndpointError(ControlPlaneError):
    """The endpoint cannot be profiled (unreachable, wrong model, every request failed)."""


@dataclass
class PointResult:
    """The raw outcome of one concurrency point."""

    samples: list[RequestSample]
    duration_s: float
    kv_cache_usage_max: float | None = None
    prompt_tokens: list[int] = field(default_factory=list)


def prompt_of(tokens: int, salt: int) -> str:
    """A prompt of about ``tokens`` tokens (one common word each), different per ``salt`` so no
    prefix cache turns the sweep into cache hits."""
    words = [f"r{salt}"] + [_WORDS[(salt + i) % len(_WORDS)] for i in range(max(tokens - 1, 0))]
    return " ".join(words)


async def engine_of(session: aiohttp.ClientSession, base: str) -> tuple[str, str | None]:
    """(engine name, version): vLLM's ``/version``, or the local stack's engine header."""
    name, version = "openai-compatible", None
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        async with session.get(f"{base}/version") as r:
            if r.status == 200:
                data = await r.json(content_type=None)
                if isinstance(data, dict) and isinstance(data.get("version"), str):
                    name, version = "vllm", data["version"]
    if name != "vllm":
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with session.get(f"{base}/health") as r:
                local = r.headers.get("x-controlplane-engine")
                if local:
                    name = f"controlplane-local ({local} engine)"
    return name, version


async def _kv_usage(session: aiohttp.ClientSession, base: str) -> float | None:
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
        async with session.get(f"{base}/metrics") as r:
            if r.status != 200:
                return None
            found = None
            for line in (await r.text()).splitlines():
                if line.startswith(("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")):
                    with contextlib.suppress(ValueError, IndexError):
                        value = float(line.rsplit(" ", 1)[1])
                        found = value if found is None else max(found, value)
            return found
    return None


async def _one(
    session: aiohttp.ClientSession, base: str, model: str, prompt: str, output_len: int
) -> tuple[RequestSample, int | None]:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": output_len,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first: float | None = None
    last = start
    chunks = 0
    usage: dict[str, int] = {}
    try:
        async with session.post(f"{base}/v1/completions", json=body) as r:
            if r.status != 200:
                text = (await r.text())[:200]
                return RequestSample(
                    None, time.perf_counter() - start, 0, (), f"{r.status}: {text}"
                ), None
            async for raw in r.content:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                msg = json.loads(data)
                if "error" in msg:
                    err = str(msg["error"])[:200]
                    return RequestSample(None, time.perf_counter() - start, 0, (), err), None
                if isinstance(msg.get("usage"), dict):
                    usage = msg["usage"]
                for choice in msg.get("choices") or []:
                    if choice.get("text"):
                        now = time.perf_counter()
                        first = now if first is None else first
                        last = now
                        chunks += 1
    except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError) as exc:
        return RequestSample(None, time.perf_counter() - start, 0, (), str(exc) or "error"), None
    end = time.perf_counter()
    tokens = int(usage.get("completion_tokens", chunks))
    gaps: tuple[float, ...] = ()
    if first is not None and tokens > 1:
        gaps = ((last - first) / (tokens - 1),) * (tokens - 1)
    ttft = None if first is None else first - start
    prompt_tokens = usage.get("prompt_tokens")
    return RequestSample(ttft, end - start, tokens, gaps), prompt_tokens


async def run_point(
    base: str,
    model: str,
    *,
    concurrency: int,
    requests: int,
    input_len: int,
    output_len: int,
    timeout_s: float = 600.0,
    on_done: Callable[[int], None] | None = None,
) -> PointResult:
    """Send ``requests`` requests, ``concurrency`` at a time; time each."""
    base = base.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        queue = list(range(requests))
        samples: list[RequestSample] = []
        prompt_tokens: list[int] = []
        peak: list[float] = []

        async def worker() -> None:
            while queue:
                salt = queue.pop()
                sample, used = await _one(
                    session, base, model, prompt_of(input_len, salt), output_len
                )
                samples.append(sample)
                if used is not None:
                    prompt_tokens.append(int(used))
                if on_done is not None:
                    on_done(len(samples))

        async def watch() -> None:
            while True:
                usage = await _kv_usage(session, base)
                if usage is not None:
                    peak.append(usage)
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watch())
        start = time.perf_counter()
        try:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        duration = time.perf_counter() - start
        usage = await _kv_usage(session, base)
        if usage is not None:
            peak.append(usage)
    return PointResult(samples, duration, max(peak) if peak else None, prompt_tokens)


CHECK_TRIES = 3
CHECK_PAUSE_S = 1.0
""":func:`check` asks again what the network lost (a connection not made, dropped, or a proxy's
502, 503 or 504): three tries, ``CHECK_PAUSE_S`` and then twice that apart. A Service whose
only pod is briefly unready refuses connections (kube-proxy rejects them) and heals in seconds;
an endpoint that answers otherwise, or times out, is taken at its word at once. The evaluation
step of ``manifests/argo/llm-regression-eval.yaml`` asks its engines by the same rule."""
PASSING_STATUS = frozenset({502, 503, 504})


async def check(base: str, model: str, pause_s: float = CHECK_PAUSE_S) -> tuple[str, str | None]:
    """(engine, version) of the endpoint; EndpointError when it does not serve ``model`` or
    cannot be reached in :data:`CHECK_TRIES` tries."""
    base = base.rstrip("/")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for attempt in range(CHECK_TRIES):
            last = attempt + 1 == CHECK_TRIES
            try:
                async with session.get(f"{base}/v1/models") as r:
                    if r.status in PASSING_STATUS and not last:
                        await asyncio.sleep(pause_s * 2**attempt)
                        continue
                    if r.status != 200:
                        raise EndpointError(f"{base}/v1/models answered HTTP {r.status}")
                    data = await r.json(content_type=None)
                    break
            except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
                if last:
                    raise EndpointError(f"{base}: cannot reach the endpoint: {exc}") from None
                await asyncio.sleep(pause_s * 2**attempt)
            except (TimeoutError, aiohttp.ClientError) as exc:
                reason = exc or type(exc).__name__
                raise EndpointError(f"{base}: cannot reach the endpoint: {reason}") from None
        ids = [m.get("id") for m in data.get("data", []) if isinstance(m, dict)]
        if model not in ids:
            raise EndpointError(
                f"{base} does not serve model {model!r} (it serves: {', '.join(map(str, ids))})"
            )
        return await engine_of(session, base)


def nvml_figures() -> tuple[float | None, float | None, str | None]:
    """(GPU memory used GiB, utilisation 0-1, device name) of GPU 0 via NVML; Nones without it."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None, None, None
    try:  # pragma: no cover - needs an NVIDIA GPU and pynvml
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        util = pynvml.nvmlDeviceGetUtilizationRates(handle)
        name = pynvml.nvmlDeviceGetName(handle)
        return mem.used / 2**30, util.gpu / 100, str(name)
    except Exception:  # pragma: no cover - NVML present but no GPU
        return None, None, None
