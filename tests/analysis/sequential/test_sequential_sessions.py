"""The sequential judge on sessions that stay on one variant: it weighs requests by session.

``traffic.session.turns`` gives the design effect ``2 * turns - 1``; every count the judge reads
is divided by it, so evidence that is decisive for independent requests is not for the same
requests in conversations, while the results still report the requests served. A sequential
check on a session spec without ``turns`` is refused with the reason. The level this keeps is
measured in ``tests/bench/test_sessions_judge.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.canaries import canary_dict, model_canary

from controlplane.analysis.sequential import support
from controlplane.analysis.sequential.check import CheckLook, Counts, judge_check, judge_checks
from controlplane.spec.models import CheckSpec
from controlplane.validation import check_object

SEQUENTIAL = {"metric": "errors", "compare": "baseline", "above": "0%", "judge": "sequential"}


def traffic(**session: Any) -> dict[str, Any]:
    return {
        "router": "gateway-api",
        "gateway": {"name": "inference-gateway", "namespace": "gateways"},
        "hosts": ["llm.example.com"],
        "session": {"header": "x-session-id", **session},
    }


def step_with(check: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"weight": 5, "duration": "1h", "rollbackOn": [check]}]


@pytest.mark.parametrize(
    ("turns", "effect"), [(None, 1.0), (1, 1.0), (2.5, 4.0), (6, 11.0)]
)  # fmt: skip
def test_the_design_effect_is_two_turns_less_one(turns: float | None, effect: float) -> None:
    session = {} if turns is None else {"turns": turns}
    canary = model_canary(traffic=traffic(**session))
    assert support.design_effect(canary) == effect
    assert support.design_effect(model_canary()) == 1.0


def test_a_sequential_check_on_sessions_without_turns_is_refused_with_the_reason() -> None:
    data = canary_dict(traffic=traffic(), steps=step_with(SEQUENTIAL))
    found = [p for p in check_object(data) if p.path.endswith(".judge")]
    assert [p.path for p in found] == ["spec.steps[0].rollbackOn[0].judge"], found
    assert "needs traffic.session.turns" in found[0].message
    with_turns = canary_dict(traffic=traffic(turns=4), steps=step_with(SEQUENTIAL))
    assert not [p for p in check_object(with_turns) if p.path.endswith(".judge")]
    threshold = {"metric": "errors", "above": "1%"}
    assert not [
        p
        for p in check_object(canary_dict(traffic=traffic(), steps=step_with(threshold)))
        if "turns" in p.message
    ]


@pytest.mark.parametrize("turns", [0, 0.5, -1])
def test_fewer_than_one_turn_is_refused(turns: float) -> None:
    data = canary_dict(traffic=traffic(turns=turns))
    assert any(p.path == "spec.traffic.session.turns" for p in check_object(data))


CANARY = model_canary(traffic=traffic(turns=6))
CHECK = CheckSpec.model_validate(SEQUENTIAL)
ERRORS = CANARY.metric("errors")
# 2 % against 1 % on 2,000 candidate requests: decisive for independent requests
COUNTS = Counts(cand_events=40, cand_total=2000, stable_events=380, stable_total=38000)


def test_the_same_counts_breach_by_request_and_not_by_session() -> None:
    assert ERRORS is not None
    by_request = judge_check("k", CHECK, ERRORS, COUNTS, min_samples=None)
    by_session = judge_check("k", CHECK, ERRORS, COUNTS, min_samples=None, design_effect=11.0)
    assert by_request.decided == "breach", by_request.message
    assert by_session.decided is None, by_session.message
    assert by_session.samples == by_request.samples == 2000
    assert "2000 candidate requests since the step started, weighed as 182 by session" in (
        by_session.message
    )
    assert "weighed as" not in by_request.message


def test_weighing_is_dividing_every_count_the_closing_ones_too() -> None:
    closing = Counts(cand_events=11, cand_total=220, stable_buckets={1.0: 22, float("inf"): 44})
    counts = Counts(
        cand_events=22,
        cand_total=440,
        cand_buckets={0.5: 11, float("inf"): 33},
        boundary_s=0.4,
        closing=closing,
    )
    got = counts.weighed(11.0)
    assert (got.cand_events, got.cand_total, got.stable_total) == (2, 40, None)
    assert got.cand_buckets == {0.5: 1, float("inf"): 3}
    assert got.boundary_s == 0.4
    assert got.closing is not None
    assert (got.closing.cand_events, got.closing.cand_total) == (1, 20)
    assert got.closing.stable_buckets == {1.0: 2, float("inf"): 4}
    assert counts.weighed(1.0) is counts


def test_judged_together_or_alone_the_weighing_is_the_same() -> None:
    assert ERRORS is not None
    looks = [CheckLook("k", CHECK, ERRORS, COUNTS, None, effect) for effect in (1.0, 11.0)]
    together = judge_checks(looks)
    alone = [
        judge_check("k", CHECK, ERRORS, COUNTS, min_samples=None, design_effect=e)
        for e in (1.0, 11.0)
    ]
    assert [r.decided for r in together] == [r.decided for r in alone] == ["breach", None]
    assert [r.message for r in together] == [r.message for r in alone]


def test_the_evaluator_and_the_controller_s_batch_weigh_by_the_spec() -> None:
    from controlplane.analysis.evaluator import evaluate
    from controlplane.analysis.sequential import check as sequential_check
    from controlplane.rollout.observations import DueCheck
    from harness.providers import StaticProvider

    now = 1_800_000_000.0
    since = now - 600.0
    plan = sequential_check.plan(CANARY, CHECK, since, now)
    answers = {
        plan.cand_events: 40.0,
        plan.cand_total: 2000.0,
        plan.stable_events: 380.0,
        plan.stable_total: 38000.0,
    }
    provider = StaticProvider({q: v for q, v in answers.items() if q is not None})
    got = evaluate(CANARY, [DueCheck("k", CHECK)], provider, now, since=since).checks["k"]
    assert got.decided is None, got.message
    assert "weighed as 182 by session" in got.message
    plain = model_canary(traffic={**traffic(turns=1)})
    got = evaluate(plain, [DueCheck("k", CHECK)], provider, now, since=since).checks["k"]
    assert got.decided == "breach", got.message
