"""The pure parts of the controller: conditions, status documents, intents, Events to emit, and
the command line."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pytest
from support.controller_world import World, world_canary

from controlplane.cli import controller as cli
from controlplane.controller.children import is_ready
from controlplane.controller.reconcile import Settings
from controlplane.errors import Problem, UsageError
from controlplane.rollout import events
from controlplane.rollout.schedule import initial_state
from controlplane.rollout.state import Event, RolloutState
from controlplane.spec.models import ModelCanary
from controlplane.status import conditions
from controlplane.status import document as st

T = 1_800_000_000.0
CANARY = ModelCanary.model_validate(world_canary("c", "http://127.0.0.1:9090"))


def state(**changes: object) -> RolloutState:
    return replace(initial_state(CANARY, T), **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("phase", "paused", "expected"),
    [
        pytest.param("promoted", None, ("True", "False", "False"), id="promoted-ready"),
        pytest.param("rolled_back", None, ("False", "False", "True"), id="rolled-back-stalled"),
        pytest.param("invalid", None, ("False", "False", "True"), id="invalid-stalled"),
        pytest.param("paused", "errors", ("False", "False", "True"), id="provider-errors-stalled"),
        pytest.param("paused", "user", ("False", "False", "False"), id="user-pause"),
        pytest.param("progressing", None, ("False", "True", "False"), id="progressing"),
        pytest.param("pending", None, ("False", "True", "False"), id="pending"),
        pytest.param("holding", None, ("False", "True", "False"), id="holding"),
    ],
)
def test_conditions_per_phase(phase: str, paused: str | None, expected: tuple[str, ...]) -> None:
    got = {c.type: c.status for c in conditions.for_phase(phase, "why", paused)}
    assert (got["Ready"], got["Reconciling"], got["Stalled"]) == expected


def test_transition_time_moves_only_when_the_status_changes() -> None:
    first = conditions.render(conditions.for_phase("progressing"), None, 3, T)
    again = conditions.render(conditions.for_phase("holding"), first, 4, T + 60)
    done = conditions.render(conditions.for_phase("promoted"), again, 4, T + 120)
    stamps = [{c["type"]: c["lastTransitionTime"] for c in cs} for cs in (first, again, done)]
    assert stamps[0] == stamps[1]
    assert stamps[2]["Ready"] != stamps[1]["Ready"]
    assert stamps[2]["Stalled"] == stamps[1]["Stalled"]
    assert {c["observedGeneration"] for c in done} == {4}


def test_status_round_trips_state_and_book_and_feeds_printer_columns() -> None:
    s = state(stage="steps", step_index=1, weight=25)
    book = st.Book(deployed_hash="abc", last_intent_id="i-1")
    doc = st.rollout_status(s, book, 7, None, T)
    assert (doc["phase"], doc["step"], doc["weight"], doc["observedGeneration"]) == (
        "progressing",
        2,
        25,
        7,
    )
    assert st.read_state(json.loads(json.dumps(doc))) == s
    assert st.read_book(doc) == book


def test_invalid_status_keeps_the_rollout_and_lists_every_problem() -> None:
    previous = st.rollout_status(state(), st.Book(), 1, None, T)
    problems = [Problem("spec.steps", "bad"), Problem("spec.analysis", "worse")]
    doc = st.invalid_status(problems, 2, previous, T)
    assert doc["phase"] == "invalid"
    assert [p["path"] for p in doc["problems"]] == ["spec.steps", "spec.analysis"]
    assert st.read_state(doc) == state()
    assert {c["type"]: c["status"] for c in doc["conditions"]}["Stalled"] == "True"


def test_unnotified_events_follow_the_last_one_emitted() -> None:
    history = tuple(Event("Advanced", T + i, i, 5 * i, f"e{i}") for i in range(4))
    book = st.with_notified(st.Book(), history[:2], "uid-1")
    assert book.notified == events.fingerprint("uid-1", history[1])
    assert st.unnotified(history, book.notified, "uid-1") == list(history[2:])
    assert st.unnotified(history, None, "uid-1") == list(history)
    assert st.unnotified(history, "gone", "uid-1") == list(history)  # dropped: emit all again
    # another resource (a re-created canary of the same name) has other fingerprints
    assert st.unnotified(history, book.notified, "uid-2") == list(history)
    # the cursor survives the status round trip (the API server drops an integral float's .0)
    again = st.read_book({"controller": json.loads(json.dumps(book.to_dict()))})
    assert st.unnotified(history, again.notified, "uid-1") == list(history[2:])


def test_a_cursor_written_before_the_one_fingerprint_is_still_followed() -> None:
    history = tuple(Event("Advanced", T + i, i, 5 * i, f"e{i}") for i in range(4))
    legacy = {"type": "Advanced", "time": int(T + 1), "step": 1, "message": "e1"}
    book = st.read_book({"controller": {"notified": legacy}})
    assert st.unnotified(history, book.notified, "uid-1") == list(history[2:])
    assert st.with_notified(book, history, "uid-1").notified == events.fingerprint(
        "uid-1", history[-1]
    )


READY = [{"type": "Ready", "status": "True"}]
ISVC_KIND = {"kind": "InferenceService"}
CANARY_SPEC = {"canary": [{"predictor": {"name": "fp8"}, "trafficPercent": 10}]}


@pytest.mark.parametrize(
    ("obj", "ready"),
    [
        pytest.param({"metadata": {"generation": 2}}, False, id="no-status"),
        pytest.param(
            {
                "kind": "LLMInferenceService",
                "metadata": {"generation": 2},
                "status": {"observedGeneration": 1, "conditions": READY},
            },
            False,
            id="llmisvc-stale-generation",
        ),
        pytest.param(
            {
                "kind": "LLMInferenceService",
                "metadata": {"generation": 2},
                "status": {"observedGeneration": 2, "conditions": READY},
            },
            True,
            id="llmisvc-ready",
        ),
        # KServe v0.20.0 Standard mode: observedGeneration is the predictor Deployment's, which
        # a trafficPercent change leaves at 1 (tests/controller/test_controller_kserve.py)
        pytest.param(
            {
                **ISVC_KIND,
                "metadata": {"generation": 2},
                "spec": CANARY_SPEC,
                "status": {
                    "observedGeneration": 1,
                    "conditions": READY,
                    "canaryStatuses": [{"name": "fp8", "ready": True, "trafficPercent": 10}],
                },
            },
            True,
            id="isvc-deployment-generation",
        ),
        pytest.param(
            {
                **ISVC_KIND,
                "metadata": {"generation": 3},
                "spec": CANARY_SPEC,
                "status": {
                    "observedGeneration": 1,
                    "conditions": READY,
                    "canaryStatuses": [{"name": "fp8", "ready": True, "trafficPercent": 5}],
                },
            },
            False,
            id="isvc-canary-percent-not-reconciled",
        ),
        pytest.param(
            {
                **ISVC_KIND,
                "metadata": {"generation": 2},
                "spec": CANARY_SPEC,
                "status": {
                    "conditions": READY,
                    "canaryStatuses": [{"name": "fp8", "ready": False, "trafficPercent": 10}],
                },
            },
            False,
            id="isvc-canary-not-ready",
        ),
        pytest.param(
            {
                **ISVC_KIND,
                "metadata": {"generation": 2},
                "spec": CANARY_SPEC,
                "status": {"conditions": READY},
            },
            False,
            id="isvc-canary-status-missing",
        ),
    ],
)
def test_is_ready(obj: dict[str, object], ready: bool) -> None:
    assert is_ready(obj) is ready


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="verb")
    cli.add_parser(sub)
    return parser.parse_args(["controller", *argv])


def test_cli_flags_become_settings() -> None:
    args = parse("-n", "a", "-n", "b", "--progress-deadline", "2h", "--interval-override", "10s")
    settings = cli.settings_from(args)
    assert args.namespace == ["a", "b"]
    assert (settings.progress_deadline_s, settings.interval_override_s) == (7200.0, 10.0)


def test_cli_bad_duration_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--progress-deadline"):
        cli.settings_from(parse("--progress-deadline", "soon"))


def test_a_passed_progress_deadline_is_no_wake_time() -> None:
    # The candidate is Ready before the deadline; the first evaluation (2h interval) comes after
    # it. Between the two the controller must sleep until the evaluation, not be woken at the
    # passed deadline on every pass (it re-read the canary in a loop with the clock standing).
    world = World(
        1_800_000_000.0,
        "http://127.0.0.1:9",
        settings=Settings(progress_deadline_s=1800),
        ready_after_s=600,
    )
    world.create(world_canary("good", "http://127.0.0.1:9"))
    world.pass_once()
    world.clock.t += 700
    world.pass_once()  # Ready
    world.clock.t += 1200  # the deadline has passed; the state is still pending
    wake = world.pass_once()
    assert world.state("good").stage == "pending"
    assert wake is not None
    assert wake > world.clock.t
