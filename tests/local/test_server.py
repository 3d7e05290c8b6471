"""The local model server: OpenAI-compatible answers (streamed too), vLLM metrics, faults.

A real aiohttp server on loopback with the simulated engine on a fast speed model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from controlplane.local.engines.simulated import SimulatedEngine, Speed
from controlplane.local.inject import Faults
from controlplane.local.server import ENGINE_HEADER, Identity, ModelServer

WHO = Identity("demo-llm", "default", "local-demo", "nf4", system_prompt="Be brief.")
FAST = Speed(
    decode_s_per_token=0.001, prefill_s_per_token=1e-6, kv_capacity_tokens=1e5, overhead_s=0.002
)
CHAT = {
    "model": "demo-llm",
    "messages": [{"role": "user", "content": "hello there"}],
    "max_tokens": 20,
}


def serve(
    test: Callable[[aiohttp.ClientSession, ModelServer], Awaitable[None]],
    faults: Faults | None = None,
) -> None:
    async def main() -> None:
        server = ModelServer(WHO, SimulatedEngine(FAST, "test", seed=3), faults, seed=3)
        await server.start()
        try:
            async with aiohttp.ClientSession(base_url=server.url) as session:
                await test(session, server)
        finally:
            await server.stop()

    asyncio.run(main())


def metric(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name{labels...}`` in exposition ``text`` (summed over others)."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name + "{"):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
            found = True
    assert found, f"no sample {name}{labels}"
    return total


def test_chat_completion_shape_and_metrics() -> None:
    async def check(session: aiohttp.ClientSession, server: ModelServer) -> None:
        async with session.post("/v1/chat/completions", json=CHAT) as r:
            assert r.status == 200
            assert r.headers[ENGINE_HEADER] == "simulated"
            body = await r.json()
        assert body["object"] == "chat.completion"
        assert body["model"] == "demo-llm"
        choice = body["choices"][0]
        assert choice["message"]["role"] == "assistant"
        assert choice["message"]["content"]
        assert choice["finish_reason"] in ("stop", "length")
        usage = body["usage"]
        assert 1 <= usage["completion_tokens"] <= 20
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        async with session.get("/metrics") as r:
            text = await r.text()
        sel = {
            "variant": "nf4",
            "canary": "local-demo",
            "namespace": "default",
            "model_name": "demo-llm",
        }
        assert metric(text, "vllm:request_success_total", **sel) == 1
        assert metric(text, "vllm:request_success_total", finished_reason="error") == 0
        assert metric(text, "vllm:e2e_request_latency_seconds_count", **sel) == 1
        assert metric(text, "vllm:time_to_first_token_seconds_count", **sel) == 1
        assert metric(text, "vllm:generation_tokens_total", **sel) == usage["completion_tokens"]
        assert metric(text, "vllm:prompt_tokens_total", **sel) == usage["prompt_tokens"]
        assert metric(text, "vllm:num_requests_running", **sel) == 0
        assert metric(text, "controlplane_local_engine_info", engine="simulated") == 1

    serve(check)


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completions"])
def test_streaming(chat: bool) -> None:
    async def check(session: aiohttp.ClientSession, server: ModelServer) -> None:
        path = "/v1/chat/completions" if chat else "/v1/completions"
        body: dict[str, Any] = (
            dict(CHAT) if chat else {"model": "demo-llm", "prompt": "Hi", "max_tokens": 30}
        )
        body |= {"stream": True, "stream_options": {"include_usage": True}}
        events = []
        async with session.post(path, json=body) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
            async for raw in r.content:
                line = raw.decode().strip()
                if line:
                    assert line.startswith("data: ")
                    events.append(line[6:])
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        usage = chunks[-1]["usage"]
        pieces = [c["choices"][0] for c in chunks if c["choices"]]
        text = "".join(p["delta"]["content"] if chat else p["text"] for p in pieces)
        assert len(text.split()) == usage["completion_tokens"]
        assert pieces[-1]["finish_reason"] in ("stop", "length")
        assert all(p["finish_reason"] is None for p in pieces[:-1])

    serve(check)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "other", "messages": [{"role": "user", "content": "x"}]}, 404, "does not exist"),
        ({"model": "demo-llm", "messages": []}, 400, "messages"),
        ({"model": "demo-llm", "messages": [{"role": "user"}]}, 400, "content"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, 400, "max_tokens"),
        (
            {"messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
            400,
            "temperature",
        ),
        ([1, 2], 400, "JSON object"),
    ],
    ids=[
        "wrong-model",
        "no-messages",
        "no-content",
        "zero-max-tokens",
        "bad-temperature",
        "not-object",
    ],
)
def test_bad_requests(body: Any, status: int, message: str) -> None:
    async def check(session: aiohttp.ClientSession, server: ModelServer) -> None:
        async with session.post("/v1/chat/completions", json=body) as r:
            assert r.status == status
            error = (await r.json())["error"]
        assert message in error["message"]

    serve(check)


def test_injected_faults() -> None:
    async def check(session: aiohttp.ClientSession, server: ModelServer) -> None:
        async def one() -> int:
            async with session.post("/v1/chat/completions", json=CHAT) as r:
                await r.read()
                return r.status

        statuses = await asyncio.gather(*(one() for _ in range(40)))  # at once, as load comes
        async with session.get("/metrics") as r:
            text = await r.text()
        errors = statuses.count(500)
        assert 8 <= errors <= 32  # 50% of 40, well within binomial tolerance
        assert metric(text, "vllm:request_success_total", finished_reason="error") == errors
        ttft_sum = metric(text, "vllm:time_to_first_token_seconds_sum")
        ttft_count = metric(text, "vllm:time_to_first_token_seconds_count")
        assert ttft_count == 40 - errors
        assert ttft_sum / ttft_count >= 0.05  # the injected 50 ms come before the first token

    serve(check, Faults(latency_s=0.05, error_fraction=0.5))
