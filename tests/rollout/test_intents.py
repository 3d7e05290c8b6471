"""The intent model: an intent's round trip, the annotation read, what is pending and added."""

from __future__ import annotations

import json

import pytest

from controlplane.errors import SpecError
from controlplane.rollout.intents import (
    INTENT_ANNOTATION,
    MAX_RECORDED,
    Intent,
    RecordedIntent,
    append,
    encode,
    new_intents,
    read_intents,
)


def test_intent_round_trip_and_errors() -> None:
    intent = Intent("promote-full", 1_790_000_001.25, "ana")
    assert Intent.from_dict(intent.to_dict()) == intent
    with pytest.raises(SpecError) as caught:
        Intent.from_dict({"verb": "explode", "at": "soon"}, "metadata.annotations.intent")
    assert [p.path for p in caught.value.problems] == [
        "metadata.annotations.intent.verb",
        "metadata.annotations.intent.at",
    ]
    with pytest.raises(SpecError):
        Intent.from_dict(["pause"])


@pytest.mark.parametrize(
    ("annotation", "last", "verbs", "problem"),
    [
        pytest.param(None, None, [], False, id="none"),
        pytest.param('{"id": "a", "verb": "pause", "at": 1}', None, ["pause"], False, id="one"),
        pytest.param('{"id": "a", "verb": "pause", "at": 1}', "a", [], False, id="consumed"),
        pytest.param(
            '[{"id": "a", "verb": "pause", "at": 1}, {"id": "b", "verb": "resume", "at": 2}]',
            "a",
            ["resume"],
            False,
            id="list-after-consumed",
        ),
        pytest.param('{"verb": "retry", "at": 5}', None, ["retry"], False, id="id-defaults"),
        pytest.param('{"verb": "explode", "at": 5}', None, [], True, id="bad-verb"),
        pytest.param("{not json", None, [], True, id="not-json"),
    ],
)
def test_intents_are_read_and_consumed_once(
    annotation: str | None, last: str | None, verbs: list[str], problem: bool
) -> None:
    annotations = {} if annotation is None else {INTENT_ANNOTATION: annotation}
    recorded, message = read_intents(annotations)
    assert bool(message) == problem
    assert [r.intent.verb for r in new_intents(recorded, last)] == verbs


def test_append_orders_bounds_and_encodes() -> None:
    recorded = [RecordedIntent(f"i{n}", Intent("pause", 100.0 + n)) for n in range(MAX_RECORDED)]
    kept, added = append(recorded, "resume", "ana", 50.0, "new")
    assert added == RecordedIntent("new", Intent("resume", 100.0 + MAX_RECORDED - 1 + 1e-3, "ana"))
    assert [r.id for r in kept] == [*(f"i{n}" for n in range(1, MAX_RECORDED)), "new"]
    again, _ = read_intents({INTENT_ANNOTATION: encode(kept)})
    assert again == kept
    assert json.loads(encode(kept[-1:])) == [{"id": "new", **added.intent.to_dict()}]
