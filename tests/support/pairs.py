"""vLLM-shaped model servers for the pairer's tests: each answers its own greedy tokens per
prompt, with the top logprobs asked, and records what it was sent (the shapes
``controlplane.analysis.quality.answer_of`` reads, checked against the real engine in
``tests/serving/test_vllm_cpu_quantized.py``), and the status the Deployment controller writes
on a pairer's Deployment (:func:`rolled_out`, for clusters that run no such controller)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from controlplane.local.ports import free_port


def rolled_out(generation: int = 1, **status: Any) -> dict[str, Any]:
    """A one-replica Deployment's status once its pod is available (kube-apiserver refuses
    ``availableReplicas`` above ``readyReplicas``), unless ``status`` says otherwise."""
    done = {"observedGeneration": generation, "replicas": 1, "updatedReplicas": 1}
    return {**done, "readyReplicas": 1, "availableReplicas": 1, **status}


STABLE = {"Hello": ["Hi", " there", "!"], "Bye": ["See", " you"]}
CANDIDATE = {"Hello": ["Hi", " here", "!"], "Bye": ["See", " you"]}


def choice(tokens: list[str], k: int) -> dict[str, Any]:
    """A completions choice with ``k`` top logprobs at each position, vLLM-shaped."""
    tops = [{t: -0.1, "?": -2.5, "…": -3.0} for t in tokens]
    logprobs = {
        "tokens": tokens,
        "token_logprobs": [-0.1] * len(tokens),
        "top_logprobs": [dict(list(top.items())[:k]) for top in tops],
        "text_offset": [],
    }
    return {"index": 0, "text": "".join(tokens), "logprobs": logprobs, "finish_reason": "stop"}


@dataclass
class Upstream:
    """A model server: ``answers`` per prompt; every request it got, in ``seen``."""

    name: str
    answers: dict[str, list[str]]
    status: int = 200
    hold: asyncio.Event | None = None
    """While set to an event not yet set, the pair's requests (those asking logprobs) wait."""
    seen: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    url: str = ""

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append(body)
        self.headers.append(dict(request.headers))
        if self.hold is not None and isinstance(body.get("logprobs"), int):
            await self.hold.wait()
        if self.status != 200:
            return web.json_response({"error": "down"}, status=self.status)
        tokens = self.answers[body["prompt"]]
        if body.get("stream"):
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            for token in tokens:
                chunk = {"choices": [{"index": 0, "text": token}]}
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            return response
        k = body.get("logprobs")
        if isinstance(k, int):
            out = choice(tokens, k)
        else:
            out = {"index": 0, "text": "".join(tokens), "finish_reason": "stop"}
        return web.json_response(
            {"model": body["model"], "choices": [out]}, headers={"x-served": self.name}
        )

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": self.name}]})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
