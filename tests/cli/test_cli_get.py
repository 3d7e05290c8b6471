"""``kubectl canary get``: the view against golden text, -o json|yaml, and -w redrawing."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
from ruamel.yaml import YAML
from support.cli import RunCli, check_golden, colour_console, plain_console
from support.cli_rollouts import NAME, NS, SCENARIOS, Clock, at_step_two, scenario

from controlplane.cli.live import render
from controlplane.cli.output import shown
from controlplane.operations import get_canary
from controlplane.view.canary import snapshot
from harness.kube.fake import FakeKube

LATER = 120.0  # the views are rendered two minutes after the last write


@pytest.mark.parametrize("case", SCENARIOS)
def test_view_matches_golden(case: str, kube: FakeKube, clock: Clock, run_cli: RunCli) -> None:
    scenario(case, kube, clock)
    clock.now += LATER
    result = run_cli("get", NAME, "-n", NS)
    assert result.code == 0, result.err
    check_golden(f"get-{case}.txt", result.out)


def test_view_in_colour_matches_golden(kube: FakeKube, clock: Clock, run_cli: RunCli) -> None:
    scenario("rolled_back", kube, clock)
    clock.now += LATER
    result = run_cli("get", NAME, "-n", NS, terminal=True)
    assert result.code == 0
    assert "\x1b[1;31mrolled_back" in result.out  # bold red phase
    check_golden("get-rolled_back.ansi", result.out)


def test_view_renders_the_per_check_status_field_with_both_variants(clock: Clock) -> None:
    """A status holding a list of checks with thresholds and both variants' values (the field
    asked of the analysis: stable for every check) shows them, whatever the spec says."""
    kube = FakeKube(now=clock)
    rollout = at_step_two(kube, clock)
    obj = rollout.obj
    obj["status"]["checks"] = [
        {
            "key": "steps[1].rollbackOn[0]",
            "metric": "kpi",
            "result": "breach",
            "value": -0.0612,
            "candidate": 0.752,
            "stable": 0.801,
            "above": 0.05,
            "below": -0.05,
            "unit": "number",
            "at": clock.now,
            "since": clock.now - 600,
            "for": "30m",
        },
        {
            "key": "extra",
            "metric": "latency",
            "result": "pass",
            "value": 0.181,
            "candidate": 0.181,
            "stable": 0.175,
            "above": 0.2,
            "unit": "seconds",
            "at": clock.now,
        },
    ]
    kube.replace_status(obj)
    out = io.StringIO()
    plain_console(out).print(render(snapshot(get_canary(kube, NS, NAME)), clock.now + LATER))
    check_golden("get-checks-field.txt", out.getvalue())
    text = out.getvalue()
    assert "roll back if drift < -5% or >" in text
    assert "5% for 30m" in text
    assert "-6.12%" in text
    assert "0.752" in text
    assert "0.801" in text
    assert "breach 10m/30m" in text
    assert "181.0ms" in text
    assert "175.0ms" in text


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_output_formats_parse_back_to_the_object(
    fmt: str, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario("progressing", kube, clock)
    result = run_cli("get", NAME, "-n", NS, "-o", fmt)
    assert result.code == 0
    parsed = json.loads(result.out) if fmt == "json" else YAML(typ="safe").load(result.out)
    assert parsed == shown(get_canary(kube, NS, NAME))


def test_garbage_status_is_shown_not_a_traceback(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    rollout = scenario("new", kube, clock)
    obj = rollout.obj
    obj["status"] = {
        "phase": 7,
        "stage": "steps",
        "step": "two",
        "checks": {"steps[9].rollbackOn[0]": "x", "bogus": {"at": "yesterday", "value": "NaN"}},
        "history": [1, {"time": "noon", "type": None}],
        "stageStartedAt": float("1e300"),
        "reason": "no",
    }
    kube.replace_status(obj)
    result = run_cli("get", NAME, "-n", NS)
    assert result.code == 0
    assert "unknown" in result.out
    assert "bogus" in result.out


def test_not_found_names_the_resource_and_what_to_do(run_cli: RunCli) -> None:
    result = run_cli("get", "nope", "-n", NS)
    assert result.code == 1
    assert "modelcanary 'nope' not found in namespace 'ml-serving'" in result.err
    assert "kubectl canary list -n ml-serving" in result.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-o", "xml"], "invalid choice: 'xml'"),
        (["-w", "--timeout", "soon"], "--timeout: invalid duration 'soon'"),
        (["--events", "-1"], "--events must be 0 or more"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario("progressing", kube, clock)
    result = run_cli("get", NAME, "-n", NS, *argv)
    assert result.code == 2
    assert message in result.err


def _advance_when_watched(kube: FakeKube, clock: Clock, change: object) -> threading.Thread:
    """Run ``change`` once a watch is open, then let the fake clock run (1 s per reading)."""

    def body() -> None:
        deadline = time.monotonic() + 30
        while kube.open_watches == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        change()  # type: ignore[operator]
        clock.step = 1.0

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_watch_appends_a_frame_per_change_off_a_terminal(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    rollout = scenario("progressing", kube, clock)
    thread = _advance_when_watched(kube, clock, lambda: rollout.intent("pause"))
    result = run_cli("get", NAME, "-n", NS, "-w", "--timeout", "20s")
    thread.join()
    assert result.code == 0
    frames = result.out.split(f"ModelCanary  {NS}/{NAME}")
    assert len(frames) == 3  # before and after the pause; quiet redraws are not appended
    assert "progressing" in frames[1]
    assert "paused (by a user)" in frames[2]


def test_watch_redraws_in_place_on_a_terminal(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    rollout = scenario("progressing", kube, clock)
    thread = _advance_when_watched(kube, clock, lambda: rollout.intent("pause"))
    result = run_cli("get", NAME, "-n", NS, "-w", "--timeout", "20s", terminal=True)
    thread.join()
    assert result.code == 0
    assert "\x1b[2K" in result.out
    assert "\x1b[1A" in result.out
    assert result.out.rstrip().count("paused") >= 1
    last = result.out.rsplit("\x1b[1A\x1b[2K", 1)[-1]
    assert "paused" in last


def test_watch_json_streams_one_document_per_change(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    rollout = scenario("progressing", kube, clock)
    thread = _advance_when_watched(kube, clock, lambda: rollout.intent("pause"))
    result = run_cli("get", NAME, "-n", NS, "-w", "--timeout", "20s", "-o", "json")
    thread.join()
    docs = [json.loads(line) for line in result.out.splitlines()]
    assert [d["status"]["phase"] for d in docs] == ["progressing", "paused"]


def test_colour_console_helper_is_a_terminal() -> None:
    assert colour_console(io.StringIO()).is_terminal
