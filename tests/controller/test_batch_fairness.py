"""The controller's batched tick records the variants' loads for its breached comparisons.

Its grouped and sequential checks used to leave the loads out (only the per-canary fallback read
them). Now a breached comparison among them is given each variant's requests in flight per
replica from one grouped ``load`` query per window and namespace, and a healthy tick asks
nothing more. The source here answers by what a query reads, like Prometheus would for two
canaries in one namespace.
"""

from __future__ import annotations

from typing import Any

from support.canaries import canary_dict, model_canary

from controlplane.controller.batch import BatchEvaluator, Request
from controlplane.promql.contract import RUNNING
from controlplane.rollout.observations import DueCheck
from controlplane.rollout.schedule import stage_checks
from controlplane.rollout.state import RolloutState
from controlplane.spec.models import ModelCanary

NOW = 1_800_000_000.0
CHECK = "steps[0].rollbackOn[0]"
BASE = canary_dict(
    stable={"name": "bf16", "storageUri": "hf://org/m", "gpu": "nvidia-l40s"},
    candidate={"name": "nf4", "storageUri": "hf://org/m-nf4", "gpu": "nvidia-l40s"},
    traffic={"router": "gateway-api"},
    analysis={
        "interval": "1m",
        "window": "5m",
        "metrics": [{"name": "ttft", "builtin": "ttft", "quantile": 0.99}],
    },
    steps=[
        {
            "weight": 75,
            "duration": "1h",
            "rollbackOn": [{"metric": "ttft", "compare": "baseline", "above": "20%"}],
        },
        {"weight": 100},
    ],
    shadow=None,
    budget=None,
    capacity={"mode": "fixed", "acceptOverload": True},  # no demand query: the loads' alone
)

Values = dict[tuple[str, str], float]


class Fleet:
    """A metric source for canaries in one namespace: each grouped query's answer ``by
    (canary, variant)``, chosen by the series it reads; every query recorded."""

    def __init__(self, ttft: Values, loads: Values) -> None:
        self.ttft, self.loads = ttft, loads
        self.queries: list[str] = []

    def _series(self, values: Values) -> list[tuple[dict[str, str], float]]:
        return [({"canary": c, "variant": v}, x) for (c, v), x in values.items()]

    def vector(self, query: str, at: float) -> list[tuple[dict[str, str], float]]:
        self.queries.append(query)
        if RUNNING in query:
            return self._series(self.loads)
        if "histogram_quantile" in query:
            return self._series(self.ttft)
        names = {c for c, _ in self.ttft}  # the requests finished: plenty
        return self._series({(c, v): 5000.0 for c in names for v in ("bf16", "nf4")})

    def instant(self, query: str, at: float) -> float:
        raise AssertionError(f"the grouped checks ask vectors only, not {query}")

    def range(self, query: str, start: float, end: float, step: float) -> list[Any]:
        raise AssertionError(f"no range query expected: {query}")


def _requests(*names: str, **spec: Any) -> list[Request]:
    out = []
    for name in names:
        canary: ModelCanary = model_canary(name, base=BASE, **spec)
        state = RolloutState(
            spec_hash="x", stage="steps", started_at=0, stage_started_at=0, step_index=0
        )
        due: list[DueCheck] = stage_checks(canary, state)
        out.append(Request(name, canary, due, since=NOW - 600))
    return out


SLOW = {("a", "nf4"): 1.5, ("a", "bf16"): 0.5, ("b", "nf4"): 0.5, ("b", "bf16"): 0.5}
"""Canary a's candidate is three times slower than its stable; b's variants are alike."""
LOADS = {("a", "nf4"): 12.0, ("a", "bf16"): 3.0, ("b", "nf4"): 9.0, ("b", "bf16"): 1.0}


def test_a_breached_grouped_comparison_records_both_loads_from_one_query() -> None:
    source = Fleet(SLOW, LOADS)
    batch = BatchEvaluator(source)
    found = batch.evaluate(_requests("a", "b"), NOW)
    breach, healthy = found["a"].checks[CHECK], found["b"].checks[CHECK]
    assert breach.verdict == "breach"  # the loads never change the verdict
    assert (breach.load_candidate, breach.load_stable) == (12.0, 3.0)
    assert "not a fair comparison: the candidate carries 4.0x" in breach.message
    # b passes: it reads no load, though the one query answered for both
    assert healthy.verdict == "pass"
    assert (healthy.load_candidate, healthy.load_stable) == (None, None)
    loads = [q for q in source.queries if RUNNING in q]
    assert len(loads) == 1
    assert 'canary=~"a"' in loads[0]
    assert "[5m]" in loads[0]
    # ttft and the request count, then the loads: one grouped query each
    assert batch.last.grouped_queries == batch.last.queries == 3


def test_the_allowed_ratio_is_the_spec_s() -> None:
    batch = BatchEvaluator(Fleet(SLOW, LOADS))
    found = batch.evaluate(_requests("a", capacity={"maxLoadRatio": 5}), NOW)
    result = found["a"].checks[CHECK]
    assert (result.verdict, result.load_candidate) == ("breach", 12.0)
    assert "not a fair comparison" not in result.message


def test_a_healthy_tick_asks_no_load() -> None:
    alike = dict.fromkeys(SLOW, 0.5)
    source = Fleet(alike, LOADS)
    batch = BatchEvaluator(source)
    found = batch.evaluate(_requests("a", "b"), NOW)
    assert {r.verdict for obs in found.values() for r in obs.checks.values()} == {"pass"}
    assert not [q for q in source.queries if RUNNING in q]
    assert batch.last.queries == 2


def test_loads_that_cannot_be_read_are_left_out() -> None:
    source = Fleet(SLOW, {})
    found = BatchEvaluator(source).evaluate(_requests("a"), NOW)
    result = found["a"].checks[CHECK]
    assert result.verdict == "breach"
    assert (result.load_candidate, result.load_stable) == (None, None)
    assert "fair" not in result.message
