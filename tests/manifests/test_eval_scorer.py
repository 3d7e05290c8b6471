"""The evaluation's scorer, as ``manifests/argo/llm-regression-eval.yaml`` ships it.

The step's Python is loaded from the template itself (not run as ``__main__``, so it asks
nothing) and its ``evaluate`` given answers of our own: a regular expression per case, the F1 of
the candidate's words against the stable's, the thresholds, and the one-line ``reason`` that
becomes the gate's message. On the real Argo Workflows the same step asks engine pods
(``tests/controller/test_argo_real.py``).
"""

from __future__ import annotations

import json
import socket
import urllib.error
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.servers.loopback import Script, scripted, serving

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "manifests" / "argo" / "llm-regression-eval.yaml"
CANDIDATE, STABLE = "http://candidate", "http://stable"


def scorer() -> dict[str, Any]:
    doc = yaml.safe_load(TEMPLATE.read_text())
    (step,) = [t for t in doc["spec"]["templates"] if t["name"] == doc["spec"]["entrypoint"]]
    namespace: dict[str, Any] = {"__name__": "llm_regression_eval"}
    exec(compile(step["script"]["source"], str(TEMPLATE), "exec"), namespace)
    return namespace


SCORER = scorer()


def env(suite: list[dict[str, str]], baseline: str = STABLE, **more: str) -> dict[str, str]:
    return {
        "ENDPOINT": CANDIDATE,
        "BASELINE": baseline,
        "API_PATH": "/v1",
        "MODEL": "m",
        "MAX_TOKENS": "32",
        "JUDGE_ENDPOINT": "",
        "JUDGE_MODEL": "",
        "SUITE": "\n".join(json.dumps(case) for case in suite),
        "MIN_SCORE": "0.9",
        "MIN_AGREEMENT": "0.8",
        **more,
    }


def answering(answers: Mapping[str, Mapping[str, str | None]]) -> Callable[..., str | None]:
    """``ask`` for ``evaluate``: the answer of each base URL (without the API path) to each
    prompt; it checks what it is asked."""

    def ask(base: str, model: str, messages: list[dict[str, str]], limit: int) -> str | None:
        assert (model, limit) == ("m", 32)
        (message,) = messages
        return answers[base.removesuffix("/v1")][message["content"]]

    return ask


PROMPTS = [{"prompt": "a"}, {"prompt": "b"}]


def test_the_agreement_is_the_f1_of_the_words() -> None:
    agreement = SCORER["agreement"]
    assert agreement("The refund, shipped.", "the REFUND shipped") == 1.0
    assert agreement("one two", "three four") == 0.0
    assert agreement("", "") == 1.0
    assert agreement("a b c d", "a b") == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # p 0.5, r 1
    assert agreement("a a b", "a b b") == pytest.approx(2 / 3)  # counted with multiplicity


def test_a_candidate_answering_as_the_stable_passes() -> None:
    same = {"a": "thanks for reaching out", "b": "the order shipped"}
    score, agreed, reason, passed = SCORER["evaluate"](
        env(PROMPTS), answering({CANDIDATE: same, STABLE: same})
    )
    assert (score, agreed, passed) == (None, 1.0, True)
    assert reason == "agreement with stable 1.00 >= 0.8 (2 prompts)"


def test_a_candidate_whose_answers_differ_fails_with_the_reason() -> None:
    stable = {"a": "thanks for reaching out", "b": "the order shipped"}
    candidate = {"a": "thanks for reaching out", "b": "restart your device"}
    score, agreed, reason, passed = SCORER["evaluate"](
        env(PROMPTS), answering({CANDIDATE: candidate, STABLE: stable})
    )
    assert not passed
    assert score is None
    assert agreed == pytest.approx(0.5)
    assert reason == "agreement with stable 0.50 < 0.8 (2 prompts)"


def test_an_unanswered_candidate_prompt_agrees_with_nothing() -> None:
    stable = {"a": "x", "b": "y"}
    _, agreed, reason, passed = SCORER["evaluate"](
        env(PROMPTS), answering({CANDIDATE: {"a": "x", "b": None}, STABLE: stable})
    )
    assert (agreed, passed) == (0.5, False)
    assert reason.startswith("agreement with stable 0.50 < 0.8")


def test_a_stable_that_answers_nothing_fails_the_gate_saying_so() -> None:
    none: dict[str, str | None] = {"a": None, "b": None}
    _, agreed, reason, passed = SCORER["evaluate"](
        env(PROMPTS), answering({CANDIDATE: {"a": "x", "b": "y"}, STABLE: none})
    )
    assert (agreed, passed) == (None, False)
    assert reason.startswith("the stable variant answered no prompt: nothing to compare")


def test_expectations_score_the_candidate_alone_without_a_baseline() -> None:
    suite = [{"prompt": "a", "expect": "\\b42\\b"}, {"prompt": "b", "expect": "paris"}]
    candidate = {"a": "It is 42.", "b": "Lyon"}
    score, agreed, reason, passed = SCORER["evaluate"](
        env(suite, baseline=""), answering({CANDIDATE: candidate})
    )
    assert (score, agreed, passed) == (0.5, None, False)
    assert reason == "score 0.50 < 0.9 (2 prompts)"
    candidate["b"] = "PARIS"
    assert SCORER["evaluate"](env(suite, baseline=""), answering({CANDIDATE: candidate}))[3]


def test_both_must_hold_when_both_are_asked() -> None:
    suite = [{"prompt": "a", "expect": "shipped"}]
    answers = {CANDIDATE: {"a": "it shipped"}, STABLE: {"a": "the order shipped yesterday"}}
    score, agreed, reason, passed = SCORER["evaluate"](env(suite), answering(answers))
    assert (score, passed) == (1.0, False)
    assert agreed == pytest.approx(1 / 3)
    assert reason == "agreement with stable 0.33 < 0.8 (1 prompts)"


def test_a_suite_with_nothing_to_score_fails() -> None:
    _, _, reason, passed = SCORER["evaluate"](
        env(PROMPTS, baseline=""), answering({CANDIDATE: {"a": "x", "b": "y"}})
    )
    assert not passed
    assert reason.startswith("nothing to score")


CHAT = json.dumps({"choices": [{"message": {"content": "the order shipped"}}]}).encode()


def ask(steps: tuple[str, ...]) -> tuple[str | None, int]:
    """The scorer's answer from an engine answering ``steps`` (:class:`Script`), and how many
    requests it sent."""
    script = Script(list(steps), CHAT)
    with serving(scripted(script)) as url:
        answer: str | None = SCORER["chat"](f"{url}/v1", "m", [{"role": "user", "content": "a"}], 8)
    return answer, script.seen


@pytest.mark.parametrize(
    ("behaviours", "answer", "seen"),
    [
        (("drop", "200"), "the order shipped", 2),
        (("503", "502", "200"), "the order shipped", 3),
        (("504", "504", "504", "200"), None, 3),
        (("500", "200"), None, 1),
        (("400", "200"), None, 1),
    ],
    ids=["dropped", "proxy-busy", "three-tries", "engine-error", "refused-request"],
)
def test_what_the_network_lost_is_asked_again_what_the_engine_said_is_not(
    monkeypatch: pytest.MonkeyPatch, behaviours: tuple[str, ...], answer: str | None, seen: int
) -> None:
    """A dropped connection or a proxy's 502/503/504 is the network's: asked again, TRIES in
    all; an engine's own error answer counts as no answer at once."""
    monkeypatch.setitem(SCORER, "PAUSE_S", 0.0)
    assert ask(behaviours) == (answer, seen)


def test_a_refused_connection_or_an_unresolved_name_passes_a_timeout_does_not() -> None:
    passing = SCORER["passing"]
    assert passing(urllib.error.URLError(ConnectionRefusedError()))
    assert passing(urllib.error.URLError(socket.gaierror(-3, "Temporary failure")))
    assert passing(ConnectionResetError())
    assert not passing(urllib.error.URLError(TimeoutError()))
    assert not passing(TimeoutError())
    assert not passing(ValueError("not JSON"))
