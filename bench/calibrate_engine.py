"""The simulated engine calibrated against the real vLLM: its speed model fitted to measured TTFT
and ITL at several loads on this machine, and the residuals.

Owns the "## The simulated engine, calibrated" section of ``docs/benchmarks-derivation.md``.

Design (written before the code; the two changes the first runs forced are marked *changed*):

- **The real engine.** vLLM 0.32.0's CPU build (``make vllm``) serves the tiny Llama of
  ``harness/tiny_model.py`` (:func:`harness.vllm_cpu.cached_tiny_model`: 2 layers, hidden 128)
  through its own OpenAI server, float32 and eager, with the batch limits given as flags
  (``--max-num-seqs 256 --max-num-batched-tokens 2048``, the simulated engine's defaults) so
  both schedule under the same limits.
- **The loads.** Closed loop: ``c`` clients, each sending its next request when its last one
  ended. Each load is a pair (clients, prompt tokens): 1, 2, 4 and 8 clients with 32-token
  prompts, 1 and 2 clients with 512-token prompts (two prompt lengths separate the cost of a
  prompt token from the fixed cost before the first token). Every request is a streaming
  ``/v1/completions`` of fixed token ids (no tokenizer in the way), ``max_tokens`` 128 with
  ``ignore_eos`` (every answer exactly that long) at temperature 0. Each client's first request
  at each load is a warm-up, left out; ``--requests`` measured requests per load.
- **What is measured.** vLLM's own ``vllm:time_to_first_token_seconds`` and
  ``vllm:inter_token_latency_seconds``, sum over count between scrapes before and after each
  load: the engine's mean TTFT and ITL, the reference; and the batch the engine really ran, by
  Little's law (requests per second of the load times a request's time in the engine by those
  means; sampling ``vllm:num_requests_running`` read 0 while requests ran, the scrape waiting
  on the API server's busy loop). Beside them the client's TTFT and ITL (p50, p90, mean).
  *Changed*: the client's figures were to be the reference (32-token answers). On this 2-core
  machine the engine steps in about 1 ms, and the API server and the client, sharing the cores,
  deliver a stream in bursts: the client's TTFT was 40 to 300 ms where vLLM's was 3 ms, its ITL
  mostly 0. They are shown, not fitted.
- **The simulated engine.** :class:`~controlplane.local.engines.simulated.SimulatedEngine` on a
  virtual host clock (every wait ends at its deadline; no wall clock, so a busy machine does not
  change its figures), with the same clients, prompts, lengths and warm-ups, its default jitter
  and a fixed seed. *Changed*: 8 clients kept 3 to 4 requests running, not 8 (the clients and
  the API server are slower than the engine), so each simulated client waits, between two
  requests, the time that gives the real mean batch (:func:`think_time`).
- **The fit.** The speed model's four numbers: ``decode_s_per_token`` (a step of one request),
  ``batch_slowdown`` (what each other request in a step adds, as a share of it),
  ``prefill_s_per_token`` and ``overhead_s`` (before the queue). Least squares on the logarithm
  of simulated / real of the mean TTFT and the mean ITL at every load (scipy's
  ``least_squares`` over the logarithms of the parameters, the simulated engine as the model),
  from the closed-form guess of a lone request. The same fit with ``batch_slowdown`` held at the
  engine's default (:data:`BATCH_SLOWDOWN`) shows what the batch term buys.
- **What counts as a fit.** Every mean (TTFT and ITL, every load) of the simulated engine within
  ±15 % of vLLM's.

Run ``python bench/calibrate_engine.py`` (about 2 minutes of the real engine on 2 cores and a
minute of fitting; on a shared machine under ``flock`` with the other real-engine jobs);
``--json FILE`` keeps the measurements, ``--report FILE`` fits and renders kept ones without the
real engine, ``--no-write`` prints only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

try:
    from bench.common import add_record_args, machine_summary, publish, today
except ImportError:  # run as a script: bench/ is on sys.path
    from common import add_record_args, machine_summary, publish, today  # type: ignore[no-redef]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: harness/

from controlplane.local.engines.base import Generation, ModelClock
from controlplane.local.engines.simulated import BATCH_SLOWDOWN, SimulatedEngine, Speed
from harness.virtual_host import VirtualHost

SECTION = "## The simulated engine, calibrated"
COMMAND = "python bench/calibrate_engine.py"
LOADS: tuple[tuple[int, int], ...] = ((1, 32), (2, 32), (4, 32), (8, 32), (1, 512), (2, 512))
"""(clients, prompt tokens) of each load."""
MAX_TOKENS = 128
REQUESTS = 32
"""Measured requests per load (after each client's warm-up)."""
FLAGS = ("--max-num-seqs", "256", "--max-num-batched-tokens", "2048", "--max-model-len", "1024")
TOLERANCE = 0.15
"""A fit: every median within this share of the real engine's."""
SEED = 7
JITTER = Speed(1.0, 0.0, 1.0).jitter_sigma
"""The simulated engine's default jitter (a lognormal sigma per step), as it runs in the demo."""


@dataclass(frozen=True)
class Observed:
    """What one load gave: every measured request's TTFT and every token's ITL, in seconds."""

    clients: int
    prompt_tokens: int
    ttft: tuple[float, ...]
    itl: tuple[float, ...]
    engine_ttft_mean: float | None = None
    engine_itl_mean: float | None = None
    engine_running_mean: float | None = None
    """Requests in the engine on average (Little's law: requests finished per second of the load
    times a request's time in the engine by vLLM's means): the batch vLLM ran."""

    def to_json(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "promptTokens": self.prompt_tokens,
            "ttft": list(self.ttft),
            "itl": list(self.itl),
            "engineTtftMean": self.engine_ttft_mean,
            "engineItlMean": self.engine_itl_mean,
            "engineRunningMean": self.engine_running_mean,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Observed:
        return cls(
            data["clients"],
            data["promptTokens"],
            tuple(data["ttft"]),
            tuple(data["itl"]),
            data.get("engineTtftMean"),
            data.get("engineItlMean"),
            data.get("engineRunningMean"),
        )


@dataclass(frozen=True)
class Params:
    """The speed model's numbers the fit sets (seconds; ``batch_slowdown`` a share)."""

    decode_s_per_token: float
    batch_slowdown: float
    prefill_s_per_token: float
    overhead_s: float

    def speed(self, jitter_sigma: float = JITTER) -> Speed:
        return Speed(
            decode_s_per_token=self.decode_s_per_token,
            prefill_s_per_token=self.prefill_s_per_token,
            kv_capacity_tokens=1e6,
            overhead_s=self.overhead_s,
            batch_slowdown=self.batch_slowdown,
            jitter_sigma=jitter_sigma,
            max_num_seqs=256,
            max_num_batched_tokens=2048,
        )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1), linear between order statistics (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _prompt(tokens: int) -> list[int]:
    """Fixed token ids (the tiny model's vocabulary is 361 ids; 0-2 are special)."""
    return [3 + (7 * i) % 350 for i in range(tokens)]


# ----------------------------------------------------------------------------- the real engine


async def _stream(session: Any, url: str, prompt: list[int]) -> tuple[float, list[float]]:
    """One streaming completion: its TTFT and the ITL of each later token (client's clock)."""
    body = {
        "model": "tiny",
        "prompt": prompt,
        "max_tokens": MAX_TOKENS,
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }
    sent = time.monotonic()
    ttft: float | None = None
    last = sent
    seen = 0
    gaps: list[float] = []
    async with session.post(f"{url}/v1/completions", json=body) as answer:
        answer.raise_for_status()
        async for raw in answer.content:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            usage = event.get("usage") or {}
            count = usage.get("completion_tokens")
            if count is None:
                count = seen + (1 if event.get("choices") else 0)
            new = count - seen
            if new <= 0:
                continue
            now = time.monotonic()
            if ttft is None:
                ttft = now - sent
                new -= 1
            if new > 0:
                gaps += [(now - last) / new] * new
            seen, last = count, now
    if ttft is None or seen != MAX_TOKENS:
        raise RuntimeError(f"expected {MAX_TOKENS} tokens, got {seen}")
    return ttft, gaps


def _engine_sums(text: str) -> dict[str, float]:
    """The ``_sum`` and ``_count`` of vLLM's TTFT and ITL histograms, summed over labels."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        for name in ("vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds"):
            for part in ("_sum", "_count"):
                if line.startswith((name + part + "{", name + part + " ")):
                    key = name + part
                    found[key] = found.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


async def _measure_load(url: str, clients: int, prompt_tokens: int, requests: int) -> Observed:
    import aiohttp

    prompt = _prompt(prompt_tokens)
    each = math.ceil(requests / clients)
    ttfts: list[float] = []
    itls: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:

        async def client() -> None:
            await _stream(session, url, prompt)  # warm-up, left out
            for _ in range(each):
                ttft, gaps = await _stream(session, url, prompt)
                ttfts.append(ttft)
                itls.extend(gaps)

        async def scrape() -> dict[str, float]:
            async with session.get(f"{url}/metrics") as answer:
                return _engine_sums(await answer.text())

        before = await scrape()
        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.monotonic() - started
        after = await scrape()

    def mean(name: str) -> float | None:
        count = after.get(name + "_count", 0.0) - before.get(name + "_count", 0.0)
        total = after.get(name + "_sum", 0.0) - before.get(name + "_sum", 0.0)
        return total / count if count else None

    ttft, itl = mean("vllm:time_to_first_token_seconds"), mean("vllm:inter_token_latency_seconds")
    running = None
    if ttft is not None and itl is not None:
        busy = ttft + (MAX_TOKENS - 1) * itl
        running = clients * (each + 1) * busy / wall  # every request, the warm-ups included
    return Observed(clients, prompt_tokens, tuple(ttfts), tuple(itls), ttft, itl, running)


def measure_real(loads: Sequence[tuple[int, int]], requests: int) -> dict[str, Any]:
    """Start the real vLLM on the tiny model and measure every load, one after the other."""
    from harness import vllm_cpu

    model = vllm_cpu.cached_tiny_model()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
        log = Path(tmp) / "vllm.log"
        with vllm_cpu.serve(model, "tiny", log, *FLAGS) as served:
            observed = []
            for clients, prompt_tokens in loads:
                one = asyncio.run(_measure_load(served.url, clients, prompt_tokens, requests))
                observed.append(one)
                print(
                    f"real c={clients} prompt={prompt_tokens}: "
                    f"TTFT {statistics.median(one.ttft) * 1e3:.1f} ms, "
                    f"ITL {statistics.median(one.itl) * 1e3:.1f} ms, vLLM's TTFT "
                    f"{(one.engine_ttft_mean or 0) * 1e3:.2f} ms, ITL "
                    f"{(one.engine_itl_mean or 0) * 1e3:.2f} ms, running "
                    f"{one.engine_running_mean or 0:.2f}, "
                    f"load average {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    return {
        "date": today(),
        "machine": machine_summary(("scipy",)),
        "engine": f"vLLM {vllm_cpu.VERSION} (CPU build), torch {vllm_cpu.TORCH}",
        "flags": " ".join(FLAGS),
        "maxTokens": MAX_TOKENS,
        "requests": requests,
        "loadAverage": [round(x, 2) for x in os.getloadavg()],
        "wallSeconds": round(time.monotonic() - started),
        "loads": [one.to_json() for one in observed],
    }


# ----------------------------------------------------------------------------- the simulated engine


async def _simulate_load(
    speed: Speed,
    clients: int,
    prompt_tokens: int,
    requests: int,
    seed: int,
    think: float,
    max_tokens: int,
) -> Observed:
    host = VirtualHost()
    clock = ModelClock(host.monotonic, host.sleep)
    engine = SimulatedEngine(speed, "calibrate", seed=seed, clock=clock)
    ids = tuple(_prompt(prompt_tokens))
    gen = Generation("", prompt_tokens, max_tokens, temperature=0, chat=False)
    gen = replace(gen, ignore_eos=True, prompt_token_ids=ids)
    each = math.ceil(requests / clients)
    ttfts: list[float] = []
    itls: list[float] = []
    busy = [0.0]

    async def one() -> tuple[float, list[float]]:
        sent = clock.now()
        last, first, gaps = sent, None, []
        async for chunk in engine.generate(gen):
            at = chunk.at if chunk.at is not None else clock.now()
            new = chunk.tokens
            if first is None:
                first = at - sent
                new -= 1
            if new > 0:
                gaps += [(at - last) / new] * new
            last = at
        assert first is not None
        busy[0] += last - sent
        await clock.wait(last, think)  # the client's turn-around, as the real engine saw it
        return first, gaps

    async def client() -> None:
        await one()  # warm-up, left out as on the real engine
        for _ in range(each):
            ttft, gaps = await one()
            ttfts.append(ttft)
            itls.extend(gaps)

    await engine.start()
    try:
        done = asyncio.gather(*(client() for _ in range(clients)))
        await host.run(done)
        await done
        elapsed = clock.now()
    finally:
        await engine.stop()
    running = busy[0] / elapsed if elapsed > 0 else None
    return Observed(clients, prompt_tokens, tuple(ttfts), tuple(itls), None, None, running)


def simulate(
    params: Params,
    loads: Sequence[tuple[int, int]],
    requests: int,
    seed: int = SEED,
    jitter_sigma: float = JITTER,
    thinks: Sequence[float] | None = None,
    max_tokens: int = MAX_TOKENS,
) -> list[Observed]:
    """The simulated engine with ``params`` at every load (virtual time, well under a second);
    each client waits ``thinks[i]`` seconds between two requests of load ``i`` (none: 0)."""
    speed = params.speed(jitter_sigma)
    pauses = list(thinks) if thinks is not None else [0.0] * len(loads)

    async def main() -> list[Observed]:
        return [
            await _simulate_load(speed, c, p, requests, seed + i, pauses[i], max_tokens)
            for i, (c, p) in enumerate(loads)
        ]

    return asyncio.run(main())


# ----------------------------------------------------------------------------- the fit


def think_time(o: Observed) -> float:
    """The seconds between a request's last token and the client's next request, as the real
    engine saw them: closed loop, ``running = clients * busy / (busy + think)`` (Little's law),
    a request's time in the engine ``busy`` = TTFT + (max_tokens - 1) * ITL of vLLM's means.
    0 without vLLM's figures (a simulated engine's clients do not wait)."""
    if o.engine_running_mean is None or o.engine_ttft_mean is None or o.engine_itl_mean is None:
        return 0.0
    busy = o.engine_ttft_mean + (MAX_TOKENS - 1) * o.engine_itl_mean
    if o.engine_running_mean <= 0:
        return 0.0
    return max(0.0, o.clients * busy / o.engine_running_mean - busy)


def reference(o: Observed) -> tuple[float, float]:
    """The (TTFT, ITL) a fit compares: vLLM's own means where it reported them (the real
    engine), else the means of the samples (the simulated engine)."""
    ttft = o.engine_ttft_mean if o.engine_ttft_mean is not None else statistics.fmean(o.ttft)
    itl = o.engine_itl_mean if o.engine_itl_mean is not None else statistics.fmean(o.itl)
    return ttft, itl


def initial_guess(observed: Sequence[Observed]) -> Params:
    """Closed form from the lone requests: ITL at one client is a step; the slope of the ITL
    over clients the batch term; two prompt lengths at one client the prompt token's cost; the
    rest of the TTFT the overhead."""
    itl = {(o.clients, o.prompt_tokens): reference(o)[1] for o in observed}
    ttft = {(o.clients, o.prompt_tokens): reference(o)[0] for o in observed}
    ones = sorted((p, t) for (c, p), t in ttft.items() if c == 1)
    step = statistics.median([v for (c, _), v in itl.items() if c == 1] or list(itl.values()))
    slopes = [(v / step - 1) / (c - 1) for (c, _), v in itl.items() if c > 1]
    slowdown = max(statistics.median(slopes), 1e-4) if slopes else BATCH_SLOWDOWN
    if len(ones) >= 2 and ones[-1][0] > ones[0][0]:
        per_token = (ones[-1][1] - ones[0][1]) / (ones[-1][0] - ones[0][0])
    else:
        per_token = 0.0
    per_token = max(per_token, 1e-7)
    overhead = max(ones[0][1] - step - ones[0][0] * per_token, 1e-4) if ones else 0.01
    return Params(step, slowdown, per_token, overhead)


def residuals(real: Sequence[Observed], sim: Sequence[Observed]) -> list[float]:
    """log(simulated / real) of the mean TTFT and the mean ITL (:func:`reference`) at every
    load."""
    out = []
    for r, s in zip(real, sim, strict=True):
        (rt, ri), (st, si) = reference(r), reference(s)
        out += [math.log(st / rt), math.log(si / ri)]
    return out


def fit(
    real: Sequence[Observed],
    requests: int,
    free_slowdown: bool = True,
    seed: int = SEED,
    jitter_sigma: float = JITTER,
    max_tokens: int = MAX_TOKENS,
) -> Params:
    """Least squares (module docstring): the parameters whose simulated engine comes closest to
    ``real``'s means; ``batch_slowdown`` held at :data:`BATCH_SLOWDOWN` unless
    ``free_slowdown``."""
    from scipy.optimize import least_squares

    loads = [(o.clients, o.prompt_tokens) for o in real]
    start = initial_guess(real)
    if not free_slowdown:
        start = replace(start, batch_slowdown=BATCH_SLOWDOWN)

    def unpack(x: Sequence[float]) -> Params:
        d, p, o, *rest = (math.exp(v) for v in x)
        return Params(d, rest[0] if rest else BATCH_SLOWDOWN, p, o)

    thinks = [think_time(o) for o in real]

    def cost(x: Sequence[float]) -> list[float]:
        sim = simulate(unpack(x), loads, requests, seed, jitter_sigma, thinks, max_tokens)
        return residuals(real, sim)

    x0 = [start.decode_s_per_token, start.prefill_s_per_token, start.overhead_s]
    if free_slowdown:
        x0.append(start.batch_slowdown)
    result = least_squares(cost, [math.log(v) for v in x0], diff_step=0.03, xtol=1e-4)
    return unpack(result.x)


# ----------------------------------------------------------------------------- the report


def _ms(x: float) -> str:
    return f"{x * 1e3:.1f}"


def _n(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _pct(sim: float, real: float) -> str:
    return f"{(sim / real - 1) * 100:+.0f}%"


def table(real: Sequence[Observed], sim: Sequence[Observed]) -> list[str]:
    """The docs' table: one row per load, the real engine's means (vLLM's own), the simulated
    engine's means (and its p50 / p90) and the residuals."""
    lines = [
        "| load (clients × prompt tokens) | running, real / simulated | real TTFT mean (ms) "
        "| simulated TTFT mean (ms) | residual | simulated TTFT p50 / p90 (ms) "
        "| real ITL mean (ms) | simulated ITL mean (ms) | residual "
        "| simulated ITL p50 / p90 (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r, s in zip(real, sim, strict=True):
        cells = [
            f"{r.clients} × {r.prompt_tokens}",
            f"{_n(r.engine_running_mean)} / {_n(s.engine_running_mean)}",
        ]
        for i, name in enumerate(("ttft", "itl")):
            rv, sv, samples = reference(r)[i], reference(s)[i], getattr(s, name)
            cells += [
                _ms(rv),
                _ms(sv),
                _pct(sv, rv),
                f"{_ms(percentile(samples, 0.5))} / {_ms(percentile(samples, 0.9))}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def client_table(real: Sequence[Observed]) -> list[str]:
    """What the client saw of the real engine: its TTFT and ITL, p50 / p90 and mean."""
    lines = [
        "| load (clients × prompt tokens) | client's TTFT p50 / p90 (ms) | client's TTFT mean "
        "(ms) | vLLM's TTFT mean (ms) | client's ITL p50 / p90 (ms) | client's ITL mean (ms) "
        "| vLLM's ITL mean (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in real:
        cells = [f"{r.clients} × {r.prompt_tokens}"]
        for i, name in enumerate(("ttft", "itl")):
            samples = getattr(r, name)
            cells += [
                f"{_ms(percentile(samples, 0.5))} / {_ms(percentile(samples, 0.9))}",
                _ms(statistics.fmean(samples)),
                _ms(reference(r)[i]),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def worst(real: Sequence[Observed], sim: Sequence[Observed]) -> float:
    """The largest |simulated / real - 1| over every mean compared."""
    return max(abs(math.exp(r) - 1) for r in residuals(real, sim))


def describe(params: Params) -> str:
    return (
        f"`decode_s_per_token` {params.decode_s_per_token * 1e3:.2f} ms, "
        f"`batch_slowdown` {params.batch_slowdown:.3f}, "
        f"`prefill_s_per_token` {params.prefill_s_per_token * 1e6:.1f} µs, "
        f"`overhead_s` {params.overhead_s * 1e3:.2f} ms"
    )


def verdict(real: Sequence[Observed], sim: Sequence[Observed]) -> str:
    off = worst(real, sim)
    word = "fits" if off <= TOLERANCE else "does not fit"
    return f"{word}: the worst mean is {off * 100:.0f}% off (the bar: ±{TOLERANCE * 100:.0f}%)"


def render(results: dict[str, Any], fits: dict[str, tuple[Params, list[Observed]]]) -> str:
    real = [Observed.from_json(one) for one in results["loads"]]
    free, free_sim = fits["free"]
    held, held_sim = fits["held"]
    load = ", ".join(str(x) for x in results["loadAverage"])
    lines = [
        f"The real engine: {results['engine']}, the tiny Llama of `harness/tiny_model.py`, "
        f"float32, `--enforce-eager {results['flags']}`. Closed-loop clients send streaming "
        f"`/v1/completions` of fixed token ids, `max_tokens` {results['maxTokens']} with "
        f"`ignore_eos`, temperature 0; {results['requests']} measured requests per load after "
        "one warm-up per client. The reference is vLLM's own `vllm:time_to_first_token_seconds` "
        "and `vllm:inter_token_latency_seconds`, sum over count between two scrapes around each "
        "load: the engine's means. The simulated engine runs the same clients on a virtual "
        "clock, each waiting between two requests what gives the batch the real engine ran "
        "(running: requests per second of the load times a request's time in the engine, "
        "Little's law); its TTFT runs from the request's arrival, its ITL is one value per "
        "token. vLLM's ITL buckets start at 10 ms, above every step here, so its percentiles "
        "are not read from them. Each "
        "fit is least squares on log(simulated / real) of the two means at every load; a fit is "
        f"every mean within ±{TOLERANCE * 100:.0f}%.",
        "",
        f"Fitted, with the batch term free: {describe(free)}.",
        "",
        f"With the batch term fitted: {verdict(real, free_sim)}.",
        "",
        *table(real, free_sim),
        "",
        f"Fitted with `batch_slowdown` held at the engine's default {BATCH_SLOWDOWN}: "
        f"{describe(held)}.",
        "",
        f"With the batch term held at {BATCH_SLOWDOWN}: {verdict(real, held_sim)}.",
        "",
        *table(real, held_sim),
        "",
        "What the client saw of the same requests (its clock: from sending to the first streamed "
        "token, then each later chunk's gap over the tokens it holds), beside vLLM's means:",
        "",
        *client_table(real),
        "",
        f"- Command: `{COMMAND}` ({results['wallSeconds']} s wall, the engine's start included)",
        f"- Date: {results['date']}",
        f"- Machine: {results['machine']}; load average {load} (1, 5, 15 min) at the end, "
        "other jobs included",
    ]
    return "\n".join(lines)


def fit_both(results: dict[str, Any]) -> dict[str, tuple[Params, list[Observed]]]:
    real = [Observed.from_json(one) for one in results["loads"]]
    requests = results["requests"]
    loads = [(o.clients, o.prompt_tokens) for o in real]
    out = {}
    for key, free in (("free", True), ("held", False)):
        params = fit(real, requests, free_slowdown=free)
        thinks = [think_time(o) for o in real]
        out[key] = (params, simulate(params, loads, requests, thinks=thinks))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=REQUESTS, help="measured per load")
    add_record_args(parser)
    args = parser.parse_args(argv)
    if args.report is not None:
        results = json.loads(args.report.read_text())
    else:
        results = measure_real(LOADS, args.requests)
        if args.json is not None:
            args.json.write_text(json.dumps(results) + "\n")
    publish(args, SECTION, render(results, fit_both(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
