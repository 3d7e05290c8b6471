"""``kubectl canary promote|abort|pause|resume|retry``: intents recorded, --wait, refusals."""

from __future__ import annotations

import json
import threading
import time

import pytest
from ruamel.yaml import YAML
from support.cli import RunCli
from support.cli_rollouts import NAME, NS, Clock, Rollout, scenario

from controlplane.operations import get_canary
from controlplane.rollout.intents import read_intents
from controlplane.status.times import format_time
from harness.kube.fake import FakeKube


def recorded(kube: FakeKube) -> list[tuple[str, str]]:
    intents, problem = read_intents(get_canary(kube, NS, NAME)["metadata"].get("annotations"))
    assert problem == ""
    return [(r.intent.verb, r.intent.user) for r in intents]


@pytest.mark.parametrize(
    ("case", "argv", "verb", "phase_after"),
    [
        ("progressing", ["pause"], "pause", "paused"),
        ("paused", ["resume"], "resume", "progressing"),
        ("progressing", ["promote"], "promote", "progressing"),
        ("progressing", ["promote", "--full"], "promote-full", "promoted"),
        ("shadow", ["abort"], "abort", "rolled_back"),
        ("rolled_back", ["retry"], "retry", "pending"),
        ("paused_errors", ["pause"], "pause", "paused"),
    ],
)
def test_verb_records_an_intent_the_controller_then_consumes(
    case: str,
    argv: list[str],
    verb: str,
    phase_after: str,
    kube: FakeKube,
    clock: Clock,
    run_cli: RunCli,
) -> None:
    rollout = scenario(case, kube, clock)
    before = len(recorded(kube))
    result = run_cli(*argv, NAME, "-n", NS)
    assert result.code == 0, result.err
    typed = "promote --full" if verb == "promote-full" else verb  # as the user typed it
    assert result.out == (
        f"{NAME} ({NS}): {typed} recorded; the controller applies it at its next reconcile\n"
    )
    intents, _problem = read_intents(get_canary(kube, NS, NAME)["metadata"].get("annotations"))
    intent_id = intents[-1].id
    assert intent_id not in result.out  # what happened, not the intent's id (that is -o json's)
    assert recorded(kube)[before:] == [(verb, "alice")]
    rollout.consume()  # what the controller does next
    assert get_canary(kube, NS, NAME)["status"]["phase"] == phase_after


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_output_is_what_was_recorded(
    fmt: str, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario("progressing", kube, clock)
    result = run_cli("pause", NAME, "-n", NS, "-o", fmt)
    assert result.code == 0
    parsed = json.loads(result.out) if fmt == "json" else YAML(typ="safe").load(result.out)
    intents, _ = read_intents(get_canary(kube, NS, NAME)["metadata"]["annotations"])
    assert parsed == {
        "namespace": NS,
        "name": NAME,
        "verb": "pause",
        "id": intents[-1].id,
        "at": format_time(intents[-1].intent.at),
        "user": "alice",
        "consumed": None,
        "phase": None,
    }


def _consume_when_watched(kube: FakeKube, rollout: Rollout) -> threading.Thread:
    def body() -> None:
        deadline = time.monotonic() + 30
        while kube.open_watches == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        rollout.consume()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_wait_returns_once_the_controller_acted(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    rollout = scenario("progressing", kube, clock)
    thread = _consume_when_watched(kube, rollout)
    result = run_cli("pause", NAME, "-n", NS, "--wait", "-o", "json")
    thread.join()
    assert result.code == 0, result.err
    parsed = json.loads(result.out)
    assert parsed["consumed"] is True
    assert parsed["phase"] == "paused"


def test_wait_text_says_what_happened(kube: FakeKube, clock: Clock, run_cli: RunCli) -> None:
    rollout = scenario("progressing", kube, clock)
    thread = _consume_when_watched(kube, rollout)
    result = run_cli("abort", NAME, "-n", NS, "--wait")
    thread.join()
    assert result.code == 0
    assert result.out.splitlines()[-1] == (
        f"{NAME} ({NS}): abort done, now rolled_back: aborted by alice"
    )


def test_wait_times_out_with_exit_3_and_keeps_the_intent(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario("progressing", kube, clock)
    clock.step = 1.0
    result = run_cli("pause", NAME, "-n", NS, "--wait", "--timeout", "10s")
    assert result.code == 3
    assert "the controller did not act on pause" in result.err
    assert "is it running?" in result.err
    assert recorded(kube)[-1] == ("pause", "alice")


@pytest.mark.parametrize(
    ("case", "argv", "message"),
    [
        ("progressing", ["resume"], "is progressing, not paused: nothing to resume"),
        ("paused", ["pause"], "is already paused; resume it with: kubectl canary resume"),
        ("pending", ["promote"], "has not started yet (pending): promote acts on the shadow"),
        ("new", ["promote", "--full"], "has not started yet (not picked up)"),
        ("promoted", ["abort"], "is already promoted; change the spec to start a new rollout"),
        ("rolled_back", ["pause"], "or run: kubectl canary retry support-triage"),
        ("progressing", ["retry"], "is progressing, not rolled back"),
        ("invalid", ["abort"], "has an invalid spec: the controller acts on nothing"),
        ("progressing", ["pause", "--timeout", "1m"], "--timeout only applies with --wait"),
        ("progressing", ["pause", "--wait", "--timeout", "never"], "invalid duration 'never'"),
    ],
)
def test_pointless_verbs_are_refused_and_change_nothing(
    case: str, argv: list[str], message: str, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario(case, kube, clock)
    before = kube.resource_version
    result = run_cli(*argv, NAME, "-n", NS)
    assert result.code == 2
    assert message in result.err
    assert kube.resource_version == before


def test_unknown_canary_is_an_error_that_changes_nothing(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario("progressing", kube, clock)
    before = kube.resource_version
    result = run_cli("pause", "other", "-n", NS)
    assert result.code == 1
    assert "modelcanary 'other' not found in namespace 'ml-serving'" in result.err
    assert kube.resource_version == before


def test_resume_is_allowed_while_a_pause_is_pending(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario("progressing", kube, clock)
    assert run_cli("pause", NAME, "-n", NS).code == 0
    assert run_cli("resume", NAME, "-n", NS).code == 0
    assert [verb for verb, _ in recorded(kube)] == ["pause", "resume"]


def test_user_comes_from_the_kubeconfig_context(
    kube: FakeKube, clock: Clock, run_cli: RunCli, tmp_path: object
) -> None:
    from pathlib import Path

    scenario("progressing", kube, clock)
    config = Path(str(tmp_path)) / "config"
    config.write_text(
        "current-context: prod\n"
        "contexts:\n- name: prod\n"
        "  context: {cluster: c, user: carol@example.com, namespace: ml-serving}\n",
        encoding="utf-8",
    )
    result = run_cli("pause", NAME, user=None, environ={"KUBECONFIG": str(config)})
    assert result.code == 0, result.err
    assert recorded(kube)[-1] == ("pause", "carol@example.com")
