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
from prometheus_client import generate_latest

from controlplane.local.engines.simulated import SimulatedEngine, Speed
from controlplane.local.inject import Faults
from controlplane.local.server import ENGINE_HEADER, Identity, ModelServer, one_two_five

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
        # the same tokens, observed once at the request's end beside its end-to-end latency
        # (vLLM 0.24.0's vllm:request_generation_tokens, 1-2-5 buckets to the context length)
        tokens = usage["completion_tokens"]
        assert metric(text, "vllm:request_generation_tokens_sum", **sel) == tokens
        assert metric(text, "vllm:request_generation_tokens_count", **sel) == 1
        assert metric(text, "vllm:request_generation_tokens_bucket", le="5.0", **sel) == (
            1 if tokens <= 5 else 0
        )
        assert metric(text, "vllm:prompt_tokens_total", **sel) == usage["prompt_tokens"]
        assert metric(text, "vllm:num_requests_running", **sel) == 0
        assert metric(text, "controlplane_local_engine_info", kind="simulated") == 1
        # vllm serve's HTTP counter: the route, method and grouped status; /metrics left out
        http = {"handler": "/v1/chat/completions", "method": "POST", "status": "2xx"}
        assert metric(text, "http_requests_total", **http) == 1
        assert 'handler="/metrics"' not in text
        # every finish reason of vLLM v1 exists from the start, at 0
        for reason in ("abort", "error", "repetition"):
            assert metric(text, "vllm:request_success_total", finished_reason=reason) == 0

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
        ({"model": "demo-llm", "messages": [{"content": "x"}]}, 400, "role"),
        ({"messages": [{"role": "user", "content": 3}]}, 400, "content"),
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
        "no-role",
        "content-not-text",
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
        async with session.get("/metrics") as r:
            text = await r.text()
        # refused before the engine: only a 4xx in the HTTP counter, no finish
        assert metric(text, "http_requests_total", status="4xx") == 1
        assert metric(text, "vllm:request_success_total") == 0

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
        # Binomial(40, 0.5): outside 5..35 with probability 2 * P(X <= 4) = 1.9e-7
        assert 5 <= errors <= 35
        # an HTTP 500 before the engine, as an exception in vLLM's API layer: 5xx, no finish
        assert metric(text, "http_requests_total", status="5xx") == errors
        assert metric(text, "http_requests_total", status="2xx") == 40 - errors
        assert metric(text, "vllm:request_success_total", finished_reason="error") == 0
        assert metric(text, "vllm:request_success_total") == 40 - errors
        ttft_sum = metric(text, "vllm:time_to_first_token_seconds_sum")
        ttft_count = metric(text, "vllm:time_to_first_token_seconds_count")
        assert ttft_count == 40 - errors
        assert ttft_sum / ttft_count >= 0.05  # the injected 50 ms come before the first token

    serve(check, Faults(latency_s=0.05, error_fraction=0.5))


def test_an_injected_drift_slows_later_requests() -> None:
    """``latency-drift`` of one second per second: a request at the start waits about nothing,
    one sent 0.4 s later at least 0.4 s more (what a fixed delay or none would not do)."""

    async def check(session: aiohttp.ClientSession, server: ModelServer) -> None:
        async def timed() -> float:
            started = asyncio.get_running_loop().time()
            async with session.post("/v1/chat/completions", json=CHAT) as r:
                await r.read()
                assert r.status == 200
            return asyncio.get_running_loop().time() - started

        first = await timed()
        await asyncio.sleep(0.4)
        later = await timed()
        assert later >= 0.4, (first, later)
        assert first < later - 0.2, (first, later)

    serve(check, Faults(latency_drift=1.0))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_injected_engine_errors_count_as_vllm_does(stream: bool) -> None:
    """An engine ``error`` finish: vLLM answers 500 when not streamed (both counters see it) and
    an error event inside a 200 stream when streamed (only the finish sees it)."""

    async def check(session: aiohttp.ClientSession, server: ModelServer) -> None:
        async with session.post("/v1/chat/completions", json={**CHAT, "stream": stream}) as r:
            status = r.status
            body = await r.text()
        async with session.get("/metrics") as r:
            text = await r.text()
        assert metric(text, "vllm:request_success_total", finished_reason="error") == 1
        if stream:
            assert status == 200
            events = [ln[6:] for ln in body.splitlines() if ln.startswith("data: ")]
            assert events[-1] == "[DONE]"
            assert json.loads(events[-2])["error"]["code"] == 500
            assert metric(text, "http_requests_total", status="2xx") == 1
        else:
            assert status == 500
            assert json.loads(body)["error"]["type"] == "InternalServerError"
            assert metric(text, "http_requests_total", status="5xx") == 1

    serve(check, Faults(engine_error_fraction=1.0))


def test_client_disconnect_is_no_finish() -> None:
    """vLLM v1 aborts a request whose client went away without counting a finish (the abort
    path of ``OutputProcessor.abort_requests`` records no stats), and its HTTP counter keeps the
    200 the stream started with."""

    async def check(session: aiohttp.ClientSession, server: ModelServer) -> None:
        slow = ModelServer(WHO, SimulatedEngine(SLOW, "test", seed=3), seed=3)
        await slow.start()
        try:
            async with aiohttp.ClientSession(base_url=slow.url) as own:
                body = {**CHAT, "stream": True, "max_tokens": 200}
                async with own.post("/v1/chat/completions", json=body) as r:
                    assert r.status == 200
                    await r.content.readline()  # the first event, then hang up
                    r.close()
                for _ in range(100):  # the server notices at its next write
                    if metric_or_zero(slow, "vllm:num_requests_running") == 0:
                        break
                    await asyncio.sleep(0.02)
                async with own.get("/metrics") as r:
                    text = await r.text()
        finally:
            await slow.stop()
        assert metric(text, "vllm:num_requests_running") == 0
        assert metric(text, "vllm:request_success_total") == 0
        assert metric(text, "http_requests_total", status="2xx") == 1

    serve(check)


SLOW = Speed(decode_s_per_token=0.01, prefill_s_per_token=1e-6, kv_capacity_tokens=1e5)


def metric_or_zero(server: ModelServer, name: str) -> float:
    labels = dict(zip(LABELS, server.metrics.values, strict=True))
    value = server.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


LABELS = ("model_name", "engine", "namespace", "canary", "variant")


def test_max_model_len_caps_max_tokens_and_refuses_longer_prompts() -> None:
    """vLLM's ``get_max_tokens``: ``max_tokens`` is at most what the context leaves after the
    prompt, and a prompt longer than the context is a 400 before the engine."""

    async def check(session: aiohttp.ClientSession, server: ModelServer) -> None:
        short = ModelServer(
            Identity("demo-llm", "default", "local-demo", "nf4", max_model_len=20),
            SimulatedEngine(FAST, "test", seed=3),
            seed=3,
        )
        await short.start()
        try:
            async with aiohttp.ClientSession(base_url=short.url) as own:
                body = {"prompt": "one two three", "max_tokens": 5000, "ignore_eos": True}
                async with own.post("/v1/completions", json=body) as r:
                    assert r.status == 200
                    counts = (await r.json())["usage"]
                assert counts["prompt_tokens"] == 4
                assert counts["completion_tokens"] == 20 - 4
                async with own.post("/v1/completions", json={"prompt": "x " * 30}) as r:
                    assert r.status == 400
                    error = (await r.json())["error"]
                assert error["message"] == (
                    "Input length (40) exceeds model's maximum context length (20)."
                )
                async with own.get("/v1/models") as r:
                    assert (await r.json())["data"][0]["max_model_len"] == 20
        finally:
            await short.stop()

    serve(check)


def test_token_count_buckets_are_vllms_1_2_5() -> None:
    """``build_1_2_5_buckets`` of vLLM 0.24.0 (vllm/v1/metrics/loggers.py): its docstring's
    example, and a context length between two bounds."""
    assert one_two_five(100) == (1, 2, 5, 10, 20, 50, 100)
    assert one_two_five(8192)[-3:] == (1000, 2000, 5000)


def test_at_temperature_zero_an_answer_is_the_prompts_and_wrong_answers_differ() -> None:
    """Greedy decoding: two engines (other seeds) answer a prompt the same way at temperature 0;
    another prompt gets another answer; the ``wrong-answers`` fault answers other words."""
    body = {**CHAT, "temperature": 0}

    async def answer(faults: Faults | None, seed: int, content: str = "hello there") -> str:
        server = ModelServer(WHO, SimulatedEngine(FAST, "test", seed=seed), faults, seed=seed)
        await server.start()
        try:
            async with aiohttp.ClientSession(base_url=server.url) as session:
                question = {**body, "messages": [{"role": "user", "content": content}]}
                async with session.post("/v1/chat/completions", json=question) as resp:
                    assert resp.status == 200
                    text: str = (await resp.json())["choices"][0]["message"]["content"]
                    return text
        finally:
            await server.stop()

    async def main() -> None:
        first, second = await answer(None, 1), await answer(None, 2)
        assert first
        assert first == second
        assert await answer(None, 1, "another question") != first
        wrong = await answer(Faults(wrong_answer_fraction=1.0), 1)
        assert wrong
        assert wrong != first
        assert await answer(Faults(wrong_answer_fraction=1.0), 2) == wrong  # deterministic too

    asyncio.run(main())


def test_above_temperature_zero_answers_vary() -> None:
    async def main() -> None:
        server = ModelServer(WHO, SimulatedEngine(FAST, "test", seed=4), None, seed=4)
        await server.start()
        try:
            async with aiohttp.ClientSession(base_url=server.url) as session:
                texts = set()
                for _ in range(4):
                    async with session.post("/v1/chat/completions", json=CHAT) as resp:
                        texts.add((await resp.json())["choices"][0]["message"]["content"])
                assert len(texts) > 1
        finally:
            await server.stop()

    asyncio.run(main())


@pytest.mark.parametrize("shutdown_s", [0.0, 30.0], ids=["abort", "drain"])
def test_stopping_ends_requests_in_flight_as_vllm_shutdown_timeout_says(shutdown_s: float) -> None:
    """vLLM on SIGTERM (``--shutdown-timeout``, read in 0.24.0 and 0.32.0): at 0, its default, the
    engine ends what is in flight with finish reason ``abort``, a 200 carrying the tokens made so
    far (seen on the real vLLM 0.32.0 CPU engine: 63 of 1,000 tokens); above 0 it finishes."""

    async def main() -> tuple[list[tuple[int, str]], str]:
        engine = SimulatedEngine(SLOW, "test", seed=3)
        server = ModelServer(WHO, engine, seed=3, shutdown_s=shutdown_s)
        await server.start()
        long = {**CHAT, "max_tokens": 40, "ignore_eos": True}
        async with aiohttp.ClientSession(base_url=server.url) as session:

            async def ask(stream: bool) -> tuple[int, str]:
                body = {**long, "stream": stream}
                async with session.post("/v1/chat/completions", json=body) as r:
                    return r.status, await r.text()

            asks = [asyncio.create_task(ask(stream)) for stream in (False, True)]
            while engine.running() < 2:
                await asyncio.sleep(0.01)
            await server.stop()
            answers = list(await asyncio.gather(*asks))
        return answers, generate_latest(server.metrics.registry).decode()

    answers, text = asyncio.run(main())
    (whole_status, whole), (streamed_status, streamed) = answers
    assert whole_status == 200
    assert streamed_status == 200
    events = [json.loads(ln[6:]) for ln in streamed.splitlines() if ln.startswith("data: {")]
    reason = "abort" if shutdown_s == 0 else "length"
    assert json.loads(whole)["choices"][0]["finish_reason"] == reason
    assert events[-1]["choices"][0]["finish_reason"] == reason
    tokens = json.loads(whole)["usage"]["completion_tokens"]
    assert (tokens < 40) if shutdown_s == 0 else (tokens == 40)
    assert metric(text, "vllm:request_success_total", finished_reason=reason) == 2
