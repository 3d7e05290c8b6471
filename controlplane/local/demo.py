"""The packaged demo: the four-week canary replayed against synthetic history in a real Prometheus.

Owns the two stories, ``healthy`` (promoted after 21 days) and ``kpi-drift`` (rolled back at
step 2), both replaying the packaged ``four-week.yml`` as ``canaryctl simulate`` would against
history from :mod:`controlplane.local.synthetic`. The output says the history is synthetic.
Called by ``canaryctl demo``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from controlplane.local.prometheus import PrometheusServer, backfill, start_prometheus
from controlplane.local.synthetic import DAY, Change, Scenario, Variant, history_end
from controlplane.providers.prometheus import PrometheusProvider, from_url
from controlplane.simulation import SimulationResult, prefetched, simulate
from controlplane.spec.models import ModelCanary
from controlplane.validation import validated_text

SPAN = 22 * DAY
"""Replayed history: the 21 days of the schedule plus a day of slack."""


@dataclass(frozen=True)
class Story:
    """One demo run: a canary, the history it meets, and what should happen."""

    key: str
    title: str
    canary: ModelCanary
    scenario: Scenario


def demo_canary() -> ModelCanary:
    """The packaged four-week canary (validated like any user file)."""
    text = resources.files("controlplane.local").joinpath("data/four-week.yml").read_text()
    return validated_text(text, "four-week.yml")[0]


def _renamed(canary: ModelCanary, name: str) -> ModelCanary:
    meta = canary.metadata.model_copy(update={"name": name})
    return canary.model_copy(update={"metadata": meta})


def _scenario(canary: ModelCanary, end: float, changes: tuple[Change, ...] = ()) -> Scenario:
    """Synthetic history for ``canary``: traffic follows the four-week weight schedule."""
    return Scenario(
        start=end - SPAN,
        duration=SPAN,
        stable=Variant("bf16", latency_median_s=0.070, latency_sigma=0.3, error_fraction=0.0004),
        candidate=Variant("nf4", latency_median_s=0.060, latency_sigma=0.3, error_fraction=0.0004),
        namespace=canary.metadata.namespace,
        canary=canary.metadata.name,
        total_rps=10.0,
        weights=((0.0, 5.0), (7 * DAY, 25.0), (14 * DAY, 75.0), (21 * DAY, 100.0)),
        changes=changes,
        families=frozenset({"e2e", "success", "kpi"}),
    )


def stories(end: float) -> list[Story]:
    """The demo's stories, with history ending at ``end`` (unix seconds)."""
    base = demo_canary()
    healthy = _renamed(base, "support-triage")
    drift = _renamed(base, "support-triage-kpi-drift")
    kpi_drop = (Change(9 * DAY, "candidate", {"resolved_fraction": 0.64}),)
    return [
        Story(
            "healthy", "healthy nf4 candidate (as good as bf16)", healthy, _scenario(healthy, end)
        ),
        Story(
            "kpi-drift",
            "nf4 candidate resolves 8.6% fewer tickets from day 9",
            drift,
            _scenario(drift, end, kpi_drop),
        ),
    ]


@dataclass(frozen=True)
class Replayed:
    """A story, its replay, and the provider it was replayed from (live while the session is)."""

    story: Story
    result: SimulationResult
    source: PrometheusProvider


@contextmanager
def demo_session(
    workdir: Path | None = None,
    *,
    now: float | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Iterator[list[Replayed]]:
    """Generate, backfill, serve and replay every story; Prometheus stays up inside the block
    (plots query it) and is stopped, with its files removed, on leaving it."""
    with tempfile.TemporaryDirectory(prefix="canaryctl-demo-") as tmp:
        work = workdir or Path(tmp)
        end = history_end(time.time() if now is None else now)
        all_stories = stories(end)
        progress(f"generating {SPAN / DAY:.0f} days of synthetic vLLM metrics (simulated) ...")
        files: list[Path] = []
        for story in all_stories:
            files += story.scenario.write(work / "openmetrics" / story.key)
        progress("backfilling them into a fresh TSDB with promtool ...")
        backfill(files, work / "tsdb")
        for path in files:
            path.unlink()
        server: PrometheusServer = start_prometheus(work / "tsdb")
        try:
            progress(f"a real Prometheus serves them at {server.url}; replaying ...")
            replayed: list[Replayed] = []
            for story in all_stories:
                source = PrometheusProvider(from_url(server.url, timeout_s=120))
                start = story.scenario.start
                provider = prefetched(story.canary, source, start, end)
                replayed.append(
                    Replayed(story, simulate(story.canary, provider, start, end), source)
                )
            yield replayed
        finally:
            server.stop()
