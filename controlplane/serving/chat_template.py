"""System-prompt variants: a vLLM chat template that injects a default system message (pure).

vLLM has no system-prompt flag, only ``--chat-template``, which replaces the model's own; so the
template prepends ``systemPrompt`` when a request has no system message, then formats as the model
family does. An unknown family (from ``storageUri``, :data:`FAMILIES`) is a SpecError, not a
guess: a wrong template silently ruins the quality the canary measures. See docs/serving.md,
"System prompt variants".
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from controlplane.errors import Problem, SpecError

LLAMA3 = (
    "{{- bos_token }}\n"
    "{%- for message in messages %}\n"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n"
)

CHATML = (
    "{%- for message in messages %}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "{{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)


@dataclass(frozen=True)
class Family:
    name: str
    markers: tuple[str, ...]
    template: str


# Matched in order against the lower-cased storageUri.
FAMILIES: tuple[Family, ...] = (
    Family("llama3", ("llama-3", "llama3", "meta-llama-3"), LLAMA3),
    Family("chatml", ("qwen", "chatml", "yi-", "hermes"), CHATML),
)


def family_of(storage_uri: str) -> Family | None:
    """The chat-template family of the checkpoint at ``storage_uri``, or None if unknown."""
    uri = storage_uri.lower()
    return next((f for f in FAMILIES if any(m in uri for m in f.markers)), None)


_PLAIN = frozenset(" .,;:!?-_()/@+=*'")


def jinja_string(text: str) -> str:
    """``text`` as a double-quoted Jinja string literal.

    Jinja decodes string literals with Python's ``unicode-escape``; everything but ASCII letters,
    digits, spaces and harmless punctuation is written as ``\\uXXXX`` / ``\\UXXXXXXXX``, so
    quotes, backslashes, braces, ``{%``, newlines and characters outside the BMP all survive.
    """
    out = []
    for ch in text:
        if ch.isascii() and (ch.isalnum() or ch in _PLAIN):
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


_PREFIX = re.compile(
    r"\{%- set messages = \[\{'role': 'system', 'content': \"((?:[^\"\\]|\\.)*)\"\}\] "
    r"\+ messages %\}"
)


def default_system_prompt(template: str) -> str | None:
    """The system message :func:`system_prompt_prefix` put in ``template`` (its inverse), or
    None when the template prepends none: what a stand-in for vLLM, which cannot run Jinja,
    applies as the template would (:mod:`controlplane.local.serve`)."""
    found = _PREFIX.search(template)
    if found is None:
        return None
    return codecs.decode(found.group(1), "unicode_escape")


def system_prompt_prefix(system_prompt: str) -> str:
    """Jinja that prepends the system message when the conversation has none."""
    literal = jinja_string(system_prompt)
    return (
        "{%- if messages | length == 0 or messages[0]['role'] != 'system' %}\n"
        f"{{%- set messages = [{{'role': 'system', 'content': {literal}}}] + messages %}}\n"
        "{%- endif %}\n"
    )


def chat_template(system_prompt: str, storage_uri: str, *, path: str) -> str:
    """The whole template for a variant; SpecError at ``path`` if the family is unknown."""
    family = family_of(storage_uri)
    if family is None:
        known = ", ".join(f"{f.name} ({'/'.join(f.markers)})" for f in FAMILIES)
        raise SpecError(
            [
                Problem(
                    path,
                    f"cannot tell the chat template family of {storage_uri!r}, which a "
                    f"systemPrompt needs (vLLM has no system-prompt flag; the controller "
                    f"injects it through --chat-template); known families: {known}",
                )
            ]
        )
    return system_prompt_prefix(system_prompt) + family.template
