"""Multi-turn conversations through the gateway, and what they show about sessions.

:class:`Conversations` is the load of the real-node sessions test: a conversation starts every
:data:`EVERY` seconds and sends :data:`TURNS` completions one after another, each prompt the
last one, its answer and a new line, after a unique prefix long enough to fill whole KV-cache
blocks (vLLM's CPU backend caches prefixes in blocks of 128 tokens); a ``sticky`` conversation
sends its session key in :data:`HEADER`, a ``per-request`` one sends none and is split by the
weights. The session keys come from a seeded generator, so the buckets they fall in are the same
every run. The pure readings (:func:`moved_wrongly`, :func:`new_sessions`, :func:`within_binomial`)
are tested on their own in ``tests/test_conversations.py``.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from controlplane.routing.base import VARIANT_HEADER

HEADER = "x-session-id"
TURNS = 4
EVERY = 1.0
"""Seconds between two conversations' starts."""
THINK_S = 1.0
"""Seconds between an answer and the conversation's next turn."""
PREFIX_WORDS = 400
"""Words of a conversation's unique prefix: over 400 tokens of the tiny model's tokenizer, three
whole cache blocks."""
WORDS = tuple(
    " ".join(
        (
            "the quick brown fox jumps over lazy dog a canary shifts traffic in steps latency",
            "errors and tokens per second are watched hello how can i help you today",
        )
    ).split(" ")
)
Mode = str | None
"""``"sticky"``, ``"per-request"``, or None: start no conversation now."""


@dataclass(frozen=True)
class Turn:
    """One turn: its conversation's key, whether it was sticky, its index (0 first), when it was
    sent, its answer's status (an HTTP code or an exception's name) and the variant that served
    it (the route's ``x-canary-variant``; None when unknown)."""

    session: str
    sticky: bool
    turn: int
    sent: float
    code: int | str
    variant: str | None

    @property
    def failed(self) -> bool:
        return self.code != 200


@dataclass
class Conversations:
    """Conversations to ``host`` through the gateway at ``url`` while ``mode()`` says which kind
    to start; every turn kept in :attr:`turns`."""

    url: str
    host: str
    model: str
    mode: Callable[[], Mode]
    seed: int = 7
    turns: list[Turn] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _send(self, prompt: str, key: str | None) -> tuple[int | str, str | None, str]:
        body = json.dumps(
            {"model": self.model, "prompt": prompt, "max_tokens": 8, "temperature": 0}
        ).encode()
        headers = {"Content-Type": "application/json", "Host": self.host}
        if key is not None:
            headers[HEADER] = key
        request = urllib.request.Request(f"{self.url}/v1/completions", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = str(json.loads(response.read())["choices"][0]["text"])
                return int(response.status), response.headers.get(VARIANT_HEADER), text
        except urllib.error.HTTPError as exc:
            variant = exc.headers.get(VARIANT_HEADER)
            exc.close()
            return exc.code, variant, ""
        except OSError as exc:
            return type(exc).__name__, None, ""

    def conversation(self, key: str, sticky: bool, words: Sequence[str]) -> None:
        """One conversation of :data:`TURNS` turns (a failed turn ends it)."""
        prompt = " ".join(words)
        for index in range(TURNS):
            prompt += f"\nuser: {' '.join(words[index * 7 : index * 7 + 7])}\nassistant:"
            sent = time.time()
            code, variant, text = self._send(prompt, key if sticky else None)
            with self._lock:
                self.turns.append(Turn(key, sticky, index, sent, code, variant))
            if code != 200:
                return
            prompt += text
            if self.stop.wait(THINK_S):
                return

    def run(self) -> None:
        """Start a conversation every :data:`EVERY` seconds of the kind ``mode()`` names, until
        :attr:`stop`."""
        rng = random.Random(self.seed)
        started, n = time.monotonic(), 0
        while not self.stop.is_set():
            n += 1
            key = f"{rng.getrandbits(128):032x}"
            words = [rng.choice(WORDS) for _ in range(PREFIX_WORDS)]
            mode = self.mode()
            if mode is not None:
                thread = threading.Thread(
                    target=self.conversation, args=(key, mode == "sticky", words), daemon=True
                )
                thread.start()
                self._threads.append(thread)
            self.stop.wait(max(0.0, started + n * EVERY - time.monotonic()))

    def finish(self, timeout: float = 120.0) -> None:
        """Stop starting conversations and wait for those under way."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


def by_session(turns: Iterable[Turn]) -> dict[str, list[Turn]]:
    """Each conversation's turns in the order they were sent."""
    out: dict[str, list[Turn]] = {}
    for turn in sorted(turns, key=lambda t: (t.session, t.turn)):
        out.setdefault(turn.session, []).append(turn)
    return out


def moved_wrongly(turns: Sequence[Turn], stable: str, candidate: str) -> bool:
    """True unless a conversation's answered turns are on the stable, then on the candidate,
    moving at most once: a weight that only rises moves a session only toward the candidate."""
    served = [t.variant for t in turns if t.variant is not None]
    if any(v not in (stable, candidate) for v in served):
        return True
    return served != sorted(served, key=lambda v: v == candidate)


Change = tuple[float, int]
"""When the gateway was told a weight (the status's step start), and the weight."""


def new_sessions(
    turns: Iterable[Turn], changes: Sequence[Change], candidate: str, settle_s: float
) -> dict[int, tuple[int, int]]:
    """By weight: the sticky conversations whose first turn was sent while that weight was in
    effect, at least ``settle_s`` after it was set (the gateway takes a change up in a few
    seconds), and how many of them the candidate served first."""
    out: dict[int, tuple[int, int]] = {}
    for session in by_session(t for t in turns if t.sticky).values():
        first = session[0]
        if first.variant is None:
            continue
        live = [(at, w) for at, w in changes if at <= first.sent]
        if not live:
            continue
        at, weight = live[-1]
        if first.sent < at + settle_s:
            continue
        n, k = out.get(weight, (0, 0))
        out[weight] = (n + 1, k + (first.variant == candidate))
    return out


def within_binomial(n: int, k: int, p: float, z: float = 3.29) -> bool:
    """``k`` of ``n`` is within ``z`` standard deviations of ``n * p`` (3.29: a two-sided 0.1 %
    bound for a binomial count)."""
    return abs(k - n * p) <= z * math.sqrt(n * p * (1.0 - p))
