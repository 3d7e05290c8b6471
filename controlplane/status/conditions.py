"""kstatus-compatible conditions of a ModelCanary: ``Ready``, ``Reconciling``, ``Stalled``.

Owns the mapping from where a rollout is to the conditions kstatus readers (kubectl wait, Flux,
Argo CD) use, plus ``CapacityReady`` with ``spec.capacity``; ``lastTransitionTime`` moves only on
a change. Pure. See docs/gitops.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from controlplane.status.times import format_time

CondStatus = Literal["True", "False", "Unknown"]
TYPES: tuple[str, str, str] = ("Ready", "Reconciling", "Stalled")


@dataclass(frozen=True)
class Condition:
    type: str
    status: CondStatus
    reason: str
    message: str = ""


def for_phase(phase: str, message: str = "", paused: str | None = None) -> list[Condition]:
    """The three conditions for a rollout ``phase`` (``invalid`` for a spec that does not
    validate; ``paused`` with ``paused`` = ``user`` | ``errors``)."""
    if phase == "promoted":
        return [
            Condition("Ready", "True", "Promoted", message),
            Condition("Reconciling", "False", "Promoted"),
            Condition("Stalled", "False", "Promoted"),
        ]
    if phase in ("rolled_back", "invalid"):
        reason = "RolledBack" if phase == "rolled_back" else "InvalidSpec"
        return [
            Condition("Ready", "False", reason, message),
            Condition("Reconciling", "False", reason),
            Condition("Stalled", "True", reason, message),
        ]
    if phase == "paused":
        if paused == "errors":
            return [
                Condition("Ready", "False", "ProviderErrors", message),
                Condition("Reconciling", "False", "ProviderErrors"),
                Condition("Stalled", "True", "ProviderErrors", message),
            ]
        return [
            Condition("Ready", "False", "Paused", message),
            Condition("Reconciling", "False", "Paused", message),
            Condition("Stalled", "False", "Paused"),
        ]
    reason = "".join(part.capitalize() for part in phase.split("_")) or "Progressing"
    return [
        Condition("Ready", "False", reason, message),
        Condition("Reconciling", "True", reason, message),
        Condition("Stalled", "False", reason),
    ]


def capacity(waiting: str | None) -> Condition:
    """``CapacityReady`` of a canary with ``spec.capacity`` (beside the three kstatus reads):
    False with reason ``WaitingForCapacity`` and why while the weights wait for a variant's
    planned replicas, else True."""
    if waiting is not None:
        return Condition("CapacityReady", "False", "WaitingForCapacity", waiting)
    return Condition("CapacityReady", "True", "PlannedReplicasReady")


def render(
    wanted: Sequence[Condition],
    previous: Sequence[Mapping[str, Any]] | None,
    generation: int | None,
    now: float,
) -> list[dict[str, Any]]:
    """The ``status.conditions`` list: ``wanted`` with ``lastTransitionTime`` carried over from
    ``previous`` when a condition's status did not change."""
    before = {c.get("type"): c for c in previous or [] if isinstance(c, Mapping)}
    out: list[dict[str, Any]] = []
    for cond in wanted:
        old = before.get(cond.type)
        stamp = format_time(now)
        if old is not None and old.get("status") == cond.status and old.get("lastTransitionTime"):
            stamp = str(old["lastTransitionTime"])
        item: dict[str, Any] = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": stamp,
        }
        if generation is not None:
            item["observedGeneration"] = generation
        out.append(item)
    return out
