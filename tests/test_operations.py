"""Recording user intents on a ModelCanary (shared by plugin and API) on the fake cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.canaries import canary_dict

from controlplane.errors import Conflict, NotFound, UsageError
from controlplane.kube.client import Obj, Ref
from controlplane.operations import get_canary, list_canaries, record_intent
from controlplane.rollout.intents import (
    INTENT_ANNOTATION,
    MAX_RECORDED,
    consumed,
    new_intents,
    read_intents,
)
from harness.kube.fake import FakeKube

NS = "ml-serving"


def _cluster(phase: str | None = "progressing") -> tuple[FakeKube, Obj]:
    kube = FakeKube()
    stored = kube.create(canary_dict("support-triage", NS))
    if phase is not None:
        stored["status"] = {"phase": phase}
        stored = kube.replace_status(stored)
    return kube, stored


def test_record_appends_and_the_controller_reads_it_back() -> None:
    kube, _ = _cluster()
    first = record_intent(kube, NS, "support-triage", "pause", "alice", clock=lambda: 100.0)
    second = record_intent(kube, NS, "support-triage", "resume", "bob", clock=lambda: 100.0)
    obj = get_canary(kube, NS, "support-triage")
    recorded, problem = read_intents(obj["metadata"]["annotations"])
    assert problem == ""
    assert [(r.id, r.intent.verb, r.intent.user) for r in recorded] == [
        (first.id, "pause", "alice"),
        (second.id, "resume", "bob"),
    ]
    assert second.intent.at > first.intent.at  # same clock reading still orders them
    assert [r.id for r in new_intents(recorded, first.id)] == [second.id]


def test_intent_consumed_follows_last_intent_id() -> None:
    kube, _ = _cluster()
    one = record_intent(kube, NS, "support-triage", "pause")
    two = record_intent(kube, NS, "support-triage", "resume")
    obj = get_canary(kube, NS, "support-triage")
    assert not consumed(obj, one.id)
    obj["status"] = {"phase": "paused", "controller": {"lastIntentId": one.id}}
    obj = kube.replace_status(obj)
    assert consumed(obj, one.id)
    assert not consumed(obj, two.id)


def test_old_intents_are_dropped_beyond_the_limit() -> None:
    kube, _ = _cluster()
    for _ in range(MAX_RECORDED + 5):
        record_intent(kube, NS, "support-triage", "pause")
    raw = get_canary(kube, NS, "support-triage")["metadata"]["annotations"][INTENT_ANNOTATION]
    assert len(json.loads(raw)) == MAX_RECORDED


def test_a_conflicting_writer_is_retried_not_lost() -> None:
    kube, _ = _cluster()
    real_patch = kube.patch
    raced: list[bool] = []

    def racing_patch(ref: Ref, patch: Any, *, kind: Any = "merge") -> Obj:
        if not raced:  # someone else writes between our read and our write, once
            raced.append(True)
            current = get_canary(kube, NS, "support-triage")
            current["metadata"].setdefault("labels", {})["touched"] = "yes"
            kube.replace(current)
        return real_patch(ref, patch, kind=kind)

    kube.patch = racing_patch  # type: ignore[method-assign]
    record_intent(kube, NS, "support-triage", "abort")
    assert raced == [True]  # the first patch met the other writer's version: 409, read again
    obj = get_canary(kube, NS, "support-triage")
    assert obj["metadata"]["labels"]["touched"] == "yes"
    recorded, _ = read_intents(obj["metadata"]["annotations"])
    assert [r.intent.verb for r in recorded] == ["abort"]


def test_an_intent_is_recorded_with_patch_alone() -> None:
    """A tenant may ``patch`` its canaries (docs/security.md), not ``update`` them: recording
    an intent replaces nothing."""
    kube, _ = _cluster()

    def no_update(obj: Obj) -> Obj:
        raise AssertionError("record_intent must not replace the canary")

    kube.replace = no_update  # type: ignore[method-assign]
    record_intent(kube, NS, "support-triage", "pause")
    recorded, _ = read_intents(get_canary(kube, NS, "support-triage")["metadata"]["annotations"])
    assert [r.intent.verb for r in recorded] == ["pause"]


def test_conflicts_forever_give_a_usage_error() -> None:
    kube, _ = _cluster()

    def always_conflict(ref: Ref, patch: Any, *, kind: Any = "merge") -> Obj:
        raise Conflict("resourceVersion changed")

    kube.patch = always_conflict  # type: ignore[method-assign]
    with pytest.raises(UsageError, match="kept changing"):
        record_intent(kube, NS, "support-triage", "pause")


@pytest.mark.parametrize(
    ("phase", "verb", "message"),
    [
        ("promoted", "pause", "already promoted"),
        ("rolled_back", "promote", "kubectl canary retry support-triage -n ml-serving"),
        ("progressing", "retry", "not rolled back"),
        ("progressing", "dance", "unknown verb"),
        ("progressing", "resume", "not paused: nothing to resume"),
        ("pending", "promote", "has not started yet"),
        ("invalid", "abort", "invalid spec"),
    ],
)
def test_verbs_that_make_no_sense_are_refused_and_change_nothing(
    phase: str, verb: str, message: str
) -> None:
    kube, before = _cluster(phase)
    with pytest.raises(UsageError, match=message):
        record_intent(kube, NS, "support-triage", verb)
    after = get_canary(kube, NS, "support-triage")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_retry_after_rollback_is_recorded() -> None:
    kube, _ = _cluster("rolled_back")
    assert record_intent(kube, NS, "support-triage", "retry").intent.verb == "retry"


def test_missing_canary_says_where_it_looked() -> None:
    kube = FakeKube()
    with pytest.raises(NotFound, match=r"'nope' not found in namespace 'ml-serving'.*canary list"):
        record_intent(kube, NS, "nope", "pause")


def test_list_is_sorted_and_namespaced() -> None:
    kube, _ = _cluster()
    kube.create(canary_dict("another", "team-b"))
    names = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in list_canaries(kube, None)]
    assert names == [(NS, "support-triage"), ("team-b", "another")]
    assert [o["metadata"]["name"] for o in list_canaries(kube, "team-b")] == ["another"]


def test_pause_twice_is_refused_but_pause_after_a_pending_resume_is_not() -> None:
    kube, obj = _cluster("paused")
    obj["status"] = {"phase": "paused", "paused": "user", "stage": "steps"}
    kube.replace_status(obj)
    with pytest.raises(UsageError, match="already paused"):
        record_intent(kube, NS, "support-triage", "pause")
    record_intent(kube, NS, "support-triage", "resume")
    assert record_intent(kube, NS, "support-triage", "pause").intent.verb == "pause"
