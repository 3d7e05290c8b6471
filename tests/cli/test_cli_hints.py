"""Every ``kubectl canary ...`` hint the CLI prints can be pasted as is: it names ``-n``.

The hints of every state are collected from ``status``, ``get`` and the refused action verbs
(plus a not-found error and a manual step awaiting approval); a hint without ``-n`` would act on
the kubeconfig's namespace, not the canary's.
"""

from __future__ import annotations

import re

import pytest
from support.cli import RunCli
from support.cli_rollouts import NAME, NS, SCENARIOS, Clock, at_step_two, scenario

from harness.kube.fake import FakeKube

HINT = re.compile(r"kubectl canary [a-z-]+ [^)\n;,]*")
ACTIONS = ("pause", "resume", "promote", "abort", "retry")


def _hints(text: str) -> list[str]:
    return [m.group(0).strip() for m in HINT.finditer(text)]


def _assert_pasteable(hints: list[str]) -> None:
    for hint in hints:
        assert re.search(rf"(^| )-n {NS}( |$)", hint), hint
        assert NAME in hint or " list " in hint, hint


@pytest.mark.parametrize("case", SCENARIOS)
def test_every_hint_of_every_state_names_the_namespace(
    case: str, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario(case, kube, clock)
    texts = [run_cli("status", NAME, "-n", NS).out, run_cli("get", NAME, "-n", NS).out]
    for verb in ACTIONS:
        refused = run_cli(verb, NAME, "-n", NS)
        texts.append(refused.err)  # refused (exit 2): the reason says what to do
    hints = [h for text in texts for h in _hints(text)]
    _assert_pasteable(hints)


def test_the_states_with_a_hint_do_print_one(kube: FakeKube, clock: Clock, run_cli: RunCli) -> None:
    scenario("paused", kube, clock)
    assert _hints(run_cli("status", NAME, "-n", NS).out) == [
        f"kubectl canary resume {NAME} -n {NS}"
    ]
    assert _hints(run_cli("pause", NAME, "-n", NS).err) == [f"kubectl canary resume {NAME} -n {NS}"]


def test_rolled_back_and_invalid_hints_name_the_namespace(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario("rolled_back", kube, clock)
    assert _hints(run_cli("pause", NAME, "-n", NS).err) == [f"kubectl canary retry {NAME} -n {NS}"]


def test_awaiting_approval_hints_name_the_namespace(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    rollout = at_step_two(kube, clock)
    obj = rollout.obj
    obj["status"] = {**obj["status"], "phase": "awaiting_approval", "awaitingApproval": True}
    kube.replace_status(obj)
    hints = _hints(run_cli("status", NAME, "-n", NS).out) + _hints(
        run_cli("get", NAME, "-n", NS).out
    )
    assert len(hints) == 2
    _assert_pasteable(hints)


def test_not_found_hint_names_the_namespace(run_cli: RunCli) -> None:
    hints = _hints(run_cli("get", "nope", "-n", NS).err)
    assert hints == [f"kubectl canary list -n {NS}"]
