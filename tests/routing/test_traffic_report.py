"""The accounting of the real-traffic tests (:mod:`support.traffic_report`), on made-up answers."""

from __future__ import annotations

import pytest
from support.traffic_report import Answer, phases, tally, until_rollback, within_bounds

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
