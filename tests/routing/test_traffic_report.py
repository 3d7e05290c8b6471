"""The accounting of the real-traffic tests (:mod:`support.traffic_report`), on made-up answers."""

from __future__ import annotations

from typing import Any

import pytest
from support.real_traffic import Route, route_share
from support.traffic_report import (
    Answer,
    Seen,
    first_seen,
    in_effect,
    phases,
    tally,
    until_rollback,
    within_bounds,
)

HISTORY = [
    {"type": "StepStarted", "time": 10.0, "step": 1, "weight": 25},
    {"type": "Advanced", "time": 20.0, "step": 2, "weight": 75},
    {"type": "RolledBack", "time": 30.0, "message": "latency"},
]


def test_phases_run_from_the_first_request_through_each_step_to_the_end() -> None:
    got = [(p.label, p.start, p.end, p.weight) for p in phases(HISTORY, 5.0, 40.0)]
    assert got == [
        ("pending", 5.0, 10.0, 0),
        ("step 1", 10.0, 20.0, 25),
        ("step 2", 20.0, 30.0, 75),
        ("after rollback", 30.0, 40.0, None),
    ]


def test_each_answer_counts_once_in_the_phase_it_was_sent_in() -> None:
    answers = [
        Answer(5.0, 0.1, 200, "bf16"),
        Answer(10.0, 0.1, 200, "fp8"),
        Answer(19.9, 0.1, 500, "fp8"),
        Answer(25.0, 0.1, "ConnectionResetError"),
        Answer(41.0, 0.1, 200, "bf16"),  # after the end: not counted
    ]
    rows = [t.as_dict() for t in tally(answers, phases(HISTORY, 5.0, 40.0))]
    assert [(r["phase"], r["requests"], r["failed"], r["variants"]) for r in rows] == [
        ("pending", 1, {}, {"bf16": 1}),
        ("step 1", 2, {"500": 1}, {"fp8": 2}),
        ("step 2", 1, {"ConnectionResetError": 1}, {"none": 1}),
        ("after rollback", 0, {}, {}),
    ]


def test_the_first_seconds_of_a_phase_settle_apart_from_its_split_but_failures_count() -> None:
    answers = [
        Answer(5.5, 0.1, 200, "bf16"),  # pending is the first phase: nothing settles there
        Answer(30.5, 0.1, 200, "fp8"),  # the gateway still had the old weights
        Answer(31.0, 0.1, 503, "fp8"),
        Answer(33.5, 0.1, 200, "bf16"),
    ]
    rows = [t.as_dict() for t in tally(answers, phases(HISTORY, 5.0, 40.0), settle=3.0)]
    assert [(r["requests"], r["failed"], r["variants"], r["settling"]) for r in rows] == [
        (1, {}, {"bf16": 1}, {}),
        (0, {}, {}, {}),
        (0, {}, {}, {}),
        (3, {"503": 1}, {"bf16": 1}, {"fp8": 2}),
    ]


def looks(*shares: tuple[float, int | None]) -> list[Seen]:
    """Looks at the gateway asked at each time, answered 0.1 s later."""
    return [Seen(at, at + 0.1, share) for at, share in shares]


# the gateway took up step 1 (25 %) at 11-12 s, was down (no answer) about 15 s, took up step 2
# (75 %) at 21-22 s and the rollback (0 %) at 31-32 s
SEEN = looks(
    (9.0, None),
    (11.0, None),
    (12.0, 25),
    (13.0, 25),
    (15.0, None),
    (16.0, 25),
    (19.0, 25),
    (21.0, 25),
    (22.0, 75),
    (29.0, 75),
    (31.0, 75),
    (32.0, 0),
    (39.0, 0),
)


def test_a_phase_is_in_effect_while_the_gateway_is_surely_seen_running_its_split() -> None:
    spans = phases(HISTORY, 5.0, 40.0)
    got = {p.label: in_effect(SEEN, p) for p in spans}
    assert got == {
        "pending": [],  # no route yet: the gateway runs no split (pending is never settling)
        "step 1": [(12.1, 13.0), (16.1, 20.0)],  # cut at the phase's end (the status's time)
        "step 2": [(22.1, 30.0)],
        "after rollback": [(32.1, 39.0)],  # the end's share: the stable's alone
    }


def test_answers_outside_the_split_in_effect_settle_but_failures_count() -> None:
    answers = [
        Answer(5.5, 0.1, 200, "bf16"),  # pending: counted in the split whatever the gateway ran
        Answer(11.5, 0.1, 200, "bf16"),  # step 1, before the gateway was seen running it
        Answer(12.5, 0.1, 200, "fp8"),
        Answer(14.0, 0.1, "ConnectionResetError"),  # the gateway down: settling, still failed
        Answer(20.5, 0.1, 200, "bf16"),  # step 2, still at 25 %
        Answer(25.0, 0.1, 200, "fp8"),
    ]
    spans = phases(HISTORY, 5.0, 40.0)
    rows = [t.as_dict() for t in tally(answers, spans, lambda p: in_effect(SEEN, p))]
    assert [(r["requests"], r["failed"], r["variants"], r["settling"]) for r in rows] == [
        (1, {}, {"bf16": 1}, {}),
        (3, {"ConnectionResetError": 1}, {"fp8": 1}, {"bf16": 1, "none": 1}),
        (2, {}, {"fp8": 1}, {"bf16": 1}),
        (0, {}, {}, {}),
    ]


def test_first_seen_is_when_a_look_asked_after_a_moment_saw_the_share() -> None:
    assert first_seen(SEEN, 0, after=30.0) == 32.1
    assert first_seen(SEEN, 75, after=22.0) == 29.1  # the look asked at 22 s is not after it
    assert first_seen(SEEN, 100, after=0.0) is None


@pytest.mark.parametrize(
    ("candidate", "total", "weight", "ok"),
    [
        (50, 200, 25, True),
        (10, 200, 5, True),
        (80, 200, 25, False),
        (0, 200, 25, False),
        (200, 200, 100, True),
        (199, 200, 100, False),
    ],
)
def test_within_bounds(candidate: int, total: int, weight: int, ok: bool) -> None:
    assert within_bounds(candidate, total, weight) is ok


def test_until_rollback_counts_the_candidate_s_bad_requests_only() -> None:
    answers = [
        Answer(11.0, 3.1, 200, "fp8"),
        Answer(12.0, 0.1, 200, "fp8"),
        Answer(13.0, 3.1, 200, "bf16"),
        Answer(31.0, 3.1, 200, "fp8"),  # after the rollback
    ]
    got = until_rollback(answers, HISTORY, 10.0, "fp8", lambda a: a.seconds > 2.5)
    assert got == {"seconds": 20.0, "candidate_requests": 2, "bad_candidate_requests": 1}


def _wrr(name: str, **weights: int) -> dict[str, Any]:
    """A weighted service as Traefik v3.6.12's API lists it."""
    backends = [{"name": f"{svc}", "weight": w} for svc, w in weights.items()]
    return {"name": f"{name}-wrr@kubernetesgateway", "weighted": {"services": backends}}


def test_route_share_reads_the_canarys_own_split_from_traefiks_services() -> None:
    route = Route.of_model("steady", "steady-llm")
    stable, candidate = route.stable, route.candidate
    assert (stable, candidate) == (
        "steady-steady-llm-bf16-predictor-http-80",
        "steady-steady-llm-fp8-predictor-http-80",
    )
    # httproute-<ns>-<route>-gw-<gw ns>-<gw>-ep-<entry point>-<rule>-<20 hex of the rule>-wrr,
    # as the real Traefik v3.6.12 named the canary's split
    own = "httproute-steady-steady-gw-kserve-kserve-ingress-gateway-ep-web-0"
    kserve = "httproute-steady-steady-llm-fp8-gw-kserve-kserve-ingress-gateway-ep-web-0"
    one, two = "c06f0779389314e56c49", "9876543210fedcba9876"
    services: list[dict[str, Any]] = [
        _wrr(f"{own}-{one}", **{stable: 75, candidate: 25}),
        _wrr(f"{kserve}-{two}", **{candidate: 1}),  # KServe's own route: not the canary's
        {"name": f"{candidate}@kubernetesgateway", "loadBalancer": {"servers": []}},
    ]
    assert route_share(services, route) == 25
    assert route_share(services[1:], route) is None  # no split of the canary's route
    second = _wrr(f"{own}-{two}", **{stable: 75, candidate: 25})  # another match of the rule
    assert route_share([*services, second], route) == 25
    moved = _wrr(f"{own}-{two}", **{stable: 25, candidate: 75})  # half taken up
    assert route_share([*services, moved], route) is None
    assert route_share([_wrr(f"{own}-{one}", **{candidate: 100})], route) == 100
    assert route_share([_wrr(f"{own}-{one}", **{stable: 100})], route) == 0
    rule_1 = _wrr(f"{own[:-2]}-1-{two}", **{stable: 100})  # a cohort's stable-only rule
    assert route_share([rule_1, *services], route) == 25
    assert route_share([_wrr(f"{own}-c06f0779", **{stable: 100})], route) is None  # no hash
