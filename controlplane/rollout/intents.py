"""User intents on a ModelCanary: what one is, how it is recorded, which a phase allows.

Owns :class:`Intent`, the annotation ``canary.controlplane.dev/intent`` (a JSON list of
``{"id", "verb", "at", "user"}``: :func:`read_intents`, :func:`append`, :func:`encode`), what is
pending (the intents after ``status.controller.lastIntentId``, each consumed once) and
:func:`check_verb` (the verbs a canary's phase refuses). :mod:`controlplane.operations` writes
intents, the controller and the views read them, :mod:`~controlplane.rollout.intent_rules` says
what each does to a rollout. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from controlplane.errors import Problem, SpecError, UsageError
from controlplane.spec.constants import API_GROUP

IntentVerb = Literal["pause", "resume", "promote", "promote-full", "abort", "retry"]
INTENT_VERBS: tuple[str, ...] = get_args(IntentVerb)
INTENT_ANNOTATION = f"{API_GROUP}/intent"
VERBS: dict[str, str] = {
    "promote": "finish the current step (or the shadow phase) now",
    "abort": "roll back now: weight 0, outcome rolled_back",
    "pause": "stop the rollout where it is (weights and the step clock stay)",
    "resume": "go on after a pause (paused time does not count towards the step)",
    "retry": "run a rolled-back candidate again from the start",
}
"""What each verb a person gives does, as ``kubectl canary`` and the HTTP API say it."""
FULL = "skip the remaining steps, approvals and gates: go to 100%"
"""What ``promote --full`` (``promote-full``) does beyond ``promote``."""
MAX_RECORDED = 20
"""Intents kept in the annotation; the oldest (long consumed) are dropped when one is added."""


@dataclass(frozen=True)
class Intent:
    """``verb`` requested at ``at`` (unix seconds, unique per intent) by ``user`` (informative)."""

    verb: IntentVerb
    at: float
    user: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"verb": self.verb, "at": self.at, "user": self.user}

    @classmethod
    def from_dict(cls, data: Any, path: str = "intent") -> Intent:
        """Read an intent written by :meth:`to_dict`; a :class:`SpecError` names what is wrong."""
        if not isinstance(data, dict):
            raise SpecError([Problem(path, "expected an object with verb and at")])
        verb, at, user = data.get("verb"), data.get("at"), data.get("user", "")
        problems = []
        if verb not in INTENT_VERBS:
            problems.append(Problem(f"{path}.verb", f"expected one of {', '.join(INTENT_VERBS)}"))
        if isinstance(at, bool) or not isinstance(at, int | float):
            problems.append(Problem(f"{path}.at", "expected unix seconds"))
        if not isinstance(user, str):
            problems.append(Problem(f"{path}.user", "expected a string"))
        if problems:
            raise SpecError(problems)
        return cls(verb=verb, at=float(at), user=user)  # type: ignore[arg-type]


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


def _recorded_and_last(obj: Mapping[str, Any]) -> tuple[list[RecordedIntent], str | None]:
    """The intents on the canary ``obj`` and the id the controller consumed last (its book,
    ``status.controller``, holds it)."""
    recorded, _problem = read_intents(obj["metadata"].get("annotations"))
    return recorded, ((obj.get("status") or {}).get("controller") or {}).get("lastIntentId")


def pending(obj: Mapping[str, Any]) -> list[RecordedIntent]:
    """The intents on the canary ``obj`` the controller has not consumed yet, oldest first."""
    return new_intents(*_recorded_and_last(obj))


def consumed(obj: Mapping[str, Any], intent_id: str) -> bool:
    """Whether the controller has acted on the intent ``intent_id``."""
    recorded, last = _recorded_and_last(obj)
    ids = [r.id for r in recorded]
    if last is None or intent_id not in ids:
        return False
    return last in ids and ids.index(last) >= ids.index(intent_id)


def append(
    recorded: Sequence[RecordedIntent], verb: str, user: str, now: float, ident: str
) -> tuple[list[RecordedIntent], RecordedIntent]:
    """The intents to keep with ``verb`` by ``user`` added (at most :data:`MAX_RECORDED`), and
    the one added: at ``now``, or just after the latest recorded (``at`` orders intents)."""
    at = max([now, *(r.intent.at + 1e-3 for r in recorded)])
    entry = RecordedIntent(ident, Intent(verb=verb, at=at, user=user))  # type: ignore[arg-type]
    return [*recorded[-(MAX_RECORDED - 1) :], entry], entry


def encode(recorded: Sequence[RecordedIntent]) -> str:
    """The annotation's value holding ``recorded``."""
    entries = [{"id": r.id, **r.intent.to_dict()} for r in recorded]
    return json.dumps(entries, separators=(",", ":"))


def check_verb(obj: Mapping[str, Any], verb: str) -> None:
    """Refuse a verb that cannot mean anything in the canary's current state, saying what to do.

    ``kubectl canary``, the HTTP API and ``canaryctl up`` refuse the same cases, before anything
    is written.
    """
    if verb not in INTENT_VERBS:
        raise UsageError(f"unknown verb {verb!r}; expected one of {', '.join(INTENT_VERBS)}")
    name = obj["metadata"]["name"]
    ns = obj["metadata"].get("namespace") or "default"
    status = obj.get("status") or {}
    phase = str(status.get("phase") or "")
    waiting = [r.intent.verb for r in pending(obj)]
    if phase == "invalid":
        raise UsageError(
            f"modelcanary {name!r} has an invalid spec: the controller acts on nothing until it "
            f"is fixed (see: kubectl canary get {name} -n {ns})"
        )
    if verb == "retry":
        if phase and phase != "rolled_back":
            raise UsageError(
                f"modelcanary {name!r} is {phase}, not rolled back: retry only re-runs a "
                "rolled-back candidate"
            )
        return
    if phase in ("promoted", "rolled_back"):
        hint = "change the spec to start a new rollout"
        if phase == "rolled_back":
            hint += f", or run: kubectl canary retry {name} -n {ns}"
        raise UsageError(f"modelcanary {name!r} is already {phase}; {hint}")
    if verb == "resume" and phase != "paused" and "pause" not in waiting:
        raise UsageError(
            f"modelcanary {name!r} is {phase or 'not started'}, not paused: nothing to resume"
        )
    if verb == "pause" and status.get("paused") == "user" and waiting[-1:] != ["resume"]:
        raise UsageError(
            f"modelcanary {name!r} is already paused; "
            f"resume it with: kubectl canary resume {name} -n {ns}"
        )
    if verb in ("promote", "promote-full") and status.get("stage") not in ("shadow", "steps"):
        raise UsageError(
            f"modelcanary {name!r} has not started yet ({phase or 'not picked up'}): promote "
            "acts on the shadow phase or a step; "
            f"wait with: kubectl canary status {name} -n {ns} -w"
        )
