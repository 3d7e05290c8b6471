"""The controller's batched tick says what a check found nothing for, as the evaluator does:
``no data: no series matched <selector> over the last <window>`` (issue #41)."""

from __future__ import annotations

from typing import Any

from support.controller_world import world_canary

from controlplane.controller.batch import BatchEvaluator, Request
from controlplane.promql.samples import Sample
from controlplane.rollout.schedule import stage_checks
from controlplane.rollout.state import RolloutState
from controlplane.spec.models import ModelCanary


class Empty:
    """A metric source with no series at all."""

    def instant(self, query: str, at: float) -> float:
        from controlplane.errors import NoData

        raise NoData(f"no data for {query}")

    def range(self, query: str, start: float, end: float, step: float) -> list[Any]:
        return []

    def vector(self, query: str, at: float) -> list[Sample]:
        return []


def test_no_series_names_the_selector_looked_for() -> None:
    canary = ModelCanary.model_validate(world_canary("good", "http://prometheus.invalid"))
    state = RolloutState(
        spec_hash="x", stage="steps", started_at=0, stage_started_at=0, step_index=0
    )
    due = stage_checks(canary, state)
    found = BatchEvaluator(Empty()).evaluate([Request("good", canary, due)], 1_800_000_000.0)
    messages = [r.message for r in found["good"].checks.values()]
    assert messages
    for result in found["good"].checks.values():
        assert result.verdict == "inconclusive"
        assert "no data: no series matched " in result.message, result.message
        assert "good" in result.message.split("matched ", 1)[1]
