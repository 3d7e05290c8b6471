"""The in-memory router: weights in a dict, for tests, ``canaryctl simulate`` and the local stack.

Implements :class:`controlplane.routing.base.Router` faithfully (validation as a real router,
``verify``) and records every change in ``history``; the local stack's proxy reads its weights.
"""

from __future__ import annotations

from controlplane.errors import RouterError
from controlplane.routing._common import target_weights
from controlplane.routing.base import Outcome, Weights, check_request, verify_weights
from controlplane.spec.models import ModelCanary

ROUTER = "memory"


def _key(canary: ModelCanary) -> tuple[str, str]:
    return (canary.metadata.namespace, canary.metadata.name)


class MemoryRouter:
    """A router that only remembers. ``check_capabilities=False`` lets it mirror for any spec."""

    name = ROUTER

    def __init__(self, *, check_capabilities: bool = True) -> None:
        self.weights: dict[tuple[str, str], Weights] = {}
        self.history: list[tuple[tuple[str, str], Weights | Outcome]] = []
        self.check_capabilities = check_capabilities

    def set_weights(self, canary: ModelCanary, candidate_weight: int, mirror: bool) -> None:
        weights = Weights(candidate_weight, mirror)
        if self.check_capabilities:
            check_request(canary, weights)
        self.weights[_key(canary)] = weights
        self.history.append((_key(canary), weights))

    def get_weights(self, canary: ModelCanary) -> Weights:
        try:
            return self.weights[_key(canary)]
        except KeyError:
            ns, name = _key(canary)
            raise RouterError(f"{ROUTER}: no weights were set for {ns}/{name}") from None

    def verify(self, canary: ModelCanary, expected: Weights) -> None:
        verify_weights(ROUTER, self.get_weights(canary), expected)

    def finalize(self, canary: ModelCanary, outcome: Outcome) -> None:
        self.weights[_key(canary)] = target_weights(0, False, outcome)
        self.history.append((_key(canary), outcome))
