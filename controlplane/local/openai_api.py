"""What the local model server answers of the OpenAI API: vLLM 0.24.0's rules, read from its source.

Owns the protocol half of :mod:`controlplane.local.server`, with no I/O: reading a body into a
:class:`Request` or refusing it with vLLM's status, message and ``param``, vLLM's stop-string
check and the bodies vLLM answers. Every rule was read in vLLM :data:`READ_FROM`; docs/local.md,
"What the engine answers, as vLLM 0.24.0", gives the source file of each.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.errors import ControlPlaneError

READ_FROM = "0.24.0"
"""The vLLM release whose source these rules were read from."""
MAX_N = 16384
"""``VLLM_MAX_N_SEQUENCES``' default (``envs.py``): the largest ``n`` vLLM accepts."""
SAMPLING_EPS = 1e-5
"""``_SAMPLING_EPS`` (``sampling_params.py``): a temperature below it is greedy sampling."""
TEXT_PARTS: Mapping[str, str] = {
    "text": "text",
    "input_text": "text",
    "output_text": "text",
    "refusal": "refusal",
    "thinking": "thinking",
    "tool_reference": "name",
}
"""Content part types read as text for a text-only model, and the key holding their text."""
MEDIA_PARTS = frozenset(
    {
        "image_url",
        "input_image",
        "image_pil",
        "image_embeds",
        "audio_url",
        "input_audio",
        "audio_embeds",
        "video_url",
        "prompt_embeds",
    }
)
"""Content part types that need a multimodal model (or prompt embeds), which no engine here is."""
SUPPORTED_PARTS = ", ".join(sorted(TEXT_PARTS.keys() | MEDIA_PARTS))


class RequestError(ControlPlaneError):
    """A request vLLM refuses: ``status``, the message, ``param`` and the error ``kind``.

    ``kind`` is vLLM's ``type``: ``BadRequestError`` for what SamplingParams or the renderer
    refuses, ``Bad Request`` for what the request model's validation refuses, ``NotFoundError``.
    """

    def __init__(
        self,
        message: str,
        status: int = 400,
        param: str | None = None,
        kind: str = "BadRequestError",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.kind = kind


def _invalid(message: str, param: str, value: object = None) -> RequestError:
    """A ``VLLMValidationError``: its text names the parameter (and the value) as vLLM's does."""
    extras = [f"parameter={param}"] + ([f"value={value}"] if value is not None else [])
    return RequestError(f"{message} ({', '.join(extras)})", param=param)


def _schema(message: str, param: str) -> RequestError:
    """What the request model's validation refuses: FastAPI's 400 ``Bad Request``."""
    return RequestError(message, param=param, kind="Bad Request")


@dataclass(frozen=True)
class Prompt:
    """One prompt: its text, or the token ids it was given as (then ``text`` is empty)."""

    text: str
    token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Request:
    """A chat or completions request, read and checked as vLLM 0.24.0 does."""

    chat: bool
    prompts: tuple[Prompt, ...]
    n: int = 1
    max_tokens: int | None = None
    """What the client asked for; None: the server's default."""
    temperature: float = 1.0
    ignore_eos: bool = False
    stop: tuple[str, ...] = ()
    include_stop_str_in_output: bool = False
    stream: bool = False
    include_usage: bool = False
    continuous_usage: bool = False


def parse_request(
    body: object, *, chat: bool, model: str, system_prompt: str | None = None, root: str = ""
) -> Request:
    """``body`` of ``/v1/chat/completions`` (``chat``) or ``/v1/completions`` as a :class:`Request`.

    ``model`` is the served name (another one is a 404, no name at all is fine, as in vLLM);
    ``system_prompt`` is prepended to chat prompts; ``root`` names the model in vLLM's refusal of
    media parts. Raises :class:`RequestError`.
    """
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    stream = bool(body.get("stream", False))
    options = body.get("stream_options")
    if options and not stream:
        raise _schema("Stream options can only be defined when `stream=True`.", "stream_options")
    if options is not None and not isinstance(options, dict):
        raise _schema("'stream_options' must be an object", "stream_options")
    options = options if isinstance(options, dict) else {}
    include_usage = bool(options.get("include_usage"))  # api_utils.py, should_include_usage
    continuous = include_usage and bool(options.get("continuous_usage_stats"))
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _schema("'messages' must be a non-empty list", "messages")
        _check_messages(messages)
    else:
        prompt = body.get("prompt")
        if prompt is None or prompt == "":
            raise _schema(
                "Either prompt or prompt_embeds must be provided and non-empty. (parameter=prompt)",
                "prompt",
            )
    n = body.get("n", 1)
    if n is None and chat:  # ChatCompletionRequest.n is ``int | None``; CompletionRequest's int
        n = 1
    max_tokens = body.get("max_tokens")
    if chat and body.get("max_completion_tokens") is not None:
        max_tokens = body["max_completion_tokens"]
    temperature = body.get("temperature")
    temperature = 1.0 if temperature is None else temperature
    stop = _stop(body.get("stop"))
    include_stop = body.get("include_stop_str_in_output", False)
    ignore_eos = body.get("ignore_eos", False)
    for name, value, kind in (
        ("n", n, "an integer"),
        ("max_tokens", 1 if max_tokens is None else max_tokens, "an integer"),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _schema(f"'{name}' must be {kind}", name)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise _schema("'temperature' must be a number", "temperature")
    for name, flag in (("ignore_eos", ignore_eos), ("include_stop_str_in_output", include_stop)):
        if not isinstance(flag, bool):
            raise _schema(f"'{name}' must be a boolean", name)
    requested = body.get("model")
    if requested and requested != model:
        raise RequestError(
            f"The model `{requested}` does not exist.", 404, "model", kind="NotFoundError"
        )
    prompts = (
        (Prompt(chat_prompt(body["messages"], system_prompt, root)),)
        if chat
        else completion_prompts(body["prompt"])
    )
    _check_sampling(n, float(temperature), max_tokens, stop)
    return Request(
        chat=chat,
        prompts=prompts,
        n=n,
        max_tokens=max_tokens,
        temperature=float(temperature),
        ignore_eos=ignore_eos,
        stop=stop,
        include_stop_str_in_output=include_stop,
        stream=stream,
        include_usage=include_usage,
        continuous_usage=continuous,
    )


def _check_messages(messages: list[Any]) -> None:
    """The request model's part: every message an object with a string ``role``."""
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise _schema("each message needs a string 'role'", "messages")
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _schema(
                "each message's 'content' must be a string or a list of content parts", "messages"
            )


def _stop(stop: object) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return tuple(stop)
    raise _schema("'stop' must be a string or a list of strings", "stop")


def _check_sampling(
    n: int, temperature: float, max_tokens: int | None, stop: tuple[str, ...]
) -> None:
    """SamplingParams' own checks, in its order (``_verify_args``, then the greedy one)."""
    if n < 1:
        raise RequestError(f"n must be at least 1, got {n}.")
    if n > MAX_N:
        raise RequestError(
            f"n must be at most {MAX_N}, got {n}. To increase this limit, set the "
            "VLLM_MAX_N_SEQUENCES environment variable."
        )
    if not math.isfinite(temperature):
        raise _invalid(f"temperature must be a finite number, got {temperature}.", "temperature")
    if temperature < 0.0:
        raise _invalid(
            f"temperature must be non-negative, got {temperature}.", "temperature", temperature
        )
    if temperature > 2.0:
        raise _invalid(
            f"temperature must be in [0, 2], got {temperature}.", "temperature", temperature
        )
    if max_tokens is not None:
        check_max_tokens(max_tokens)
    if any(not s for s in stop):
        raise RequestError("stop cannot contain an empty string.")
    if temperature < SAMPLING_EPS and n > 1:
        raise RequestError(f"n must be 1 when using greedy sampling, got {n}.")


def check_max_tokens(max_tokens: int) -> None:
    """SamplingParams' check of the ``max_tokens`` it is given (the client's, or what is left)."""
    if max_tokens < 1:
        message = f"max_tokens must be at least 1, got {max_tokens}."
        raise _invalid(message, "max_tokens", max_tokens)


def too_long(prompt_tokens: int, max_model_len: int) -> RequestError:
    """``get_max_tokens``' refusal of a prompt longer than the model's context."""
    return RequestError(
        f"Input length ({prompt_tokens}) exceeds model's maximum context length ({max_model_len})."
    )


def message_text(content: object, root: str = "") -> str:
    """The text of one chat message's ``content``, as vLLM renders it for a text-only model."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _schema(
            "each message's 'content' must be a string or a list of content parts", "messages"
        )
    texts = [text for part in content if (text := _part_text(part, root))]
    return "\n".join(texts)


def _part_text(part: object, root: str) -> str | None:
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        raise _schema("a content part must be a string or an object", "messages")
    kind = part.get("type")
    if kind is None or "uuid" in part:  # vLLM reads such a part by the key it carries
        kind = next((key for key in (*MEDIA_PARTS, "tool_reference") if key in part), None)
        if kind is None:
            raise RequestError("Missing 'type' field in multimodal part.")
    if not isinstance(kind, str):
        raise RequestError("Invalid 'type' field in multimodal part.")
    if kind in TEXT_PARTS:
        text = part.get(TEXT_PARTS[kind])
        if text is not None and not isinstance(text, str):
            raise _schema(f"the '{TEXT_PARTS[kind]}' of a {kind} part must be a string", "messages")
        return text
    if kind in MEDIA_PARTS:
        raise RequestError(f"{root or 'this model'} is not a multimodal model")
    raise _invalid(
        f"Unsupported chat content part type: {kind!r}. Supported types: {SUPPORTED_PARTS}.",
        "type",
        kind,
    )


def chat_prompt(messages: Iterable[Any], system_prompt: str | None = None, root: str = "") -> str:
    """The prompt text of a conversation: ``role: text`` lines, the variant's system prompt first.

    The server's own stand-in for a chat template; the text of each message is vLLM's.
    """
    lines = [f"system: {system_prompt}"] if system_prompt else []
    for m in messages:
        lines.append(f"{m.get('role', 'user')}: {message_text(m.get('content'), root)}")
    return "\n".join(lines)


def completion_prompts(prompt: object) -> tuple[Prompt, ...]:
    """The prompts of a ``/v1/completions`` ``prompt``; ``[]`` is none (``prompt_to_seq``)."""
    if isinstance(prompt, str):
        return (Prompt(prompt),)
    if isinstance(prompt, list):
        if all(_token_id(t) for t in prompt):
            return (_tokens(prompt),) if prompt else ()
        if all(isinstance(p, str) for p in prompt):
            return tuple(Prompt(p) for p in prompt)
        if all(isinstance(p, list) and all(_token_id(t) for t in p) for p in prompt):
            return tuple(_tokens(p) for p in prompt)
    raise _schema(
        "'prompt' must be a string, a list of strings, a list of token ids (integers >= 0) or a "
        "list of such lists",
        "prompt",
    )


def _token_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tokens(ids: list[int]) -> Prompt:
    if not ids:  # input_processor.py, _validate_prompt_len
        raise RequestError("The decoder prompt cannot be empty")
    return Prompt("", tuple(ids))


class StopScanner:
    """vLLM's stop strings on one choice's generated text (``v1/engine/detokenizer.py``).

    :meth:`feed` appends new text and checks only where a match could end in it; the stops are
    tried in the order given and the first that matches wins; the text is cut before the match
    (after it with ``include_stop_str_in_output``). :meth:`emit` gives the text not sent yet,
    holding back ``max(len(stop)) - 1`` characters until the choice finishes, so a stream never
    shows the start of a stop string it then removes.
    """

    def __init__(self, stop: tuple[str, ...] = (), include_in_output: bool = False) -> None:
        self.stop = stop
        self.include_in_output = include_in_output
        self.text = ""
        self._sent = 0
        self._hold = max(len(s) for s in stop) - 1 if stop and not include_in_output else 0

    def feed(self, new: str) -> tuple[str | None, int]:
        """Append ``new``; return the stop string matched (or None) and how many characters of
        ``new`` the output used up to the end of that match (all of ``new`` when none)."""
        offset = len(self.text)
        self.text += new
        if not new or not self.stop:
            return None, len(new)
        for stop in self.stop:
            at = self.text.find(stop, max(0, offset - len(stop) + 1))
            if at == -1:
                continue
            self.text = self.text[: at + len(stop) if self.include_in_output else at]
            return stop, min(len(new), at + len(stop) - offset)
        return None, len(new)

    def emit(self, finished: bool) -> str:
        """The text to send now: all of it once ``finished``, else all but the held-back tail."""
        end = len(self.text) - (0 if finished else self._hold)
        if end <= self._sent:
            return ""
        out, self._sent = self.text[self._sent : end], end
        return out


# ----------------------------------------------------------------- response bodies


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """``UsageInfo``."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def error_body(error: RequestError) -> dict[str, Any]:
    """``ErrorResponse``: ``{"error": {"message", "type", "param", "code"}}``."""
    return {
        "error": {
            "message": str(error),
            "type": error.kind,
            "param": error.param,
            "code": error.status,
        }
    }


def stream_choice(
    chat: bool,
    index: int,
    text: str,
    finish: str | None = None,
    stop_reason: str | None = None,
    role: str | None = None,
) -> dict[str, Any]:
    """One choice of a stream chunk; chat's first one per choice carries the ``role``."""
    choice: dict[str, Any] = {"index": index}
    if chat:
        choice["delta"] = {"role": role, "content": text} if role else {"content": text}
    else:
        choice["text"] = text
    choice |= {"logprobs": None, "finish_reason": finish}
    if finish is not None or not chat:
        choice["stop_reason"] = stop_reason
    return choice


def stream_body(
    rid: str,
    model: str,
    chat: bool,
    created: int,
    choices: list[dict[str, Any]],
    counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` / ``text_completion`` stream chunk (usage only when given)."""
    body: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if counts is not None:
        body["usage"] = counts
    return body


def full_choice(
    chat: bool, index: int, text: str, finish: str, stop_reason: str | None
) -> dict[str, Any]:
    """One choice of a whole (not streamed) answer."""
    choice: dict[str, Any] = {"index": index}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return choice | {"logprobs": None, "finish_reason": finish, "stop_reason": stop_reason}


def full_body(
    rid: str,
    model: str,
    chat: bool,
    created: int,
    choices: list[dict[str, Any]],
    counts: dict[str, int],
) -> dict[str, Any]:
    """A whole ``chat.completion`` / ``text_completion`` answer."""
    return {
        "id": rid,
        "object": "chat.completion" if chat else "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": counts,
    }


def model_list(model: str, root: str | None, max_model_len: int | None) -> dict[str, Any]:
    """``ModelList`` with the one ``ModelCard`` vLLM serves, created now as vLLM's is."""
    now = int(time.time())
    permission = {
        "id": f"modelperm-{uuid.uuid4().hex}",
        "object": "model_permission",
        "created": now,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }
    card = {
        "id": model,
        "object": "model",
        "created": now,
        "owned_by": "vllm",
        "root": root if root is not None else model,
        "parent": None,
        "max_model_len": max_model_len,
        "permission": [permission],
    }
    return {"object": "list", "data": [card]}
