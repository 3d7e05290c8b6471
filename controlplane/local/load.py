"""The load generator of ``canaryctl up --load RPS``: open-loop traffic with realistic requests.

Owns what users "send": Poisson arrivals (a slow variant does not slow them), support-desk chat
prompts of varied length, log-normal ``max_tokens``, some streamed, cohort headers when the spec
has a cohort. What clients saw feeds the display and tests; decisions use only Prometheus.
Started and stopped by :mod:`controlplane.local.stack`.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import aiohttp

from controlplane.routing.base import VARIANT_HEADER
from controlplane.spec.models import CohortSpec

SYSTEM = "You are a helpful support assistant for an online store. Answer briefly and politely."
PROMPTS = (
    "My order {n} has not arrived yet. It was supposed to be delivered on Monday. Can you check?",
    "How do I reset my password? The reset email never shows up in my inbox.",
    "I was charged twice for order {n}. Please refund the duplicate payment.",
    "Can I change the delivery address of order {n}? I moved last week.",
    "The blender I bought stopped working after two weeks. Is it covered by the warranty?",
    "What is your return policy for electronics that were opened but not used?",
    "Summarize this complaint for the escalation team: the customer waited 40 minutes on the "
    "phone, was disconnected twice, and still has no replacement for the broken laptop charger.",
    "Translate to French: 'Your refund has been processed and will arrive in 3-5 days.'",
    "Write a short apology email to a customer whose package arrived damaged.",
    "Which of these tickets is most urgent? 1) login issue 2) missing refund 3) broken screen",
    "Do you ship to Canada, and how long does it take?",
    "I want to cancel my subscription but the button in the app does nothing.",
    "Classify this ticket as billing, shipping, technical or other: 'app crashes on startup'.",
    "Explain the difference between the standard and the premium plan in two sentences.",
    "My discount code SAVE{n} says it is expired but the email said it is valid until Friday.",
    "Draft a reply asking the customer for a photo of the damaged item and the order number.",
)
HISTORY = (
    "Earlier in this conversation the customer explained that they had already contacted "
    "support twice, that the first agent promised a callback that never came, and that the "
    "second agent opened ticket {n} but closed it without a resolution. They are frustrated, "
    "they mention that they have been a customer for six years, and they ask that the answer "
    "be specific about what will happen next and when."
)
MAX_IN_FLIGHT = 1024


@dataclass
class LoadStats:
    """What clients saw, per variant (``?`` when a response named none)."""

    sent: int = 0
    done: int = 0
    skipped: int = 0
    status: Counter[int] = field(default_factory=Counter)
    by_variant: Counter[str] = field(default_factory=Counter)
    errors_by_variant: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, deque[float]] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)

    def record(self, variant: str, status: int, latency: float) -> None:
        self.done += 1
        self.status[status] += 1
        self.by_variant[variant] += 1
        if status >= 400:
            self.errors_by_variant[variant] += 1
        self.latencies.setdefault(variant, deque(maxlen=500)).append(latency)

    def p95(self, variant: str) -> float | None:
        values = sorted(self.latencies.get(variant, ()))
        if not values:
            return None
        return values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)]


@dataclass(frozen=True)
class RequestPlan:
    """One request to send: path, JSON body and headers."""

    path: str
    body: dict[str, object]
    headers: dict[str, str]


class RequestMaker:
    """Draws realistic requests. Deterministic for a given ``seed``."""

    def __init__(
        self,
        model: str,
        cohort: CohortSpec | None = None,
        cohort_share: float = 0.5,
        stream_share: float = 0.2,
        seed: int | None = None,
    ) -> None:
        self.model = model
        self.cohort = cohort
        self.cohort_share = cohort_share
        self.stream_share = stream_share
        self.rng = random.Random(seed)

    def make(self) -> RequestPlan:
        rng = self.rng
        n = rng.randint(10000, 99999)
        messages = [{"role": "system", "content": SYSTEM}]
        if rng.random() < 0.3:
            messages.append({"role": "user", "content": HISTORY.format(n=n)})
            messages.append({"role": "assistant", "content": "I understand. Let me look into it."})
        messages.append({"role": "user", "content": rng.choice(PROMPTS).format(n=n)})
        max_tokens = int(min(512, max(16, rng.lognormvariate(math.log(128), 0.6))))
        body: dict[str, object] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.7,
        }
        if rng.random() < self.stream_share:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        headers = {"Content-Type": "application/json"}
        if self.cohort is not None:
            if rng.random() < self.cohort_share:
                headers[self.cohort.header] = rng.choice(self.cohort.values)
            else:
                headers[self.cohort.header] = "other"
        return RequestPlan("/v1/chat/completions", body, headers)


class LoadGenerator:
    """Sends ``rps`` requests per second (Poisson) to ``url`` until stopped."""

    def __init__(self, url: str, rps: float, maker: RequestMaker, seed: int | None = None) -> None:
        self.url = url
        self.rps = rps
        self.maker = maker
        self.stats = LoadStats()
        self._rng = random.Random(seed)
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self.rps <= 0:
            return
        connector = aiohttp.TCPConnector(limit=0)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=300)
        )
        self._task = asyncio.get_running_loop().create_task(self._arrivals())

    async def stop(self, drain_s: float = 0.0) -> None:
        """Stop sending; wait up to ``drain_s`` for requests in flight, then cancel the rest."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._inflight and drain_s > 0:
            await asyncio.wait(set(self._inflight), timeout=drain_s)
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _arrivals(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self._rng.expovariate(self.rps)
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(self._inflight) >= MAX_IN_FLIGHT:
                self.stats.skipped += 1
                continue
            task = loop.create_task(self._one(self.maker.make()))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _one(self, plan: RequestPlan) -> None:
        assert self._session is not None
        self.stats.sent += 1
        started = time.monotonic()
        try:
            async with self._session.post(
                self.url + plan.path, data=json.dumps(plan.body), headers=plan.headers
            ) as response:
                await response.read()
                variant = response.headers.get(VARIANT_HEADER, "?")
                self.stats.record(variant, response.status, time.monotonic() - started)
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.stats.failures[type(exc).__name__] += 1
            self.stats.record("?", 599, time.monotonic() - started)
