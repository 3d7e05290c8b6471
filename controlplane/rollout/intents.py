"""User verbs recorded on the resource, for the state machine to act on.

Owns :class:`Intent`. ``canaryctl pause|resume|promote [--full]|abort|retry`` records an intent
on the ModelCanary and returns; the controller passes the recorded intents to
:func:`controlplane.rollout.machine.step`, which applies each intent once: intents are applied
in order of ``at`` and only when ``at`` is later than ``RolloutState.last_intent_at``, so passing
the same intents again is harmless. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from controlplane.errors import Problem, SpecError

IntentVerb = Literal["pause", "resume", "promote", "promote-full", "abort", "retry"]
INTENT_VERBS: tuple[str, ...] = get_args(IntentVerb)


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
