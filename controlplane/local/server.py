"""A local model server: the OpenAI-compatible API in front of one engine, counting as vLLM does.

Owns the HTTP surface of one variant in the local stack (aiohttp, ``127.0.0.1`` only):

- ``POST /v1/chat/completions`` and ``POST /v1/completions``, with ``"stream": true`` answered as
  server-sent events (``data: {chunk}`` ... ``data: [DONE]``), ``stream_options.include_usage``
  honoured; ``GET /v1/models``; ``GET /health``; errors in OpenAI's ``{"error": {...}}`` shape
  (a wrong ``model`` is a 404 as in vLLM);
- ``GET /metrics``: the vLLM metric names of the contract
  (:mod:`controlplane.promql.contract`: ``vllm:e2e_request_latency_seconds``,
  ``vllm:time_to_first_token_seconds``, ``vllm:inter_token_latency_seconds`` with vLLM's bucket
  bounds, ``vllm:request_success_total{finished_reason}`` with every reason present at 0 from the
  start as vLLM v1 creates them, the token counters and the gauges), labelled ``model_name`` plus
  ``namespace`` / ``canary`` / ``variant``; ``vllm serve``'s HTTP counter
  ``http_requests_total{handler, method, status}`` (prometheus-fastapi-instrumentator's, status
  grouped to ``2xx``/``4xx``/``5xx``, ``/metrics`` and ``/health`` excluded, an exception counted
  as ``5xx``); and ``controlplane_local_engine_info{engine}`` so a dashboard can tell simulated
  numbers apart;
- counting as vLLM v1 does (docs/analysis.md, "Where errors come from"): a request refused before
  the engine (400, 404) is only an HTTP ``4xx``; an engine ``error`` finish is HTTP 500 when not
  streamed and an error event in a 200 stream when streamed; a client disconnect is no finish at
  all and a ``2xx``;
- fault injection (:class:`~controlplane.local.inject.Faults`) for any engine: the delay comes
  before the first token; an injected ``errors`` share is an HTTP 500 before the engine (only
  ``5xx``); an ``engine-errors`` share is an engine ``error`` finish.

The variant's ``systemPrompt`` is prepended to chat requests. Every response carries the header
``x-controlplane-engine`` (``simulated`` / ``transformers`` / ``vllm``). Started by
:mod:`controlplane.local.stack`; the tests start it directly.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from controlplane.errors import ControlPlaneError
from controlplane.local.engines.base import Chunk, Engine, EngineError, Generation
from controlplane.local.inject import Faults
from controlplane.promql.contract import contract_for

HOST = "127.0.0.1"
ENGINE_HEADER = "x-controlplane-engine"
VARIANT_HEADER = "x-canary-variant"

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


def bind_socket() -> socket.socket:
    """A listening-ready socket on a free loopback port (no race between choosing and binding)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    return sock


@dataclass(frozen=True)
class Identity:
    """Who a server is: the model name clients send and the labels of its metrics."""

    model: str
    namespace: str
    canary: str
    variant: str
    system_prompt: str | None = None


class _Metrics:
    """The server's metric families, in a registry of its own."""

    def __init__(self, who: Identity, engine: str) -> None:
        self.registry = CollectorRegistry()
        names = ["model_name", "namespace", "canary", "variant"]
        values = [who.model, who.namespace, who.canary, who.variant]
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
            [*names, "engine"],
            registry=r,
        )
        info.labels(*values, engine).set(1)
        self.values = values
        for reason in FINISH_REASONS:
            self.success.labels(*values, reason)
        for family in (self.e2e, self.ttft, self.itl, self.prompt_tokens, self.generation_tokens):
            family.labels(*values)
        self.waiting.labels(*values).set(0)

    def finished(self, reason: str) -> None:
        self.success.labels(*self.values, reason).inc()

    def answered(self, handler: str, method: str, status: int) -> None:
        """One HTTP answer, as prometheus-fastapi-instrumentator counts it for vLLM."""
        if handler not in HTTP_EXCLUDED:
            self.http.labels(handler, method, f"{str(status)[0]}xx").inc()


def _error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.json_response(body, status=status)


class _BadRequest(ControlPlaneError):
    """A request the server answers with ``status`` and the message (inside this module)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ModelServer:
    """One variant's OpenAI-compatible server. ``start()`` binds; ``url`` is then known."""

    def __init__(
        self, who: Identity, engine: Engine, faults: Faults | None = None, seed: int | None = None
    ) -> None:
        self.who = who
        self.engine = engine
        self.faults = faults or Faults()
        self.metrics = _Metrics(who, engine.kind)
        self._rng = random.Random(seed)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

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
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        sock = bind_socket()
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
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
        return web.Response(text="ok", headers={ENGINE_HEADER: self.engine.kind})

    async def _models(self, request: web.Request) -> web.Response:
        data = {"id": self.who.model, "object": "model", "owned_by": f"local-{self.engine.kind}"}
        return web.json_response({"object": "list", "data": [data]})

    async def _metrics(self, request: web.Request) -> web.Response:
        labels = self.metrics.values
        self.metrics.kv.labels(*labels).set(self.engine.load())
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=False)

    # ----------------------------------------------------------------- one request

    async def _body(self, request: web.Request, chat: bool) -> tuple[dict[str, Any], str]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _BadRequest(400, "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise _BadRequest(400, "the request body must be a JSON object")
        if body.get("model", self.who.model) != self.who.model:
            raise _BadRequest(404, f"The model `{body.get('model')}` does not exist.")
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise _BadRequest(400, "'messages' must be a non-empty list")
            parts = []
            if self.who.system_prompt:
                parts.append(f"system: {self.who.system_prompt}")
            for m in messages:
                if not isinstance(m, dict) or not isinstance(m.get("content"), str):
                    raise _BadRequest(400, "each message needs a string 'content'")
                parts.append(f"{m.get('role', 'user')}: {m['content']}")
            return body, "\n".join(parts)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise _BadRequest(400, "'prompt' must be a non-empty string")
        return body, prompt

    async def _serve(self, request: web.Request, chat: bool) -> web.StreamResponse:
        self.requests += 1
        try:
            body, prompt = await self._body(request, chat)
            max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
            max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
            if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
                raise _BadRequest(400, "'max_tokens' must be a positive integer")
            temperature = body.get("temperature", 1.0)
            if isinstance(temperature, bool) or not isinstance(temperature, int | float):
                raise _BadRequest(400, "'temperature' must be a number")
            ignore_eos = body.get("ignore_eos", False)
            if not isinstance(ignore_eos, bool):
                raise _BadRequest(400, "'ignore_eos' must be a boolean")
        except _BadRequest as exc:
            return _error(exc.status, str(exc), "NotFoundError" if exc.status == 404 else "")
        generation = Generation(
            prompt=prompt,
            prompt_tokens=self.engine.count_tokens(prompt),
            max_tokens=max_tokens,
            temperature=float(temperature),
            chat=chat,
            ignore_eos=ignore_eos,
        )
        stream = bool(body.get("stream", False))
        options = body.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return await self._run(request, generation, chat, stream, usage)

    async def _run(
        self, request: web.Request, gen: Generation, chat: bool, stream: bool, usage: bool
    ) -> web.StreamResponse:
        m, labels = self.metrics, self.metrics.values
        started = time.monotonic()
        m.running.labels(*labels).inc()
        headers = {ENGINE_HEADER: self.engine.kind, VARIANT_HEADER: self.who.variant}
        response: web.StreamResponse | None = None
        reason: str | None = None  # no finish: a client disconnect or an error before the engine
        try:
            if self.faults.latency_s:
                await asyncio.sleep(self.faults.latency_s)
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
            rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
            if stream:
                response = web.StreamResponse(
                    headers={
                        **headers,
                        "Content-Type": "text/event-stream",
                        "Cache-Control": "no-cache",
                    }
                )
                await response.prepare(request)
            if engine_error:
                raise EngineError("Internal server error")
            text: list[str] = []
            tokens = 0
            finish: str = "stop"
            first: float | None = None
            last = started
            async for chunk in self._chunks(gen):
                now = time.monotonic()
                if first is None:
                    first = now
                    m.ttft.labels(*labels).observe(now - started)
                elif chunk.tokens:
                    gap = (now - last) / chunk.tokens
                    for _ in range(chunk.tokens):
                        m.itl.labels(*labels).observe(gap)
                last = now
                tokens += chunk.tokens
                text.append(chunk.text)
                if chunk.finish_reason is not None:
                    finish = chunk.finish_reason
                if response is not None:
                    await _send(response, _chunk_body(rid, self.who.model, chat, chunk))
            counts = {
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": tokens,
                "total_tokens": gen.prompt_tokens + tokens,
            }
            m.prompt_tokens.labels(*labels).inc(gen.prompt_tokens)
            m.generation_tokens.labels(*labels).inc(tokens)
            if response is not None:
                if usage:
                    tail = _chunk_body(rid, self.who.model, chat, None)
                    tail["usage"] = counts
                    await _send(response, tail)
                await response.write(b"data: [DONE]\n\n")
                await response.write_eof()
            else:
                response = web.json_response(
                    _full_body(rid, self.who.model, chat, "".join(text), finish, counts),
                    headers=headers,
                )
            reason = finish
            m.e2e.labels(*labels).observe(time.monotonic() - started)
            return response
        except ConnectionResetError:
            # The client went away: vLLM v1 aborts the request without counting a finish, and its
            # HTTP counter already has the 200 the answer started with.
            reason = None
            return response if response is not None else web.Response(status=200)
        except EngineError as exc:
            reason = "error"
            if response is not None:  # already streaming: vLLM's error event, then [DONE]
                error = {"error": {"message": str(exc), "type": "InternalServerError", "code": 500}}
                try:
                    await _send(response, error)
                    await response.write(b"data: [DONE]\n\n")
                    await response.write_eof()
                except ConnectionResetError:
                    pass
                return response
            return _error(500, str(exc), "InternalServerError")
        finally:
            m.running.labels(*labels).dec()
            if reason is not None:
                m.finished(reason)

    async def _chunks(self, gen: Generation) -> AsyncIterator[Chunk]:
        async for chunk in self.engine.generate(gen):
            yield chunk


async def _send(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(data).encode() + b"\n\n")


def _chunk_body(rid: str, model: str, chat: bool, chunk: Chunk | None) -> dict[str, Any]:
    choices: list[dict[str, Any]] = []
    if chunk is not None:
        choice: dict[str, Any] = {"index": 0, "finish_reason": chunk.finish_reason}
        if chat:
            choice["delta"] = {"role": "assistant", "content": chunk.text}
        else:
            choice["text"] = chunk.text
        choices.append(choice)
    return {
        "id": rid,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }


def _full_body(
    rid: str, model: str, chat: bool, text: str, finish: str, usage: dict[str, int]
) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return {
        "id": rid,
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage,
    }
