"""A local model server: the OpenAI-compatible API in front of one engine, counting as vLLM does.

Owns the HTTP surface of one variant: the completions endpoints, ``/v1/models``, ``/health`` and
``/metrics`` with the contract's ``vllm:`` names counted as vLLM v1 counts them, so a cluster's
queries read it unchanged; latencies on the engine's clock; faults injected for any engine.
See docs/local.md, "What runs" and "What the engine answers, as vLLM 0.24.0".
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from controlplane.local.engines.base import Engine, EngineError, Generation
from controlplane.local.inject import Faults
from controlplane.local.openai_api import (
    Request,
    RequestError,
    StopScanner,
    check_max_tokens,
    error_body,
    full_body,
    full_choice,
    model_list,
    parse_request,
    stream_body,
    stream_choice,
    too_long,
    usage,
)
from controlplane.promql.contract import contract_for
from controlplane.proxying import bind_socket
from controlplane.routing.base import VARIANT_HEADER

HOST = "127.0.0.1"
ENGINE_HEADER = "x-controlplane-engine"
ANSWER_S = 5.0
"""With no drain, how long the answers of the aborted requests may take to send."""
ENGINE_INDEX = "0"
"""The ``engine`` label vLLM puts on every metric: the engine core's index, one core here."""

# vLLM's own bucket bounds and finish reasons (the metric contract), so quantiles are estimated
# the same way and every reason exists from the start as in vLLM v1.
_CONTRACT = contract_for()
E2E_BUCKETS = _CONTRACT.buckets("e2e-latency")
TTFT_BUCKETS = _CONTRACT.buckets("ttft")
ITL_BUCKETS = _CONTRACT.buckets("inter-token-latency")
FINISH_REASONS = _CONTRACT.finished_reasons
HTTP_EXCLUDED = frozenset({"/metrics", "/health", "/load", "/ping", "/version", "/server_info"})
"""Handlers ``vllm serve`` leaves out of ``http_requests_total`` (its ``excluded_handlers``)."""
DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class Identity:
    """Who a server is: the model name clients send and the labels of its metrics."""

    model: str
    namespace: str
    canary: str
    variant: str
    system_prompt: str | None = None
    max_model_len: int | None = None
    """The model's context length: ``/v1/models`` shows it, and a prompt may not exceed it."""
    root: str | None = None
    """What ``vllm serve`` was given (``ModelCard.root``); None: the model name."""


DEFAULT_MAX_MODEL_LEN = 8192
"""The context length the token-count buckets reach when the variant names none."""


def one_two_five(limit: int) -> tuple[float, ...]:
    """vLLM's ``build_1_2_5_buckets(limit)``: 1, 2, 5, 10, 20, 50, ... up to ``limit``."""
    out: list[float] = []
    scale = 1
    while True:
        for mantissa in (1, 2, 5):
            if mantissa * scale > limit:
                return tuple(out)
            out.append(float(mantissa * scale))
        scale *= 10


class _Metrics:
    """The server's metric families, in a registry of its own."""

    def __init__(self, who: Identity, engine: str) -> None:
        self.registry = CollectorRegistry()
        # vLLM's own labels (engine: the engine core's index, "0" for one), then the scrape's
        names = ["model_name", "engine", "namespace", "canary", "variant"]
        values = [who.model, ENGINE_INDEX, who.namespace, who.canary, who.variant]
        r = self.registry

        def hist(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, names, buckets=buckets, registry=r)

        self.e2e = hist("vllm:e2e_request_latency_seconds", "End-to-end latency", E2E_BUCKETS)
        self.ttft = hist("vllm:time_to_first_token_seconds", "Time to first token", TTFT_BUCKETS)
        self.itl = hist("vllm:inter_token_latency_seconds", "Inter-token latency", ITL_BUCKETS)
        self.success = Counter(
            "vllm:request_success", "Finished requests", [*names, "finished_reason"], registry=r
        )
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Prefill tokens", names, registry=r)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Generated tokens", names, registry=r
        )
        # observed once per finished request, beside the end-to-end latency, on 1-2-5 buckets up
        # to the context length (vLLM 0.24.0 vllm/v1/metrics/loggers.py: record_finished_request,
        # build_1_2_5_buckets): a ratio of the two sums is over the same requests
        self.request_generation_tokens = hist(
            "vllm:request_generation_tokens",
            "Number of generation tokens processed.",
            one_two_five(who.max_model_len or DEFAULT_MAX_MODEL_LEN),
        )
        self.running = Gauge("vllm:num_requests_running", "Running requests", names, registry=r)
        self.waiting = Gauge("vllm:num_requests_waiting", "Waiting requests", names, registry=r)
        self.kv = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage (0-1)", names, registry=r)
        self.http = Counter(
            "http_requests",
            "Total number of requests by method, status and handler.",
            ["handler", "method", "status"],
            registry=r,
        )
        info = Gauge(
            "controlplane_local_engine_info",
            "Engine behind this variant",
            [*names, "kind"],
            registry=r,
        )
        info.labels(*values, engine).set(1)
        self.values = values
        for reason in FINISH_REASONS:
            self.success.labels(*values, reason)
        families = (self.e2e, self.ttft, self.itl, self.prompt_tokens, self.generation_tokens)
        for family in (*families, self.request_generation_tokens):
            family.labels(*values)

    def watch(self, engine: Engine) -> None:
        """The scheduler gauges read ``engine`` at every collection, as vLLM 0.24.0 sets them
        from its scheduler's own counts (``v1/metrics/loggers.py``: ``len(running)``,
        ``len(waiting)``, the KV-cache usage), not from HTTP requests in flight."""
        self.running.labels(*self.values).set_function(engine.running)
        self.waiting.labels(*self.values).set_function(engine.waiting)
        self.kv.labels(*self.values).set_function(engine.load)

    def finished(self, reason: str) -> None:
        self.success.labels(*self.values, reason).inc()

    def answered(self, handler: str, method: str, status: int) -> None:
        """One HTTP answer, as prometheus-fastapi-instrumentator counts it for vLLM."""
        if handler not in HTTP_EXCLUDED:
            self.http.labels(handler, method, f"{str(status)[0]}xx").inc()


class ModelServer:
    """One variant's OpenAI-compatible server. ``start()`` binds; ``url`` is then known.

    ``host`` / ``port``: where to listen (default: loopback, a free port chosen at ``start()``).
    ``ready`` False: ``/health`` answers 503 while everything else is served."""

    def __init__(
        self,
        who: Identity,
        engine: Engine,
        faults: Faults | None = None,
        seed: int | None = None,
        *,
        host: str = HOST,
        port: int = 0,
        shutdown_s: float = 0.0,
    ) -> None:
        self.who = who
        self.shutdown_s = shutdown_s
        """On stop, how long requests in flight may finish (vLLM's ``--shutdown-timeout``; 0, its
        default, aborts them)."""
        self.engine = engine
        self.faults = faults or Faults()
        self.metrics = _Metrics(who, engine.kind)
        self.metrics.watch(engine)
        self._rng = random.Random(seed)
        self._runner: web.AppRunner | None = None
        self.host = host
        self.port = port
        self.ready = True
        self.requests = 0
        self._started = engine.clock.now()
        """When the server was made, on the engine's clock: what a drift counts from."""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count_http])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> None:
        await self.engine.start()
        drain = self.shutdown_s if self.shutdown_s > 0 else ANSWER_S
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=drain)
        await self._runner.setup()
        try:
            sock = bind_socket(self.host, self.port)
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """As vLLM on SIGTERM: with no ``shutdown_s``, requests in flight end at once with finish
        reason ``abort`` (a 200 with what was generated); else they may finish for that long."""
        if self.shutdown_s <= 0:
            self.engine.abort_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.engine.stop()

    @web.middleware
    async def _count_http(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """``http_requests_total`` as vLLM's instrumentator keeps it: the route template (``none``
        when no route matched), the status the answer started with, 500 for an exception."""
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "none"
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.metrics.answered(name, request.method, status)

    # ----------------------------------------------------------------- endpoints

    async def _health(self, request: web.Request) -> web.Response:
        if not self.ready:  # vLLM answers an empty 503 when its engine is not healthy
            return web.Response(status=503, headers={ENGINE_HEADER: self.engine.kind})
        return web.Response(text="ok", headers={ENGINE_HEADER: self.engine.kind})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            model_list(self.who.model, self.who.root, self.who.max_model_len),
            headers={ENGINE_HEADER: self.engine.kind},
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=False)

    # ----------------------------------------------------------------- one request

    async def _serve(self, request: web.Request, chat: bool) -> web.StreamResponse:
        self.requests += 1
        try:
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise RequestError("the request body is not JSON") from None
            req = parse_request(
                body,
                chat=chat,
                model=self.who.model,
                system_prompt=self.who.system_prompt,
                root=self.who.root or self.who.model,
            )
            seqs = self._sequences(req)
        except RequestError as exc:
            return web.json_response(error_body(exc), status=exc.status)
        return await self._run(request, req, seqs)

    def _sequences(self, req: Request) -> list[_Sequence]:
        """One engine sequence per prompt and choice, indexed ``prompt * n + choice`` as vLLM
        indexes them; ``max_tokens`` capped by what ``max_model_len`` leaves (vLLM's
        ``get_max_tokens``)."""
        limit = self.who.max_model_len
        seqs: list[_Sequence] = []
        for p, prompt in enumerate(req.prompts):
            ids = prompt.token_ids
            tokens = len(ids) if ids is not None else self.engine.count_tokens(prompt.text)
            if limit is not None and tokens > limit:
                raise too_long(tokens, limit)
            max_tokens = DEFAULT_MAX_TOKENS if req.max_tokens is None else req.max_tokens
            if limit is not None:
                max_tokens = min(max_tokens, limit - tokens)
            check_max_tokens(max_tokens)
            gen = Generation(
                prompt=prompt.text,
                prompt_tokens=tokens,
                max_tokens=max_tokens,
                temperature=req.temperature,
                chat=req.chat,
                ignore_eos=req.ignore_eos,
                prompt_token_ids=ids,
            )
            for choice in range(req.n):
                scanner = StopScanner(req.stop, req.include_stop_str_in_output)
                seqs.append(_Sequence(p * req.n + choice, p, gen, scanner))
        return seqs

    async def _run(
        self, request: web.Request, req: Request, seqs: list[_Sequence]
    ) -> web.StreamResponse:
        m = self.metrics
        clock = self.engine.clock
        started = arrived = clock.now()
        headers = {ENGINE_HEADER: self.engine.kind, VARIANT_HEADER: self.who.variant}
        response: web.StreamResponse | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            delay = self.faults.delay_s(started - self._started)
            if delay:  # the request reaches the engine this much later
                arrived = await clock.wait(started, delay)
            if self.faults.error_fraction and self._rng.random() < self.faults.error_fraction:
                return web.json_response(
                    {
                        "error": {
                            "message": "injected error",
                            "type": "InternalServerError",
                            "code": 500,
                        }
                    },
                    status=500,
                    headers=headers,
                )
            engine_error = bool(self.faults.engine_error_fraction) and (
                self._rng.random() < self.faults.engine_error_fraction
            )
            if self.faults.wrong_answer_fraction and (
                self._rng.random() < self.faults.wrong_answer_fraction
            ):
                for seq in seqs:
                    seq.gen = replace(seq.gen, wrong=True)
            rid = f"{'chatcmpl' if req.chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
            created = int(time.time())
            if req.stream:
                response = web.StreamResponse(
                    headers={
                        **headers,
                        "Content-Type": "text/event-stream",
                        "Cache-Control": "no-cache",
                    }
                )
                await response.prepare(request)
            if engine_error:  # every sequence of the request finishes with "error"
                for _ in seqs:
                    m.finished("error")
                raise EngineError("Internal server error")
            queue: asyncio.Queue[_Event] = asyncio.Queue()
            tasks = [
                asyncio.create_task(self._sequence(seq, started, arrived, queue)) for seq in seqs
            ]
            texts: dict[int, list[str]] = {seq.index: [] for seq in seqs}
            left, greeted = len(seqs), False
            while left:
                event = await queue.get()
                if event.error is not None:
                    raise event.error
                left -= event.finish is not None
                if response is None:
                    texts[event.seq.index].append(event.text)
                    continue
                if req.chat and not greeted:  # the role first, for every choice (chat serving)
                    greeted = True
                    for seq in seqs:
                        await _send(response, self._chunk(req, rid, created, _Event(seq, "")))
                await _send(response, self._chunk(req, rid, created, event, role=None))
            prompts = {seq.prompt: seq.gen.prompt_tokens for seq in seqs}
            counts = usage(sum(prompts.values()), sum(seq.tokens for seq in seqs))
            if response is not None:
                if req.include_usage:
                    tail = stream_body(rid, self.who.model, req.chat, created, [], counts)
                    await _send(response, tail)
                await response.write(b"data: [DONE]\n\n")
                await response.write_eof()
                return response
            choices = [
                full_choice(
                    req.chat,
                    seq.index,
                    "".join(texts[seq.index]),
                    seq.finish or "stop",
                    seq.stop_reason,
                )
                for seq in seqs
            ]
            body = full_body(rid, self.who.model, req.chat, created, choices, counts)
            return web.json_response(body, headers=headers)
        except ConnectionResetError:
            # The client went away: vLLM v1 aborts the request without counting a finish, and its
            # HTTP counter already has the 200 the answer started with.
            return response if response is not None else web.Response(status=200)
        except EngineError as exc:
            if response is not None:  # already streaming: vLLM's error event, then [DONE]
                error = {"error": {"message": str(exc), "type": "InternalServerError", "code": 500}}
                try:
                    await _send(response, error)
                    await response.write(b"data: [DONE]\n\n")
                    await response.write_eof()
                except ConnectionResetError:
                    pass
                return response
            return web.json_response(
                error_body(RequestError(str(exc), 500, kind="InternalServerError")), status=500
            )
        finally:
            for task in tasks:  # sequences still running are aborted: no finish, as in vLLM
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    def _chunk(
        self, req: Request, rid: str, created: int, event: _Event, role: str | None = "assistant"
    ) -> dict[str, Any]:
        """The stream chunk of one event; ``role`` set: chat's first, empty chunk of a choice."""
        seq = event.seq
        choice = stream_choice(
            req.chat, seq.index, event.text, event.finish, event.stop_reason, role
        )
        counts = usage(seq.gen.prompt_tokens, event.tokens) if req.continuous_usage else None
        return stream_body(rid, self.who.model, req.chat, created, [choice], counts)

    async def _sequence(
        self, seq: _Sequence, started: float, arrived: float, queue: asyncio.Queue[_Event]
    ) -> None:
        """Run one sequence on the engine, which it reached at ``arrived`` (the engine's clock):
        its metrics as vLLM v1 keeps them per (child) request, ``stop`` applied to its text, and
        an event on ``queue`` per engine chunk."""
        m, labels = self.metrics, self.metrics.values
        chunks = self.engine.generate(replace(seq.gen, arrived=arrived))
        first, last = True, started
        try:
            async for chunk in chunks:
                now = chunk.at if chunk.at is not None else self.engine.clock.now()
                stop, used = seq.scanner.feed(chunk.text)
                tokens = chunk.tokens
                if stop is not None and chunk.text and tokens:
                    # the tokens up to the one completing the match (a chunk may hold several)
                    tokens = min(tokens, max(1, math.ceil(tokens * used / len(chunk.text))))
                if first:
                    m.ttft.labels(*labels).observe(now - started)
                    m.prompt_tokens.labels(*labels).inc(seq.gen.prompt_tokens)
                elif tokens:
                    gap = (now - last) / tokens
                    for _ in range(tokens):
                        m.itl.labels(*labels).observe(gap)
                first, last = False, now
                seq.tokens += tokens
                m.generation_tokens.labels(*labels).inc(tokens)
                if stop is not None:
                    seq.stop_reason = stop
                finish = "stop" if stop is not None else chunk.finish_reason
                if finish is not None:
                    await self._finish(seq, finish, started, queue, now)
                    return
                await queue.put(_Event(seq, seq.scanner.emit(False), seq.tokens))
            # ended with no reason: a plain stop
            await self._finish(seq, "stop", started, queue, self.engine.clock.now())
        except EngineError as exc:
            m.finished("error")
            await queue.put(_Event(seq, "", seq.tokens, error=exc))
        except Exception as exc:  # not the engine's finish: no finish counted, a 500 as before
            await queue.put(_Event(seq, "", seq.tokens, error=exc))
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    async def _finish(
        self,
        seq: _Sequence,
        reason: str,
        started: float,
        queue: asyncio.Queue[_Event],
        now: float,
    ) -> None:
        seq.finish = reason
        self.metrics.finished(reason)
        self.metrics.e2e.labels(*self.metrics.values).observe(now - started)
        self.metrics.request_generation_tokens.labels(*self.metrics.values).observe(seq.tokens)
        text = seq.scanner.emit(True)
        await queue.put(_Event(seq, text, seq.tokens, reason, seq.stop_reason))


@dataclass(eq=False)
class _Sequence:
    """One choice of one prompt on the engine (vLLM v1's child request), and how it went."""

    index: int
    prompt: int
    gen: Generation
    scanner: StopScanner
    tokens: int = 0
    finish: str | None = None
    stop_reason: str | None = None


@dataclass(frozen=True)
class _Event:
    """What one sequence produced: text to send, its tokens so far, its finish or an error."""

    seq: _Sequence
    text: str
    tokens: int = 0
    finish: str | None = None
    stop_reason: str | None = None
    error: Exception | None = None


async def _send(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(data).encode() + b"\n\n")
