"""The standard two-day history the analysis integration tests share (see ``tests/conftest.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from support.prometheus import PrometheusServer
from support.scenario import DAY, HOUR, Change, Scenario, Variant


def standard_scenario(end: float) -> Scenario:
    """Two days ending at ``end``; what each integration test expects is derived from it.

    Candidate ``nf4`` at 25% of 10 req/s: P50 latency 100 ms (log-sd 0.35), 2% errors, KPI 0.63
    (stable 0.70: drift -10%), KV cache 0.4, $1.5/h. From day 1 its latency median is 400 ms
    (+300 ms). From 36 h to 37 h its weight is 0.2% (too few requests for minSamples); from 44 h
    it gets no traffic at all. Shadow win rate 0.55, then 0.60 from day 1.
    """
    return Scenario(
        start=end - 2 * DAY,
        duration=2 * DAY,
        stable=Variant("bf16", error_fraction=0.005, resolved_fraction=0.70),
        candidate=Variant(
            "nf4",
            latency_median_s=0.10,
            latency_sigma=0.35,
            error_fraction=0.02,
            resolved_fraction=0.63,
            kv_cache=0.4,
            cost_per_hour=1.5,
        ),
        weights=((0.0, 25.0), (36 * HOUR, 0.2), (37 * HOUR, 25.0), (44 * HOUR, 0.0)),
        win_rate=((0.0, 0.55), (DAY, 0.60)),
        changes=(Change(DAY, "candidate", {"latency_median_s": 0.40}),),
    )


@dataclass(frozen=True)
class History:
    scenario: Scenario
    server: PrometheusServer

    @property
    def url(self) -> str:
        return self.server.url
