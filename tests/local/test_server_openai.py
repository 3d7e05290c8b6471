"""The local model server driven by the real ``openai`` client, and by GuideLLM's request body.

The server (simulated engine, fast speed model) runs on loopback in an event loop of its own
thread, so the synchronous ``openai.OpenAI`` client talks to it as a user or GuideLLM would. What
each answer must be is vLLM 0.24.0's (docs/local.md, "What the engine answers, as vLLM 0.24.0").
"""

from __future__ import annotations

import asyncio
import json
import platform
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from controlplane.local.engines.simulated import SimulatedEngine, Speed
from controlplane.local.server import Identity, ModelServer

# The client sends platform headers, and the standard library learns the processor's name by
# running `uname -p` once per process (then caches it): asked here, at import, so that no test
# starts a program (tests/support/tiers.py).
platform.platform()

WHO = Identity(
    "demo-llm", "default", "local-demo", "nf4", system_prompt="Be brief.", max_model_len=4096
)
FAST = Speed(
    decode_s_per_token=0.0005, prefill_s_per_token=1e-6, kv_capacity_tokens=1e5, overhead_s=0.001
)
USER = [{"role": "user", "content": "hello there how are you"}]


class Running:
    """A started server in its own event loop and thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = ModelServer(WHO, SimulatedEngine(FAST, "test", seed=3), seed=3)
        self._call(self.server.start())
        self.client = openai.OpenAI(base_url=f"{self.server.url}/v1", api_key="x", max_retries=0)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the server's registry, summed over the labels not given."""
        total = 0.0
        for family in self.server.metrics.registry.collect():
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total

    def stop(self) -> None:
        self.client.close()
        self._call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def running() -> Iterator[Running]:
    server = Running()
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------- chat


@pytest.mark.parametrize("parts", [False, True], ids=["string", "content-parts"])
def test_chat_with_string_or_content_parts(running: Running, parts: bool) -> None:
    content: Any = (
        [{"type": "text", "text": "hello there"}, {"type": "text", "text": "how are you"}]
        if parts
        else "hello there\nhow are you"  # what vLLM makes of the two parts: joined by "\n"
    )
    answer = running.client.chat.completions.create(
        model="demo-llm", messages=[{"role": "user", "content": content}], max_tokens=20
    )
    (choice,) = answer.choices
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert answer.usage is not None
    prompt = "system: Be brief.\nuser: hello there\nhow are you"
    assert answer.usage.prompt_tokens == running.server.engine.count_tokens(prompt)
    assert answer.usage.completion_tokens == len(choice.message.content.split())


@pytest.mark.parametrize("parts", [False, True], ids=["string", "content-parts"])
def test_chat_streamed(running: Running, parts: bool) -> None:
    content: Any = [{"type": "text", "text": "hello there"}] if parts else "hello there"
    stream = running.client.chat.completions.create(
        model="demo-llm",
        messages=[{"role": "user", "content": content}],
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"  # the role first, with no text
    assert chunks[0].choices[0].delta.content == ""
    pieces = [c.choices[0] for c in chunks if c.choices]
    text = "".join(p.delta.content or "" for p in pieces)
    assert pieces[-1].finish_reason in ("stop", "length")
    assert all(p.finish_reason is None for p in pieces[:-1])
    usage = chunks[-1].usage
    assert usage is not None
    assert not chunks[-1].choices
    assert usage.completion_tokens == len(text.split())


def test_chat_n_choices_and_what_the_metrics_count(running: Running) -> None:
    answer = running.client.chat.completions.create(
        model="demo-llm", messages=USER, max_tokens=12, n=3, temperature=0.8
    )
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert answer.usage is not None
    words = sum(len((c.message.content or "").split()) for c in answer.choices)
    assert answer.usage.completion_tokens == words  # summed over the choices
    prompt = answer.usage.prompt_tokens  # counted once in usage ...
    # ... while vLLM v1 runs a child request per choice: each one finishes, prefills and is timed
    assert running.metric("vllm:request_success_total") == 3
    assert running.metric("vllm:prompt_tokens_total") == 3 * prompt
    assert running.metric("vllm:generation_tokens_total") == words
    assert running.metric("vllm:e2e_request_latency_seconds_count") == 3
    assert running.metric("vllm:time_to_first_token_seconds_count") == 3
    assert running.metric("vllm:num_requests_running") == 0
    assert running.metric("http_requests_total", status="2xx") == 1


def test_chat_n_choices_streamed(running: Running) -> None:
    stream = running.client.chat.completions.create(
        model="demo-llm",
        messages=USER,
        max_tokens=15,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts: dict[int, str] = {0: "", 1: ""}
    finished: dict[int, str | None] = {}
    chunks = list(stream)
    assert [c.choices[0].delta.role for c in chunks[:2]] == ["assistant", "assistant"]
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason is not None:
                finished[choice.index] = choice.finish_reason
    assert set(finished) == {0, 1}
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens == sum(len(t.split()) for t in texts.values())


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_chat_stop_string(running: Running, stream: bool) -> None:
    """ignore_eos and many tokens: "the" (several of the placeholder words hold it) comes."""
    body: dict[str, Any] = {
        "model": "demo-llm",
        "messages": USER,
        "max_tokens": 200,
        "stop": ["the"],
        "extra_body": {"ignore_eos": True},
    }
    if stream:
        chunks = list(running.client.chat.completions.create(**body, stream=True))
        pieces = [c.choices[0] for c in chunks if c.choices]
        text = "".join(p.delta.content or "" for p in pieces)
        last = pieces[-1]
        finish, stop_reason = last.finish_reason, (last.model_extra or {}).get("stop_reason")
    else:
        answer = running.client.chat.completions.create(**body)
        (choice,) = answer.choices
        text = choice.message.content or ""
        finish, stop_reason = choice.finish_reason, (choice.model_extra or {}).get("stop_reason")
        assert answer.usage is not None
        assert len(text.split()) <= answer.usage.completion_tokens < 200
    assert "the" not in text
    assert (finish, stop_reason) == ("stop", "the")
    assert running.metric("vllm:request_success_total", finished_reason="stop") == 1


def test_include_stop_str_in_output_keeps_the_stop_string(running: Running) -> None:
    answer = running.client.completions.create(
        model="demo-llm",
        prompt="hello",
        max_tokens=200,
        stop="the",
        extra_body={"ignore_eos": True, "include_stop_str_in_output": True},
    )
    (choice,) = answer.choices
    assert choice.text.endswith("the")
    assert choice.text.count("the") == 1
    assert choice.finish_reason == "stop"


# ----------------------------------------------------------------- completions


@pytest.mark.parametrize(
    ("prompt", "prompts", "prompt_tokens"),
    [
        ("say hello", 1, 3),
        (["say hello", "say hello to everyone here"], 2, 3 + 7),
        ([1, 2, 3], 1, 3),
        ([[1, 2], [3]], 2, 3),
    ],
    ids=["string", "strings", "token-ids", "token-id-lists"],
)
def test_completions_prompt_shapes(
    running: Running, prompt: Any, prompts: int, prompt_tokens: int
) -> None:
    answer = running.client.completions.create(model="demo-llm", prompt=prompt, max_tokens=10)
    assert [c.index for c in answer.choices] == list(range(prompts))
    assert all(c.finish_reason in ("stop", "length") for c in answer.choices)
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == prompt_tokens  # a token-id prompt counts its length
    words = sum(len(c.text.split()) for c in answer.choices)
    assert answer.usage.completion_tokens == words
    assert running.metric("vllm:request_success_total") == prompts  # one request per prompt


def test_completions_n_per_prompt_indexed_prompt_major(running: Running) -> None:
    answer = running.client.completions.create(
        model="demo-llm", prompt=[[5, 6], [7]], max_tokens=8, n=2
    )
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == 3  # once per prompt, not per choice
    assert running.metric("vllm:prompt_tokens_total") == 2 * 3  # once per child request


def test_completions_streamed_with_several_prompts_and_n(running: Running) -> None:
    stream = running.client.completions.create(
        model="demo-llm",
        prompt=["one", "two"],
        max_tokens=10,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts: dict[int, str] = {}
    finished = set()
    chunks = list(stream)
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
            if choice.finish_reason is not None:
                finished.add(choice.index)
    assert finished == {0, 1, 2, 3}
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens == sum(len(t.split()) for t in texts.values())


def test_an_empty_prompt_list_is_no_choice(running: Running) -> None:
    """``prompt: []`` reaches no engine in vLLM 0.24.0 (``prompt_to_seq``): a 200, no choice."""
    answer = running.client.completions.create(model="demo-llm", prompt=[], max_tokens=5)
    assert answer.choices == []
    assert answer.usage is not None
    assert answer.usage.total_tokens == 0


# ----------------------------------------------------------------- models, errors


def test_models_list_parsed_by_the_client(running: Running) -> None:
    before = int(time.time())
    (model,) = running.client.models.list().data
    after = time.time()
    assert model.id == "demo-llm"
    assert before <= model.created <= after  # created as it answered (whole seconds, as vLLM)
    assert model.owned_by == "vllm"
    extra = model.model_extra or {}
    assert extra["max_model_len"] == 4096
    assert extra["root"] == "demo-llm"
    assert extra["permission"][0]["object"] == "model_permission"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        ({"n": 0}, openai.BadRequestError, "n must be at least 1, got 0."),
        ({"n": 2, "temperature": 0}, openai.BadRequestError, "n must be 1 when using greedy"),
        ({"stop": [""]}, openai.BadRequestError, "stop cannot contain an empty string."),
        ({"model": "other"}, openai.NotFoundError, "The model `other` does not exist."),
    ],
    ids=["n-0", "greedy-n", "empty-stop", "wrong-model"],
)
def test_errors_through_the_client(
    running: Running, call: dict[str, Any], error: type[Exception], message: str
) -> None:
    body: dict[str, Any] = {"model": "demo-llm", "messages": USER, "max_tokens": 4, **call}
    with pytest.raises(error, match=message) as raised:
        running.client.chat.completions.create(**body)
    assert isinstance(raised.value, openai.APIStatusError)
    body = raised.value.body  # the client keeps the "error" object of vLLM's body
    assert isinstance(body, dict)
    assert body["code"] == raised.value.status_code
    assert "param" in body


def test_an_empty_prompt_is_a_400_through_the_client(running: Running) -> None:
    with pytest.raises(openai.BadRequestError, match="Either prompt or prompt_embeds"):
        running.client.completions.create(model="demo-llm", prompt="", max_tokens=4)


# ----------------------------------------------------------------- GuideLLM's requests

GUIDELLM_TEXT = "the quick brown fox jumps over the lazy dog " * 8


def guidellm_chat(stream: bool, output_tokens: int) -> dict[str, Any]:
    """The body GuideLLM's ``ChatCompletionsRequestHandler.format`` sends by default.

    Read in GuideLLM 0.8.1 (the released wheel), ``guidellm/backends/openai/request_handlers.py``
    (same in the repository's tag v0.7.3): ``stream`` is on by default
    (``guidellm/schemas/backends/openai_http.py``), and then ``stream_options`` asks for usage and
    continuous usage; a synthetic data set's output length becomes ``max_completion_tokens`` with
    ``stop: null`` and ``ignore_eos: true``; the prompt is one user message whose content is a list
    with one ``text`` part.
    """
    body: dict[str, Any] = {"model": "demo-llm"}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
    body |= {"max_completion_tokens": output_tokens, "stop": None, "ignore_eos": True}
    body["messages"] = [{"role": "user", "content": [{"type": "text", "text": GUIDELLM_TEXT}]}]
    return body


def guidellm_completion(output_tokens: int) -> dict[str, Any]:
    """``TextCompletionsRequestHandler.format``'s body (same file): streamed, one string prompt."""
    return {
        "model": "demo-llm",
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        "max_tokens": output_tokens,
        "stop": None,
        "ignore_eos": True,
        "prompt": GUIDELLM_TEXT,
    }


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    lines = [ln[6:] for ln in response.text.splitlines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(ln) for ln in lines[:-1]]


def test_guidellms_default_chat_request_is_answered(running: Running) -> None:
    response = httpx.post(
        f"{running.server.url}/v1/chat/completions", json=guidellm_chat(True, 32), timeout=30
    )
    assert response.status_code == 200
    events = _events(response)
    with_choices = [e for e in events if e["choices"]]
    # continuous_usage_stats: every chunk carries the usage so far (what GuideLLM reads)
    assert all("usage" in e for e in with_choices)
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in with_choices)
    final = events[-1]
    assert final["choices"] == []
    assert final["usage"]["completion_tokens"] == 32 == len(text.split())  # ignore_eos
    assert with_choices[-1]["choices"][0]["finish_reason"] == "length"


def test_guidellms_chat_request_not_streamed_and_its_completions_request(
    running: Running,
) -> None:
    whole = httpx.post(
        f"{running.server.url}/v1/chat/completions", json=guidellm_chat(False, 16), timeout=30
    )
    assert whole.status_code == 200
    assert whole.json()["usage"]["completion_tokens"] == 16
    streamed = httpx.post(
        f"{running.server.url}/v1/completions", json=guidellm_completion(16), timeout=30
    )
    assert streamed.status_code == 200
    assert _events(streamed)[-1]["usage"]["completion_tokens"] == 16
