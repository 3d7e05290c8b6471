"""Each check keeps its recent results in the status (issue 41: ``get`` shows a check's history,
not only its latest value): the last ``RECENT_RESULTS`` of the current stage, oldest first,
bounded, begun again in each stage, and read back by a restarted controller."""

from __future__ import annotations

from support.cli_rollouts import DAY, Clock, at_step_two

from controlplane.rollout.state import RECENT_RESULTS, CheckSample, RolloutState
from controlplane.spec.units import status_time
from harness.kube.fake import FakeKube

KPI = "steps[1].rollbackOn[0]"


def test_a_check_keeps_its_last_results_oldest_first_and_bounded() -> None:
    clock = Clock()
    rollout = at_step_two(FakeKube(now=clock), clock)
    verdicts = ["pass", "inconclusive", "pass"] * 4  # 12 evaluations, 13 in all
    for n, verdict in enumerate(verdicts):
        value = None if verdict == "inconclusive" else n / 1000
        rollout.tick(600, {"kpi": (verdict, value, None, None)})
    assert rollout.state is not None
    recent = rollout.state.checks[KPI].recent
    assert len(recent) == RECENT_RESULTS
    assert [s.verdict for s in recent] == verdicts[-RECENT_RESULTS:]
    assert recent[-1] == CheckSample(clock.now, "pass", 0.011)
    assert recent[-2].value is None
    assert [s.at for s in recent] == sorted(s.at for s in recent)


def test_the_recent_results_are_the_current_stages_and_survive_a_restart() -> None:
    clock = Clock()
    rollout = at_step_two(FakeKube(now=clock), clock)
    rollout.tick(600, {"kpi": ("pass", 0.01, None, None)})
    rollout.tick(4 * DAY, {"kpi": ("pass", 0.01, None, None)})  # step 2 is over: step 3
    assert rollout.state is not None
    assert rollout.state.step == 3
    assert rollout.state.checks == {}  # begun again in step 3
    rollout.tick(600, {"latency-p99": ("pass", 0.2, 0.2, None)})
    status = rollout.obj["status"]
    assert RolloutState.from_status(status) == rollout.state
    (check,) = status["checks"].values()
    assert check["recent"] == [
        {
            "at": status_time(clock.now),
            "verdict": "pass",
            "value": 0.2,
            "candidate": 0.2,
            "stable": None,
            "samples": None,
            "evidence": None,
        }
    ]
    assert "recent" not in status["lastChecks"][0]  # the readers' summary is unchanged
