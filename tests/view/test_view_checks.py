"""The view reads the checks the controller wrote, by the controller's own keys.

The statuses come from :mod:`support.cli_rollouts`: the real state machine, written by
:func:`controlplane.status.document.rollout_status`. Each check the status holds must show with
what the spec says of it (found through :func:`controlplane.spec.check_keys.decode`), and the view
lists exactly the current stage's checks, in the machine's order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support.cli_rollouts import DAY, Clock, Rollout, at_step_two, in_step_one, scenario

from controlplane.rollout import schedule
from controlplane.spec.check_keys import decode
from controlplane.view.canary import snapshot
from harness.kube.fake import FakeKube


def _shadow(kube: FakeKube, clock: Clock) -> Rollout:
    return scenario("shadow", kube, clock)


def _rolled_back(kube: FakeKube, clock: Clock) -> Rollout:
    return scenario("rolled_back", kube, clock)


def _step_three(kube: FakeKube, clock: Clock) -> Rollout:
    rollout = at_step_two(kube, clock)
    rollout.intent("promote")
    return rollout.tick(DAY, {"kpi": ("pass", 0.01, 0.81, 0.80), "errors": ("pass", 0.0, 0.0, 0)})


STAGES: dict[str, Callable[[FakeKube, Clock], Rollout]] = {
    "shadow": _shadow,
    "step-1": in_step_one,
    "step-2": at_step_two,
    "step-3": _step_three,
    "rolled-back": _rolled_back,
}


def _spec_check(spec: dict[str, Any], key: str) -> dict[str, Any]:
    decoded = decode(key)
    assert decoded is not None, key
    node: Any = spec
    for seg in decoded.loc:
        node = node[seg]
    assert isinstance(node, dict)
    return node


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_check_the_controller_wrote_shows(stage: str) -> None:
    kube, clock = FakeKube(), Clock()
    rollout = STAGES[stage](kube, clock)
    obj = rollout.obj
    written = obj["status"]["checks"]
    assert written, "the scenario evaluates at least one check"
    view = snapshot(obj)
    rows = {row.key: row for row in view.checks}
    assert set(written) <= set(rows)
    for key, entry in written.items():
        row, check = rows[key], _spec_check(obj["spec"], key)
        assert row.metric == entry["metric"] == check["metric"]
        assert row.verdict == entry["verdict"]
        assert row.value == entry["value"]
        assert row.baseline == (check.get("compare") == "baseline")
        assert row.window == check.get("window", obj["spec"]["analysis"].get("window", "5m"))
        if "above" in check:
            assert row.above_text == str(check["above"])
    if rollout.state is not None and not rollout.state.terminal:
        due = [c.key for c in schedule.stage_checks(rollout.spec, rollout.state)]
        assert [row.key for row in view.checks] == due
