"""Tests of bench/peers.py's table, on made-up outcomes (no cluster)."""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MATRIX_DIGEST = "174de006a0e1759c10c2fcd5c3aa15361ff48b5ed5dace4e29d3b4f220c32ca9"
"""sha256 of what ``bench/peers.py`` of 16d5c11 (before the contest) printed for the kept matrix
with its healthy runs merged, on 2026-11-26 and "a machine"."""


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.delitem(sys.modules, "bench.peers", raising=False)
    return importlib.import_module("bench.peers")


def outcome(tool: str, name: str, bad: bool, verdict: str, **more: Any) -> dict[str, Any]:
    base = {
        "tool": tool,
        "candidate": name,
        "bad": bad,
        "verdict": verdict,
        "seconds": 100.0,
        "candidate_requests": 40,
        "requests": 700,
        "failed": 0,
        "queries_per_minute": 6.0,
        "writes_per_minute": 12.0,
        "base_latency_s": 0.5,
        "detail": "",
    }
    return {**base, **more}


def test_a_row_per_tool_and_candidate_counts_the_wrong_verdicts(bench: ModuleType) -> None:
    outcomes = [
        outcome("flagger", "healthy", False, "promoted", seconds=150.0),
        outcome("flagger", "healthy", False, "rolled back", seconds=90.0, failed=3),
        outcome("flagger", "healthy", False, "promoted", seconds=160.0),
        outcome("flagger", "2x errors", True, "rolled back", candidate_requests=20),
        outcome("argo-rollouts", "2x errors", True, "promoted"),
    ]
    rows = bench.rows(outcomes)
    assert len(rows) == 3
    healthy, errors, argo = (row.split(" | ") for row in rows)
    assert healthy[2:5] == ["3", "2 promoted, 1 rolled back", "1"]  # one healthy rolled back
    assert healthy[6] == "150"  # the median seconds
    assert healthy[7] == "3 of 2100"
    assert errors[4] == "0"
    assert errors[5] == "20"
    assert argo[4] == "1"  # a bad one promoted


def test_failed_requests_are_listed_by_status_variant_and_time(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = [
        {"at_s": 99.5, "code": 502, "variant": None, "seconds": 0.01},
        {"at_s": 97.0, "code": 502, "variant": None, "seconds": 0.02},
        {"at_s": 40.2, "code": 500, "variant": "candidate", "seconds": 0.3},
        *({"at_s": 10.0 * i, "code": 500, "variant": "stable", "seconds": 0.0} for i in range(6)),
    ]
    outcomes = [
        outcome("flagger", "healthy", False, "promoted", seconds=99.2, failures=failures),
        outcome("ours", "healthy", False, "promoted"),  # none failed: no line
        outcome("ours", "drift", True, "promoted", failed=2),  # kept before failures were
    ]
    assert bench.failure_lines(outcomes) == [
        "- flagger, healthy (verdict at 99.2 s): 500 from candidate x1 at 40.2 s; "
        "500 from stable x6 between 0 and 50 s; 502 from no variant x2 at 97, 99.5 s"
    ]
    monkeypatch.setattr(bench, "machine_summary", lambda _: "a machine")  # no uname
    text = bench.section({"pace": 6.0, "outcomes": outcomes}, "python bench/peers.py")
    assert text.endswith(
        "Failed requests, by run (sent, seconds after the candidate's arrival):\n\n"
        "- flagger, healthy (verdict at 99.2 s): 500 from candidate x1 at 40.2 s; "
        "500 from stable x6 between 0 and 50 s; 502 from no variant x2 at 97, 99.5 s"
    )


def test_the_report_renders_without_a_run(
    bench: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench, "machine_summary", lambda _: "a machine")  # no uname here
    kept = tmp_path / "peers.json"
    data = {"pace": 3.0, "outcomes": [outcome("flagger", "healthy", False, "promoted")]}
    kept.write_text(json.dumps(data))
    assert bench.main(["--report", str(kept), "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "`python bench/peers.py --report peers.json`" in out
    assert "divided by 3 (the tutorial's 1m analysis interval ran every 20 s)" in out
    assert "| flagger | healthy | 1 | 1 promoted | 0 |" in out


def test_a_report_quotes_the_command_that_ran(
    bench: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench, "machine_summary", lambda _: "a machine")
    kept = tmp_path / "peers.json"
    data = {"pace": 6.0, "cmd": "python bench/peers.py --short --pace 6", "outcomes": []}
    kept.write_text(json.dumps(data))
    assert bench.main(["--report", str(kept), "--no-write"]) == 0
    assert "`python bench/peers.py --short --pace 6`" in capsys.readouterr().out


def test_merged_runs_make_one_table_with_every_command_and_the_load(
    bench: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A matrix run in parts: ``--merge`` adds another kept run's outcomes, its command and its
    load samples; a run at another pace is refused."""
    monkeypatch.setattr(bench, "machine_summary", lambda _: "a machine")
    first, second, other = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    first.write_text(
        json.dumps(
            {
                "pace": 6.0,
                "cmd": "python bench/peers.py --runs 1 --pace 6",
                "load": [3.0, 5.0],
                "outcomes": [outcome("ours", "healthy", False, "promoted")],
            }
        )
    )
    second.write_text(
        json.dumps(
            {
                "pace": 6.0,
                "cmd": "python bench/peers.py --runs 2 --candidates 'healthy' --pace 6",
                "load": [4.0],
                "outcomes": [outcome("ours", "healthy", False, "rolled back")] * 2,
            }
        )
    )
    other.write_text(json.dumps({"pace": 3.0, "outcomes": []}))
    assert bench.main(["--report", str(first), "--merge", str(second), "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "`python bench/peers.py --runs 1 --pace 6`, then `python bench/peers.py --runs 2" in out
    assert "| ours | healthy | 3 | 1 promoted, 2 rolled back | 2 |" in out
    assert "median 4, 3 to 5 over 3 samples" in out
    with pytest.raises(SystemExit):
        bench.main(["--report", str(first), "--merge", str(other), "--no-write"])


def contest(tool: str, judge: str, name: str, verdict: str, **more: Any) -> dict[str, Any]:
    expected = {"control": "promoted", "within": "promoted", "edge": None}.get(name, "rolled back")
    base = outcome(tool, name, expected == "rolled back", verdict)
    return {
        **base,
        "judge": judge,
        "expected": expected,
        "breaching": 0,
        "stable_p95_s": 0.7,
        **more,
    }


def test_the_contest_rows_score_each_run_against_its_written_verdict(bench: ModuleType) -> None:
    outcomes = [
        contest("argo-rollouts", "", "crash loop", "halted"),  # neither verdict: wrong
        contest("ours", "sequential", "errors 5x", "rolled back", breaching=30, seconds=60.0),
        contest("ours", "sequential", "errors 5x", "rolled back", breaching=50, seconds=80.0),
        contest("ours", "sequential", "errors 5x", "promoted", breaching=400, seconds=300.0),
        contest("flagger", "", "edge", "promoted"),
        contest("ours", "threshold", "control", "rolled back"),
    ]
    rows = [row.split(" | ") for row in bench.contest_rows(outcomes)]
    # the registered order of tools, then of candidates, whatever the order of the runs
    assert [(r[0], r[1]) for r in rows] == [
        ("| flagger", "edge"),
        ("| argo-rollouts", "crash loop"),
        ("| ours:threshold", "control"),
        ("| ours:sequential", "errors 5x"),
    ]
    edge, crash, control, errors = rows
    assert edge[2:4] == ["either", "1 of 5"]
    assert edge[5] == "-"  # reported, not scored
    assert crash[5] == "0 of 1 (0-79 %)"
    assert control[3] == "1 of 10"  # the control's registered runs
    assert control[5] == "0 of 1 (0-79 %)"
    assert errors[4] == "1 promoted, 2 rolled back"
    assert errors[5] == "2 of 3 (21-94 %)"
    assert errors[6] == "80 (60-300)"  # the median seconds, and their range
    assert errors[7] == "50 (30-400)"


def test_ours_sequential_is_compared_with_each_peer_where_both_ran(bench: ModuleType) -> None:
    outcomes = [
        contest("ours", "sequential", "errors 5x", "rolled back", breaching=40),
        contest("flagger", "", "errors 5x", "promoted", breaching=200),
        contest("argo-rollouts", "", "errors 5x", "rolled back", breaching=30),
        contest("ours", "threshold", "errors 5x", "rolled back", breaching=10),  # not a peer
        contest("ours", "sequential", "latency 2x", "rolled back", breaching=20),
        contest("ours", "sequential", "latency 2x", "rolled back", breaching=26),
        contest("flagger", "", "latency 2x", "rolled back", breaching=36),
        contest("argo-rollouts", "", "latency 2x", "halted", breaching=23),
        contest("ours", "sequential", "crash loop", "rolled back"),
        contest("flagger", "", "crash loop", "rolled back"),
        contest("ours", "sequential", "control", "promoted"),
        contest("ours", "sequential", "control", "rolled back"),
        contest("flagger", "", "control", "promoted"),
        contest("ours", "sequential", "within", "promoted"),  # not a scored row
        contest("flagger", "", "within", "promoted"),
        contest("ours", "sequential", "edge", "promoted"),  # nor is the edge
        contest("flagger", "", "edge", "rolled back"),
        contest("ours", "sequential", "drift", "rolled back"),  # no peer ran it
        contest("flagger", "", "errors 5x", "promoted", breaching=220),  # order of runs: any
    ]
    assert bench.contest_verdict_lines(outcomes) == [
        "- control: ours (sequential) rolled back 1 of 2 runs, Flagger 0 of 1: more than Flagger.",
        "- latency 2x: ours (sequential) served a median of 23 breaching requests, Flagger 36, "
        "Argo Rollouts 23: not more than either.",
        "- errors 5x: ours (sequential) served a median of 40 breaching requests, Flagger 210, "
        "Argo Rollouts 30: more than Argo Rollouts.",
        "- crash loop: ours (sequential) served a median of 0 breaching requests, Flagger 0: "
        "not more than Flagger.",
    ]


def test_the_control_compares_shares_of_rollbacks_and_no_sequential_run_says_nothing(
    bench: ModuleType,
) -> None:
    control = [
        contest("ours", "sequential", "control", "rolled back"),
        *[contest("ours", "sequential", "control", "promoted")] * 9,
        contest("flagger", "", "control", "rolled back"),
        contest("flagger", "", "control", "promoted"),
        contest("argo-rollouts", "", "control", "halted"),  # wrong, but no false rollback
    ]
    assert bench.contest_verdict_lines(control) == [
        "- control: ours (sequential) rolled back 1 of 10 runs, Flagger 1 of 2, "
        "Argo Rollouts 0 of 1: more than Argo Rollouts.",
    ]
    peers_only = [contest("flagger", "", "errors 5x", "rolled back", breaching=9)]
    assert bench.contest_verdict_lines(peers_only) == []
    assert bench.contest_verdict_lines([]) == []


def test_the_right_share_shows_its_wilson_interval_and_leaves_the_edge_unscored(
    bench: ModuleType,
) -> None:
    four_of_five = [
        *[contest("flagger", "", "drift", "rolled back")] * 4,
        contest("flagger", "", "drift", "promoted"),
    ]
    assert bench.right_share(four_of_five) == "4 of 5 (38-96 %)"
    halted = [contest("argo-rollouts", "", "drift", "halted")] * 2
    assert bench.right_share(halted) == "0 of 2 (0-66 %)"  # halted is not rolled back
    assert bench.right_share([contest("argo-rollouts", "", "control", "halted")]) == (
        "0 of 1 (0-79 %)"  # nor promoted
    )
    ten = [contest("ours", "sequential", "control", "promoted")] * 10
    assert bench.right_share(ten) == "10 of 10 (72-100 %)"
    edge = [
        contest("flagger", "", "edge", "rolled back"),
        contest("flagger", "", "edge", "promoted"),
    ]
    assert bench.right_share(edge) == "-"
    [row] = bench.contest_rows(edge)
    assert row.startswith("| flagger | edge | either | 2 of 5 | 1 promoted, 1 rolled back | - |")


def test_every_tool_and_candidate_in_the_registered_order(bench: ModuleType) -> None:
    from harness.peers.contest import CANDIDATES, TOOLS

    made = {
        "flagger": ("flagger", ""),
        "argo-rollouts": ("argo-rollouts", ""),
        "ours:threshold": ("ours", "threshold"),
        "ours:sequential": ("ours", "sequential"),
    }
    outcomes = [
        contest(*made[tool], name, "promoted")
        for name in reversed(CANDIDATES)
        for tool in reversed(TOOLS)
    ]
    rows = [row.split(" | ") for row in bench.contest_rows(outcomes)]
    assert [(r[0].removeprefix("| "), r[1]) for r in rows] == [
        (tool, name) for tool in TOOLS for name in CANDIDATES
    ]
    assert all(len(r) == 11 for r in rows)  # the eleven columns of the header


def test_the_contest_section_lists_failures_by_tool_and_judge(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "machine_summary", lambda _: "a machine")
    failure = [{"at_s": 12.0, "code": 500, "variant": "stable", "seconds": 0.1}]
    outcomes = [
        contest("ours", "threshold", "errors 5x", "rolled back", breaching=50, failures=failure),
        contest("ours", "sequential", "errors 5x", "rolled back", breaching=20, failures=failure),
        contest("flagger", "", "errors 5x", "promoted", breaching=200),
    ]
    text = bench.contest_section(
        {"design": "contest", "pace": 6.0, "outcomes": outcomes, "load": [1.0]}, "cmd"
    )
    assert "every interval divided by 6, none below 10 s" in text
    assert "95 % Wilson interval" in text
    assert "- errors 5x: ours (sequential) served a median of 20 breaching requests, " in text
    assert text.endswith(
        "- ours:threshold, errors 5x (verdict at 100 s): 500 from stable x1 at 12 s\n"
        "- ours:sequential, errors 5x (verdict at 100 s): 500 from stable x1 at 12 s"
    )
    alone = [contest("ours", "threshold", "errors 5x", "rolled back")]
    quiet = bench.contest_section({"pace": 6.0, "outcomes": alone}, "cmd")
    assert "against each peer" not in quiet  # nothing to compare: no heading


def test_load_keeps_the_design_of_the_files_the_test_wrote(
    bench: ModuleType, tmp_path: Path
) -> None:
    for tool in ("flagger", "ours"):
        kept = {"design": "contest", "pace": 6.0, "outcomes": [contest(tool, "", "edge", "x")]}
        (tmp_path / f"peers-{tool}.json").write_text(json.dumps(kept))
    got = bench.load(tmp_path)
    assert got["design"] == "contest"
    assert got["pace"] == 6.0
    assert [o["tool"] for o in got["outcomes"]] == ["flagger", "ours"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "peers-a.json").write_text(json.dumps({"pace": 6.0, "outcomes": []}))
    assert "design" not in bench.load(tmp_path / "old")


def test_the_matrix_section_is_rendered_as_it_was(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old format's section, byte for byte as before the contest's rendering came."""
    monkeypatch.setattr(bench, "machine_summary", lambda _: "a machine")
    monkeypatch.setattr(bench, "today", lambda: "2026-11-26")
    outcomes = [
        outcome("flagger", "healthy", False, "promoted", seconds=92.5),
        outcome(
            "ours",
            "drift",
            True,
            "rolled back",
            failed=1,
            failures=[{"at_s": 3.0, "code": 502, "variant": None, "seconds": 0.0}],
        ),
    ]
    text = bench.section({"pace": 6.0, "outcomes": outcomes, "load": [2.0]}, "python x")
    assert text.startswith("Measured 2026-11-26 on a machine; `python x`.\n\nPins: ours: ")
    assert "the tutorial's 1m analysis interval ran every 10 s" in text
    assert text.endswith(
        "over 1 samples 30 s apart.\n\n"
        "| tool | candidate | runs | verdicts | wrong | requests the candidate served "
        "| seconds | failed requests | Prometheus queries / min | API writes / min |\n"
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|\n"
        "| flagger | healthy | 1 | 1 promoted | 0 | 40 | 92.5 | 0 of 700 | 6 | 12 |\n"
        "| ours | drift | 1 | 1 rolled back | 0 | 40 | 100 | 1 of 700 | 6 | 12 |\n\n"
        "Failed requests, by run (sent, seconds after the candidate's arrival):\n\n"
        "- ours, drift (verdict at 100 s): 502 from no variant x1 at 3 s"
    )


def test_the_kept_matrix_renders_as_it_did(
    bench: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--report`` of the kept matrix with its healthy runs merged prints what it printed
    before the contest (the digest of that output, the date and the machine fixed)."""
    monkeypatch.setattr(bench, "machine_summary", lambda _: "a machine")
    monkeypatch.setattr(bench, "today", lambda: "2026-11-26")
    headers: list[str] = []
    publish = bench.publish

    def published(args: Any, header: str, body: str) -> None:
        headers.append(header)
        publish(args, header, body)

    monkeypatch.setattr(bench, "publish", published)
    kept = REPO / "bench" / "kept"
    argv = ["--report", str(kept / "peers-2026-11-26-matrix.json")]
    argv += ["--merge", str(kept / "peers-2026-11-26-healthy.json"), "--no-write"]
    assert bench.main(argv) == 0
    assert headers == ["## Side by side with the real peers"]
    out = capsys.readouterr().out
    assert hashlib.sha256(out.encode()).hexdigest() == MATRIX_DIGEST


def test_a_contest_report_goes_to_its_own_section_and_refuses_another_design(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[tuple[str, str]] = []
    monkeypatch.setattr(bench, "machine_summary", lambda packages: "a machine")
    monkeypatch.setattr(
        bench, "publish", lambda args, header, body: published.append((header, body))
    )
    kept = {
        "design": "contest",
        "pace": 6.0,
        "cmd": "python bench/peers.py --runs 1 --pace 6",
        "outcomes": [contest("ours", "sequential", "control", "promoted")],
    }
    report = tmp_path / "contest.json"
    report.write_text(json.dumps(kept))
    assert bench.main(["--report", str(report), "--no-write"]) == 0
    [(header, body)] = published
    assert header == bench.SECTION_CONTEST
    assert "`python bench/peers.py --runs 1 --pace 6`" in body
    assert "| ours:sequential | control | promoted | 1 of 10 | 1 promoted |" in body
    matrix = tmp_path / "matrix.json"
    matrix.write_text(json.dumps({"pace": 6.0, "outcomes": []}))
    with pytest.raises(SystemExit):
        bench.main(["--report", str(report), "--merge", str(matrix), "--no-write"])
    with pytest.raises(SystemExit):
        bench.main(["--report", str(matrix), "--merge", str(report), "--no-write"])
    assert len(published) == 1  # neither mix published
    again = tmp_path / "again.json"
    again.write_text(json.dumps({**kept, "cmd": "python bench/peers.py --runs 2 --pace 6"}))
    assert bench.main(["--report", str(report), "--merge", str(again), "--no-write"]) == 0
    assert "| ours:sequential | control | promoted | 2 of 10 | 2 promoted |" in published[-1][1]
