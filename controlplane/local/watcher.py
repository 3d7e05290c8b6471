"""What a local run tells whoever watches it, and the verbs it takes from them.

Owns :class:`RunSnapshot`, the :class:`RunWatcher` protocol (told every changed state, asked each
tick for the intents recorded since, which reach the machine as the controller's do) and
:class:`NoWatcher`. Pure data; implemented for ``canaryctl up --dashboard``.
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
