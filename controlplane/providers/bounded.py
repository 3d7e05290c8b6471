"""Reading answers from HTTP endpoints a tenant may choose, within bounds.

A spec may name a server the controller does not trust; its answer may be huge, nested deep
enough to exhaust the parser, or an internal page. Owns the bounds every such reader applies (a
capped read with a deadline, a nesting check before parsing, an error body as JSON or None, text
clipped without the answer's bytes). Imports no HTTP client. Used by the Prometheus provider, the
Argo gates, the notifier and the git hosts. See docs/security.md.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

import numpy as np

MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""The default cap on an answer's (decoded) body."""
MAX_ANSWER_DEPTH = 64
"""The default cap on an answer's JSON nesting (Prometheus' answers nest 6 deep, Argo's ~15)."""
ERROR_TEXT_CHARS = 200
"""A server's own error text is cut to this many characters in a message."""

_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_STEP = np.zeros(256, dtype=np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
_QUOTE = ord('"')
_SCAN = 1 << 22
_BYTES = re.compile(r"b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\"")


def size_text(count: int) -> str:
    """``16 MiB`` / ``512 KiB`` / ``1000 bytes``."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} bytes"


def clip(text: str, limit: int = ERROR_TEXT_CHARS) -> str:
    """``text`` on one line (runs of whitespace and control characters as one space), cut to
    ``limit`` characters (``...`` marks the cut)."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 3)] + "..."


def without_bytes(text: str, limit: int = 300) -> str:
    """A transport error's text (host, port, path: what failed) without the bytes of the answer
    a library may quote in it (urllib3's invalid chunk-length line, ``b'...'``), clipped."""
    return clip(_BYTES.sub("b'...'", text), limit)


def declared_over(headers: Mapping[str, str], max_bytes: int) -> bool:
    """True when the answer's ``Content-Length`` says it is longer than ``max_bytes``."""
    declared = str(headers.get("Content-Length") or "").strip()
    return declared.isdigit() and int(declared) > max_bytes


class Readable(Protocol):
    """What :func:`arriving` reads from: urllib3's ``HTTPResponse`` (``requests``' ``raw``)."""

    def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes: ...


def arriving(raw: Readable, size: int = 64 * 1024) -> Iterator[bytes]:
    """The body of ``raw`` as it arrives: each piece at most ``size`` bytes, decoded, returned
    as soon as the network has it (``read1``; requests' ``iter_content`` would wait for ``size``
    bytes, so a server dripping bytes would never meet the deadline of :func:`read_capped`)."""
    while True:
        piece = raw.read1(size, decode_content=True)
        if not piece:
            return
        yield piece


def read_capped(
    chunks: Iterable[bytes], max_bytes: int, deadline: float | None = None
) -> bytearray | str:
    """The bytes of ``chunks`` (a body being read); or why they were refused: ``over 16 MiB``
    once more than ``max_bytes`` came (reading stops there), ``not read within the timeout``
    when chunks still come at ``deadline`` (``time.monotonic()``)."""
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:
            return f"over {size_text(max_bytes)}"
        if deadline is not None and time.monotonic() > deadline:
            return "not read within the timeout"
    return body


def nesting_over(body: bytes | bytearray, limit: int = MAX_ANSWER_DEPTH) -> bool:
    """True when the JSON text ``body`` nests arrays and objects deeper than ``limit``.

    Brackets inside strings do not count. Text that is not JSON is left to the parser. Numpy over
    the structural characters only: about 10 ms per MiB."""
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)  # escapes live in strings only: \" no longer counts
    codes = np.frombuffer(body.translate(None, _NOT_STRUCTURE), dtype=np.uint8)
    depth, quoted = 0, False
    for start in range(0, len(codes), _SCAN):
        part = codes[start : start + _SCAN]
        inside = np.logical_xor.accumulate(part == _QUOTE)
        if quoted:
            inside = ~inside
        steps = _STEP[part]
        steps[inside] = 0
        levels = np.cumsum(steps, dtype=np.int64)
        if depth + int(levels.max()) > limit:
            return True
        depth += int(levels[-1])
        quoted = bool(inside[-1])
    return False


def json_object(
    body: bytes | bytearray | str, max_bytes: int | None = None
) -> dict[str, Any] | None:
    """``body`` parsed, when it is a JSON object of at most ``max_bytes`` nesting at most
    :data:`MAX_ANSWER_DEPTH`; else None (too long, too deep, not JSON, not an object). For the
    error answers whose own message a reader may quote."""
    if max_bytes is not None and len(body) > max_bytes:
        return None
    raw = body.encode() if isinstance(body, str) else body
    if nesting_over(raw, MAX_ANSWER_DEPTH):
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
