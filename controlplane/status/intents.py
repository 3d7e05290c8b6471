"""User intents recorded on a ModelCanary: the annotation the CLI writes and the controller reads.

Owns the annotation's name and format (one intent as a JSON object, or several as a list, each
with an ``id``), :func:`read_intents` (a malformed entry is reported, never raised) and
:func:`new_intents` (the intents after the one consumed last, so each is consumed exactly once).
:mod:`controlplane.status.document` re-exports them for the controller; ``kubectl canary``'s
views and :mod:`controlplane.operations` import them from here, without the rollout state and
pydantic. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controlplane.errors import SpecError
from controlplane.rollout.intents import Intent
from controlplane.spec.constants import API_GROUP

INTENT_ANNOTATION = f"{API_GROUP}/intent"
"""Annotation holding one intent (JSON object) or several (JSON list), each ``{"id": "...",
"verb": "pause|resume|promote|promote-full|abort|retry", "at": unix seconds, "user": ""}``."""


@dataclass(frozen=True)
class RecordedIntent:
    id: str
    intent: Intent


def read_intents(annotations: Mapping[str, str] | None) -> tuple[list[RecordedIntent], str]:
    """The intents recorded on the resource, in order, and a problem message ("" when none).

    A malformed annotation is reported, never raised: the rollout goes on without it.
    """
    raw = (annotations or {}).get(INTENT_ANNOTATION)
    if raw is None:
        return [], ""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return [], f"annotation {INTENT_ANNOTATION} is not JSON: {exc}"
    items = data if isinstance(data, list) else [data]
    found: list[RecordedIntent] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        path = f"{INTENT_ANNOTATION}[{index}]"
        try:
            intent = Intent.from_dict(item, path)
        except SpecError as exc:
            problems.append(str(exc))
            continue
        given = item.get("id") if isinstance(item, dict) else None
        ident = given if isinstance(given, str) and given else f"{intent.verb}@{intent.at!r}"
        found.append(RecordedIntent(ident, intent))
    return found, "; ".join(problems)


def new_intents(recorded: Sequence[RecordedIntent], last_id: str | None) -> list[RecordedIntent]:
    """The recorded intents after the one consumed last (all when it is gone or None)."""
    if last_id is None:
        return list(recorded)
    for index, item in enumerate(recorded):
        if item.id == last_id:
            return list(recorded[index + 1 :])
    return list(recorded)
