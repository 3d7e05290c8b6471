"""What the state machine asks the world to do: a closed union of small, frozen records.

Owns the vocabulary between :func:`controlplane.rollout.machine.step` and the shells that execute
it (the controller, ``canaryctl simulate``, the local stack). Actions are edges, returned once;
the level they lead to is kept in the state, so a shell that crashed before executing them
re-applies the weights from the state. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.rollout.state import Event, Reason


@dataclass(frozen=True)
class SetWeights:
    """Route ``candidate_weight`` % of user traffic to the candidate (the rest to stable) and
    mirror a copy of all traffic to it when ``mirror`` is True (shadow)."""

    candidate_weight: int
    mirror: bool = False


@dataclass(frozen=True)
class Deploy:
    """Create or update the serving objects of the spec's variant called ``variant``."""

    variant: str


@dataclass(frozen=True)
class Promote:
    """The candidate becomes the stable variant (all traffic to it, stable retired)."""


@dataclass(frozen=True)
class Rollback:
    """The candidate failed: traffic is already at 0; release the candidate, report ``reason``."""

    reason: Reason


@dataclass(frozen=True)
class Notify:
    """Tell the alert channels and the event log about ``event``."""

    event: Event


@dataclass(frozen=True)
class Pause:
    """The rollout paused (user request or provider errors); surface ``reason``."""

    reason: Reason


@dataclass(frozen=True)
class RunGate:
    """Submit the Argo Workflow ``workflow`` in ``namespace`` for the gate run ``key`` (its
    template and parameters: :func:`controlplane.rollout.gate_runs.pending_runs`) and report its
    phase as :class:`~controlplane.rollout.observations.GateObservation` until it finishes."""

    key: str
    gate: str
    workflow: str
    namespace: str


Action = SetWeights | Deploy | Promote | Rollback | Notify | Pause | RunGate
