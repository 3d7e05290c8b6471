"""The local server's OpenAI protocol, rule by rule, as read in vLLM 0.24.0 (pure, no server).

Each case names the vLLM file the rule comes from (docs/local.md, "What the engine answers").
"""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.local.openai_api import (
    READ_FROM,
    Prompt,
    RequestError,
    StopScanner,
    chat_prompt,
    completion_prompts,
    message_text,
    model_list,
    parse_request,
)
from controlplane.promql.contract import DEFAULT_VLLM_VERSION


def test_the_rules_were_read_from_the_pinned_vllm() -> None:
    """A new pin fails here until the rules are read again from its source."""
    assert READ_FROM == DEFAULT_VLLM_VERSION


# ----------------------------------------------------------------- chat content (chat_utils.py)


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("plain", "plain"),
        ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "a\nb"),
        (["a", {"type": "input_text", "text": "b"}, {"type": "output_text", "text": "c"}],
         "a\nb\nc"),
        ([{"type": "refusal", "refusal": "no"}, {"type": "thinking", "thinking": "hm"}], "no\nhm"),
        ([{"type": "text", "text": "a"}, {"type": "text"}, {"type": "text", "text": ""}], "a"),
        ([], ""),
        (None, ""),
    ],
    ids=["string", "text-parts", "input-output-text", "refusal-thinking", "empty-skipped",
         "no-parts", "null"],
)  # fmt: skip
def test_message_content_is_its_text_parts_joined_by_newlines(content: object, text: str) -> None:
    assert message_text(content) == text


@pytest.mark.parametrize(
    ("part", "message"),
    [
        ({"type": "image_url", "image_url": {"url": "x"}}, "org/m is not a multimodal model"),
        ({"image_url": "x"}, "org/m is not a multimodal model"),  # no type: read by its key
        ({"type": "input_audio", "input_audio": {}}, "not a multimodal model"),
        ({"type": "sound"}, "Unsupported chat content part type: 'sound'"),
        ({"text": "x"}, "Missing 'type' field in multimodal part."),
        ({"type": 3}, "Invalid 'type' field in multimodal part."),
    ],
    ids=["image", "image-untyped", "audio", "unknown", "untyped", "bad-type"],
)
def test_parts_a_text_model_cannot_read_are_refused(part: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestError, match=message.replace("(", r"\(")) as refused:
        message_text([part], root="org/m")
    assert refused.value.status == 400


def test_chat_prompt_puts_the_system_prompt_first_and_reads_each_message() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}, "there"]}]
    assert chat_prompt(messages, "Be brief.") == "system: Be brief.\nuser: hi\nthere"


# ----------------------------------------------------------------- prompts (preprocess.py)


def test_completion_prompts_take_every_shape_vllm_takes() -> None:
    assert completion_prompts("a") == (Prompt("a"),)
    assert completion_prompts(["a", "b"]) == (Prompt("a"), Prompt("b"))
    assert completion_prompts([1, 2, 3]) == (Prompt("", (1, 2, 3)),)
    assert completion_prompts([[1, 2], [3]]) == (Prompt("", (1, 2)), Prompt("", (3,)))
    assert completion_prompts([]) == ()  # prompt_to_seq: no prompt, no choice


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ([[1], []], "The decoder prompt cannot be empty"),
        ([1, -2], "'prompt' must be"),
        ([True], "'prompt' must be"),
        (["a", 1], "'prompt' must be"),
        ({"prompt": "a"}, "'prompt' must be"),
    ],
    ids=["empty-token-list", "negative-id", "bool", "mixed", "object"],
)
def test_prompts_vllm_refuses(prompt: object, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        completion_prompts(prompt)


# ----------------------------------------------------------------- the request (protocol, params)


def test_a_chat_request_reads_n_stop_max_completion_tokens_and_usage_options() -> None:
    req = parse_request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "n": 3,
            "stop": "x",
            "max_tokens": 9,
            "max_completion_tokens": 5,  # wins over max_tokens, as in chat_completion/serving.py
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        },
        chat=True,
        model="m",
    )
    assert (req.n, req.stop, req.max_tokens) == (3, ("x",), 5)
    assert (req.stream, req.include_usage, req.continuous_usage) == (True, True, True)
    assert req.prompts == (Prompt("user: hi"),)


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        ({"n": 0}, "n must be at least 1, got 0.", None),
        ({"n": 16385}, "n must be at most 16384, got 16385.", None),
        ({"n": 2, "temperature": 0}, "n must be 1 when using greedy sampling, got 2.", None),
        ({"temperature": 2.5}, "temperature must be in [0, 2], got 2.5.", "temperature"),
        ({"temperature": -1}, "temperature must be non-negative, got -1.", "temperature"),
        ({"max_tokens": 0}, "max_tokens must be at least 1, got 0.", "max_tokens"),
        ({"stop": ["a", ""]}, "stop cannot contain an empty string.", None),
        ({"stop": ""}, "stop cannot contain an empty string.", None),
        ({"stop": 3}, "'stop' must be a string or a list of strings", "stop"),
        ({"stream_options": {"include_usage": True}}, "Stream options can only be defined",
         "stream_options"),
        ({"prompt": ""}, "Either prompt or prompt_embeds must be provided", "prompt"),
        ({"prompt": None}, "Either prompt or prompt_embeds must be provided", "prompt"),
        ({"n": None}, "'n' must be an integer", "n"),
    ],
    ids=["n-0", "n-too-many", "greedy-n", "hot", "negative-temperature", "max-tokens-0",
         "empty-stop", "empty-stop-string", "stop-not-text", "stream-options-alone", "empty-prompt",
         "null-prompt", "null-n-completions"],
)  # fmt: skip
def test_values_vllm_refuses_with_its_message(
    body: dict[str, Any], message: str, param: str | None
) -> None:
    with pytest.raises(RequestError) as refused:
        parse_request({"prompt": "hi", **body}, chat=False, model="m")
    assert str(refused.value).startswith(message)
    assert (refused.value.status, refused.value.param) == (400, param)


def test_a_null_n_is_one_on_chat() -> None:
    """``ChatCompletionRequest.n`` is ``int | None``; ``CompletionRequest.n`` is ``int``."""
    body = {"messages": [{"role": "user", "content": "hi"}], "n": None}
    assert parse_request(body, chat=True, model="m").n == 1


def test_another_model_is_a_404_and_no_model_is_fine() -> None:
    with pytest.raises(RequestError, match=r"The model `x` does not exist\.") as refused:
        parse_request({"model": "x", "prompt": "hi"}, chat=False, model="m")
    assert (refused.value.status, refused.value.kind, refused.value.param) == (
        404,
        "NotFoundError",
        "model",
    )
    assert parse_request({"prompt": "hi"}, chat=False, model="m").prompts == (Prompt("hi"),)


# ----------------------------------------------------------------- stop strings (detokenizer.py)


def test_a_stop_string_cuts_the_text_before_it() -> None:
    scan = StopScanner(("the",))
    assert scan.feed("look at ") == (None, 8)
    assert scan.feed("them") == ("the", 3)  # 3 characters of "them" reach the end of the match
    assert scan.text == "look at "


def test_a_stop_string_split_across_chunks_is_found_and_never_streamed() -> None:
    scan = StopScanner(("STOP",))
    sent = []
    for piece in ("abc S", "TO", "P tail"):
        stop, _ = scan.feed(piece)
        sent.append(scan.emit(finished=stop is not None))
    assert stop == "STOP"
    assert sent == ["ab", "c ", ""]  # len("STOP") - 1 characters held back until it finishes


def test_include_stop_str_in_output_keeps_the_match() -> None:
    scan = StopScanner(("b",), include_in_output=True)
    assert scan.feed("abc") == ("b", 2)
    assert scan.emit(finished=True) == "ab"


def test_the_first_listed_stop_wins_not_the_earliest() -> None:
    scan = StopScanner(("b", "a"))
    assert scan.feed("ab")[0] == "b"
    assert scan.text == "a"


def test_without_stop_strings_nothing_is_held_back() -> None:
    scan = StopScanner()
    assert scan.feed("abc") == (None, 3)
    assert scan.emit(finished=False) == "abc"


# ----------------------------------------------------------------- /v1/models (engine/protocol.py)


def test_the_model_card_has_vllms_fields() -> None:
    (card,) = model_list("m", "org/m", 4096)["data"]
    assert set(card) == {
        "id",
        "object",
        "created",
        "owned_by",
        "root",
        "parent",
        "max_model_len",
        "permission",
    }
    assert (card["owned_by"], card["root"], card["max_model_len"]) == ("vllm", "org/m", 4096)
    assert card["permission"][0]["object"] == "model_permission"
