"""What a local run tells whoever watches it, and the verbs it takes from them.

Owns :class:`RunSnapshot` (the rollout state of ``canaryctl up`` with the replicas and the
weights on its router, at one moment) and :class:`RunWatcher`, the protocol of whoever follows
a run and may steer it (``canaryctl up --dashboard``:
:class:`~controlplane.api.local_source.LocalSource`): the loop of
:meth:`controlplane.local.loop.LocalLoop.run` tells it every state that differs from
the last one and, every tick, asks it for the user intents recorded since
(:class:`~controlplane.rollout.intents.Intent`), which it hands to the state machine exactly as
the controller hands it the intents of the annotation. :class:`NoWatcher` is the run nobody
watches. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from controlplane.rollout.intents import Intent
from controlplane.rollout.state import RolloutState


@dataclass(frozen=True)
class Pod:
    """One replica of the run: the variant it serves (``stable`` / ``candidate``), its name,
    whether the router sends it requests."""

    role: str
    name: str
    in_service: bool


@dataclass(frozen=True)
class RunSnapshot:
    """The run at one moment: the rollout state, the replicas, the weights on the router."""

    state: RolloutState
    pods: tuple[Pod, ...] = ()
    candidate_weight: int = 0
    mirror: bool = False


class RunWatcher(Protocol):
    def on_state(self, snapshot: RunSnapshot) -> None:
        """The run is now ``snapshot`` (called on the run's event loop; must not block)."""
        ...

    def take_intents(self) -> list[Intent]:
        """The intents recorded since the last call, oldest first (each handed over once)."""
        ...

    def finished(self, outcome: str) -> None:
        """The run is over (``promoted``, ``rolled_back``, ``interrupted``, ``paused``...)."""
        ...


class NoWatcher:
    """Nobody watches: nothing told, no intents."""

    def on_state(self, snapshot: RunSnapshot) -> None:
        return None

    def take_intents(self) -> list[Intent]:
        return []

    def finished(self, outcome: str) -> None:
        return None
