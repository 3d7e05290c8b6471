"""The pairer's HTTP service: a port per variant that answers from it, and pairs a sample.

Owns the I/O of pairing. A request on the ``stable`` port is proxied to the stable variant (the
``candidate`` port: to the candidate), method, path, headers and body unchanged, and its answer
streamed back as it comes, so the user's answer is always the one the router's weights chose. A
completions or chat completions request the :class:`~controlplane.pairing.sampling.Sampler`
takes is also sent, as :func:`~controlplane.analysis.quality.paired_request` with the user's
headers (credentials included), to both variants at once, in the background; when both
answer, the pair is scored and added to the :class:`~controlplane.pairing.journal.Journal`. At
most ``concurrency`` pairs are in flight (a request that finds them all busy is not paired),
which bounds the extra load: two requests of at most 64 tokens each per pair.

Either port answers ``GET /pairs?after=SEQ&limit=N`` (the journal's page), ``GET /metrics``
(Prometheus text: requests proxied, pairs by outcome) and ``GET /health``. Started by
``python -m controlplane.pairing``; tested against the real vLLM engine in
``tests/serving/test_vllm_cpu_quantized.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from controlplane.analysis.quality import Answer, answer_of, paired_request, score
from controlplane.pairing.journal import Journal
from controlplane.pairing.sampling import Limits, Sampler
from controlplane.proxying import answer_from, bind_socket, end_to_end, relay
from controlplane.routing.sessions import session_key
from controlplane.spec.models import SessionSpec

VARIANTS = ("stable", "candidate")
_BODY_HEADERS = frozenset({"content-type", "accept"})
"""The user's headers a paired request does not carry: its body is JSON of its own, answered
whole (the rest, credentials included, go with it)."""
PAIRED_PATHS = ("/v1/completions", "/v1/chat/completions")
"""The OpenAI paths whose requests can be paired, under any prefix."""


class Pairer:
    """One pairer between a ``stable`` and a ``candidate`` base URL (``http://host:port``)."""

    def __init__(
        self,
        stable: str,
        candidate: str,
        limits: Limits | None = None,
        *,
        session: SessionSpec | None = None,
        concurrency: int = 4,
        keep: int = 10_000,
        keep_prompts: bool = False,
        timeout_s: float = 300.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.upstreams = {"stable": stable.rstrip("/"), "candidate": candidate.rstrip("/")}
        self.sampler = Sampler(limits or Limits())
        self.session = session
        self.journal = Journal(keep)
        self.keep_prompts = keep_prompts
        self.ports: dict[str, int] = {}
        self.concurrency = concurrency
        self._rng = random.Random(seed)
        self._clock, self._wall = clock, wall
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None
        self._runners: list[web.AppRunner] = []
        self._pairs: set[asyncio.Task[None]] = set()
        r = self.registry = CollectorRegistry()
        self._requests = Counter(
            "controlplane_pairer_requests",
            "Requests the pairer proxied, by the variant that answered and status code",
            ["variant", "code"],
            registry=r,
        )
        self._outcomes = Counter(
            "controlplane_pairer_pairs",
            "Requests by pairing outcome: scored, failed (a variant did not answer with "
            "logprobs), busy, capped, unsampled, repeat (a conversation's later turn), unpaired "
            "(not a completions request)",
            ["outcome"],
            registry=r,
        )

    def url(self, variant: str) -> str:
        return f"http://127.0.0.1:{self.ports[variant]}"

    async def start(self, host: str = "127.0.0.1", ports: Mapping[str, int] | None = None) -> None:
        """Listen on ``ports`` (``{variant: port}``; 0 or absent: a free port, read back in
        :attr:`ports`)."""
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=self._timeout
        )
        for variant in VARIANTS:
            app = web.Application(client_max_size=16 * 1024 * 1024)
            app.router.add_get("/health", self._health)
            app.router.add_get("/metrics", self._metrics)
            app.router.add_get("/pairs", self._page)
            app.router.add_route("*", "/{tail:.*}", self._proxy_to(variant))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            self._runners.append(runner)
            sock = bind_socket(host, (ports or {}).get(variant, 0))
            self.ports[variant] = sock.getsockname()[1]
            await web.SockSite(runner, sock).start()

    async def stop(self) -> None:
        """Stop accepting, let answers in flight finish, then cancel the pairs in flight."""
        for runner in self._runners:
            await runner.cleanup()
        self._runners = []
        for task in list(self._pairs):
            task.cancel()
        await asyncio.gather(*self._pairs, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def settled(self) -> None:
        """Wait until no pair is in flight."""
        while self._pairs:
            await asyncio.gather(*list(self._pairs), return_exceptions=True)

    # ------------------------------------------------------------------ endpoints

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _page(self, request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "0"))
            limit = int(request.query.get("limit", "1000"))
        except ValueError:
            return web.json_response({"error": "after and limit are integers"}, status=400)
        if after < 0 or not 1 <= limit <= 10_000:
            return web.json_response(
                {"error": "after must be at least 0 and limit in [1, 10000]"}, status=400
            )
        kept = request.query.get("kept", "0") == "1"  # the controller never asks for the text
        return web.json_response(self.journal.page(after, limit, kept))

    def _proxy_to(self, variant: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def proxy(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            self._consider(variant, request, body)
            return await self._forward(variant, request, body)

        return proxy

    async def _forward(self, variant: str, request: web.Request, body: bytes) -> web.StreamResponse:
        assert self._http is not None
        headers = end_to_end(request.headers.items())
        code, response = 502, None
        try:
            async with self._http.request(
                request.method,
                self.upstreams[variant] + request.path_qs,
                headers=headers,
                data=body,
            ) as upstream:
                code = upstream.status
                response = await answer_from(request, upstream)
                await relay(upstream, response)
                return response
        except ConnectionResetError:
            code = 499  # the client went away
            return response if response is not None else web.Response(status=499)
        except (aiohttp.ClientError, TimeoutError) as exc:
            if response is not None:  # the upstream broke mid-answer: the client sees a cut
                return response
            code = 504 if isinstance(exc, TimeoutError) else 503
            message = f"{variant} is unreachable: {exc}"
            return web.json_response({"error": {"message": message, "code": code}}, status=code)
        finally:
            self._requests.labels(variant=variant, code=str(code)).inc()

    # ------------------------------------------------------------------ pairing

    def _consider(self, variant: str, request: web.Request, body: bytes) -> None:
        """Start a pair for this request when it is a completions request the sampler takes."""
        paired = _paired_body(request.method, request.path, body)
        if paired is None:
            self._outcomes.labels(outcome="unpaired").inc()
            return
        key = None if self.session is None else session_key(self.session, request.headers)
        outcome: str = self.sampler.take(self._clock(), key, self._rng.random())
        if outcome == "paired" and len(self._pairs) >= self.concurrency:
            outcome = "busy"
        if outcome != "paired":
            self._outcomes.labels(outcome=outcome).inc()
            return
        headers = {
            k: v
            for k, v in end_to_end(request.headers.items()).items()
            if k.lower() not in _BODY_HEADERS
        }
        pair = self._pair(variant, request.path, paired, headers)
        task = asyncio.get_running_loop().create_task(pair)
        self._pairs.add(task)
        task.add_done_callback(self._pairs.discard)

    async def _pair(
        self, served_by: str, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> None:
        stable, candidate = await asyncio.gather(
            self._ask("stable", path, body, headers),
            self._ask("candidate", path, body, headers),
        )
        if stable is None or candidate is None:
            self._outcomes.labels(outcome="failed").inc()
            return
        kept = (
            {"request": body, "stable": stable.text, "candidate": candidate.text}
            if self.keep_prompts
            else None
        )
        self.journal.add(self._wall(), served_by, score(stable, candidate), kept)
        self._outcomes.labels(outcome="scored").inc()

    async def _ask(
        self, variant: str, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> Answer | None:
        """The variant's :class:`~controlplane.analysis.quality.Answer` to ``body``, or None when
        it did not answer 200 with a choice carrying logprobs."""
        assert self._http is not None
        try:
            url = self.upstreams[variant] + path
            async with self._http.post(url, json=body, headers=headers) as upstream:
                if upstream.status != 200:
                    return None
                answer = await upstream.json(content_type=None)
            return answer_of(answer["choices"][0])
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, IndexError, TypeError):
            return None


def _paired_body(method: str, path: str, body: bytes) -> dict[str, Any] | None:
    """The paired request of a completions or chat completions POST, or None for any other."""
    if method != "POST" or not path.endswith(PAIRED_PATHS):
        return None
    try:
        user = json.loads(body)
        return paired_request(user) if isinstance(user, dict) else None
    except ValueError:  # not JSON, or neither a prompt nor messages
        return None
