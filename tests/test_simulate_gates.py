"""``simulate`` on a gated spec: replay runs no workflows and has nobody to approve, so gates are
taken as passed and manual steps as approved, and the history says so."""

from __future__ import annotations

from pathlib import Path

from controlplane.simulation import SIMULATED_GATE, simulate
from controlplane.validation import validated_file

GATED = Path(__file__).resolve().parents[1] / "canary" / "gated.yml"


class HealthyProvider:
    """Answers like a healthy candidate: 500 ms latency, 0.1% errors, plenty of requests."""

    def instant(self, query: str, at: float) -> float:
        if "histogram_quantile" in query:
            return 0.5
        if "finished_reason" in query:
            return 0.001
        return 1000.0

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        n = int((end - start) // step) + 1
        return [(start + i * step, self.instant(query, start + i * step)) for i in range(n)]

    def vector(self, query: str, at: float) -> list[tuple[dict[str, str], float]]:
        return [({}, self.instant(query, at))]


def test_gated_spec_promotes_in_simulate_with_gates_assumed_passed() -> None:
    (canary,) = validated_file(GATED)
    result = simulate(canary, HealthyProvider(), 0.0, 3 * 86400.0)
    state = result.state
    assert state.stage == "promoted", [(e.type, e.message) for e in state.history]
    types = [e.type for e in state.history]
    assert types.count("GatePassed") == 4  # profile, regression x2, final-eval
    assert "AwaitingApproval" in types
    assert any(SIMULATED_GATE in e.message for e in state.history if e.type == "GatePassed")
