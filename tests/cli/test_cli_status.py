"""``kubectl canary status``: the exit code of every phase, -w while the status changes, and
--timeout."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
from ruamel.yaml import YAML
from support.cli import RunCli
from support.cli_rollouts import DAY, NAME, NS, Clock, Rollout, at_step_two, scenario

from controlplane.cli.status import (
    EXIT_IN_PROGRESS,
    EXIT_INVALID,
    EXIT_PAUSED,
    EXIT_PROMOTED,
    EXIT_ROLLED_BACK,
)
from harness.kube.fake import FakeKube


@pytest.mark.parametrize(
    ("case", "code", "says"),
    [
        ("new", EXIT_IN_PROGRESS, "waiting for the controller to pick it up"),
        (
            "pending",
            EXIT_IN_PROGRESS,
            "pending: at the last evaluation, the candidate was not ready",
        ),
        ("shadow", EXIT_IN_PROGRESS, "shadow, shadow (mirroring, weight 0%) (1d1h in stage"),
        ("progressing", EXIT_IN_PROGRESS, "progressing, step 2/4 at weight 25% (3d in stage"),
        (
            "holding",
            EXIT_IN_PROGRESS,
            "holding, step 2/4 at weight 25%: inconclusive: kpi: too few",
        ),
        ("rolled_back", EXIT_ROLLED_BACK, "rolled back: latency 412.3ms > 300ms over 5m"),
        ("paused", EXIT_PAUSED, "paused by a user at step 2/4 at weight 25%"),
        ("paused_errors", EXIT_PAUSED, "it resumes by itself once the errors stop"),
        ("promoted", EXIT_PROMOTED, "promoted: candidate nf4 (bitsandbytes-nf4) serves 100%"),
        ("invalid", EXIT_INVALID, "spec is invalid: spec.steps[1].weight: weights must increase"),
    ],
)
def test_exit_code_of_each_phase(
    case: str, code: int, says: str, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario(case, kube, clock)
    result = run_cli("status", NAME, "-n", NS)
    assert result.code == code, result.out + result.err
    assert result.out.startswith(f"modelcanary {NS}/{NAME}: ")
    assert says in result.out


def test_awaiting_approval_needs_a_human(kube: FakeKube, clock: Clock, run_cli: RunCli) -> None:
    rollout = at_step_two(kube, clock)
    obj = rollout.obj
    obj["status"] = {**obj["status"], "phase": "awaiting_approval", "awaitingApproval": True}
    kube.replace_status(obj)
    result = run_cli("status", NAME, "-n", NS)
    assert result.code == EXIT_PAUSED
    assert f"approve with: kubectl canary promote {NAME} -n {NS}" in result.out


def test_a_status_for_an_older_generation_is_in_progress(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    rollout = scenario("promoted", kube, clock)
    obj = rollout.obj
    obj["spec"]["candidate"]["name"] = "awq"  # a new spec: the controller has not seen it yet
    kube.replace(obj)
    result = run_cli("status", NAME, "-n", NS)
    assert result.code == EXIT_IN_PROGRESS
    assert "waiting for the controller to act on generation 2 (status is for 1, promoted)" in (
        result.out
    )


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_output_formats_parse_back(fmt: str, kube: FakeKube, clock: Clock, run_cli: RunCli) -> None:
    scenario("rolled_back", kube, clock)
    result = run_cli("status", NAME, "-n", NS, "-o", fmt)
    assert result.code == EXIT_ROLLED_BACK
    parsed = json.loads(result.out) if fmt == "json" else YAML(typ="safe").load(result.out)
    assert parsed["outcome"] == "rolled_back"
    assert parsed["exitCode"] == EXIT_ROLLED_BACK
    assert parsed["timedOut"] is False
    assert (parsed["step"], parsed["steps"], parsed["weight"]) == (1, 4, 0)
    assert parsed["reason"] == "latency 412.3ms > 300ms over 5m at step 1"


def _when_watched(kube: FakeKube, *changes: Callable[[], object]) -> threading.Thread:
    """Apply ``changes`` one by one, each once the command is watching again."""

    def body() -> None:
        for change in changes:
            before = kube.count("watch")
            deadline = time.monotonic() + 30
            while kube.count("watch") == before and time.monotonic() < deadline:
                time.sleep(0.002)
            change()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_watch_follows_until_promoted(kube: FakeKube, clock: Clock, run_cli: RunCli) -> None:
    rollout = at_step_two(kube, clock)
    kpi = {"kpi": ("pass", 0.01, 0.81, 0.80)}
    thread = _when_watched(
        kube,
        lambda: rollout.tick(4 * DAY, kpi),  # step 2 done -> step 3
        lambda: rollout.tick(7 * DAY, {"latency-p99": ("pass", 0.12, 0.12, None)}),  # -> promoted
    )
    result = run_cli("status", NAME, "-n", NS, "-w", "--timeout", "30d")
    thread.join()
    assert result.code == EXIT_PROMOTED, result.err
    lines = result.out.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "progressing, step 2/4 at weight 25%",
        "progressing, step 3/4 at weight 75%",
        "promoted: candidate nf4 (bitsandbytes-nf4) serves 100%",
    ]


def test_watch_ends_on_a_rollback(kube: FakeKube, clock: Clock, run_cli: RunCli) -> None:
    rollout = at_step_two(kube, clock)
    breach = {"kpi": ("breach", -0.071, 0.744, 0.801)}
    thread = _when_watched(kube, lambda: rollout.tick(600, breach))
    result = run_cli("status", NAME, "-n", NS, "-w", "-o", "json")
    thread.join()
    assert result.code == EXIT_ROLLED_BACK
    summary = json.loads(result.out)
    assert summary["outcome"] == "rolled_back"
    assert "kpi drift -7.1% < -5%" in summary["reason"]


def test_timeout_while_watching_exits_3(kube: FakeKube, clock: Clock, run_cli: RunCli) -> None:
    at_step_two(kube, clock)
    clock.step = 1.0  # every reading of the clock is a second later
    watches = kube.count("watch")
    result = run_cli("status", NAME, "-n", NS, "--timeout", "30s")
    # the fake clock, not the wall clock, ran out: each round of watching (0.01 s of wall clock)
    # reads the clock once, so 30 fake seconds pass within 30 rounds; the wall clock would have
    # taken some 3000 rounds of 0.01 s to reach 30 s
    assert kube.count("watch") - watches <= 30
    assert result.code == EXIT_IN_PROGRESS
    assert "error: timed out after 30s waiting for modelcanary ml-serving/support-triage" in (
        result.err
    )
    assert "still progressing" in result.err


def test_timeout_json_says_timed_out(kube: FakeKube, clock: Clock, run_cli: RunCli) -> None:
    at_step_two(kube, clock)
    clock.step = 1.0
    result = run_cli("status", NAME, "-n", NS, "-w", "--timeout", "5s", "-o", "json")
    assert result.code == EXIT_IN_PROGRESS
    assert json.loads(result.out)["timedOut"] is True


def test_deleted_while_watching_is_an_error(kube: FakeKube, clock: Clock, run_cli: RunCli) -> None:
    rollout = at_step_two(kube, clock)
    thread = _when_watched(kube, lambda: kube.delete(rollout_ref(rollout)))
    result = run_cli("status", NAME, "-n", NS, "-w")
    thread.join()
    assert result.code == 1
    assert "modelcanary 'support-triage' in namespace 'ml-serving' was deleted while watching" in (
        result.err
    )


def rollout_ref(rollout: Rollout) -> object:
    from controlplane.kube.client import canary_ref

    return canary_ref(rollout.namespace, rollout.name)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["status", "nope", "-n", NS], 1, "modelcanary 'nope' not found in namespace"),
        (["status", NAME, "-n", NS, "-o", "xml"], 2, "invalid choice: 'xml'"),
        (["status", NAME, "-n", NS, "--timeout", "0"], 2, "--timeout must be longer than 0"),
        (["status", NAME, "-n", NS, "--timeout", "5"], 2, "invalid duration '5'"),
        (["status", "-n", NS], 2, "the following arguments are required: NAME"),
    ],
)
def test_errors_give_a_message_and_an_exit_code(
    argv: list[str], code: int, message: str, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario("progressing", kube, clock)
    before = kube.resource_version
    result = run_cli(*argv)
    assert result.code == code
    assert message in result.err
    assert kube.resource_version == before  # nothing changed
