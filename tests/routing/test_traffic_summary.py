"""The end-of-run summary of the real-traffic tests' answers (:mod:`support.traffic_summary`)."""

from __future__ import annotations

import pytest
from support.traffic_summary import REPORT_ENV, summary_lines

REPORT = {
    "killed": {
        "history": [["StepStarted", 25, "step 1 started at weight 25%"]],
        "phases": [
            {"phase": "pending", "weight": 0, "requests": 18, "failed": {}},
            {
                "phase": "step 1",
                "weight": 25,
                "requests": 198,
                "failed": {"503": 44, "500": 1, "502": 4},
            },
            {"phase": "after rollback", "weight": None, "requests": 153, "failed": {}},
        ],
        "failed once the gateway ran the end": 0,
    }
}


def test_a_line_per_canary_gives_each_phase_sent_and_failed_by_code() -> None:
    assert summary_lines("real-vllm-killed", REPORT) == [
        "real-vllm-killed [killed] pending (0%): 18 sent, 0 failed | step 1 (25%): 198 sent, "
        "49 failed (1 x 500, 4 x 502, 44 x 503) | after rollback: 153 sent, 0 failed"
    ]


def test_a_report_without_phases_gives_no_line() -> None:
    assert summary_lines("argo_get_passed", {"argo get": "Succeeded"}) == []


def test_the_run_prints_what_its_tests_wrote(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test that writes a report where the run's folder is (as the workers do) gets its
    lines in the terminal summary of the run, which named no folder."""
    monkeypatch.delenv(REPORT_ENV, raising=False)
    pytester.makepyfile(
        test_writes="""
import json, os, pathlib

def test_writes():
    folder = pathlib.Path(os.environ["CONTROLPLANE_TRAFFIC_REPORT"])
    report = {"c": {"phases": [{"phase": "step 1", "weight": 5, "requests": 3,
                                "failed": {"503": 1}}]}}
    (folder / "the-test.json").write_text(json.dumps(report))
"""
    )
    result = pytester.runpytest("-p", "support.traffic_summary")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*requests through the gateway, per phase*",
            "the-test [c] step 1 (5%): 3 sent, 1 failed (1 x 503)",
        ]
    )
