"""``simulate`` on a gated spec: replay runs no workflows and has nobody to approve, so gates are
taken as passed and manual steps as approved, and the history says so."""

from __future__ import annotations

from pathlib import Path

from controlplane.simulation import SIMULATED_GATE, simulate
from controlplane.validation import validated_file
from harness.providers import Healthy

GATED = Path(__file__).resolve().parents[1] / "canary" / "gated.yml"


def test_gated_spec_promotes_in_simulate_with_gates_assumed_passed() -> None:
    (canary,) = validated_file(GATED)
    result = simulate(canary, Healthy(), 0.0, 3 * 86400.0)
    state = result.state
    assert state.stage == "promoted", [(e.type, e.message) for e in state.history]
    types = [e.type for e in state.history]
    assert types.count("GatePassed") == 4  # profile, regression x2, final-eval
    assert "AwaitingApproval" in types
    assert any(SIMULATED_GATE in e.message for e in state.history if e.type == "GatePassed")
