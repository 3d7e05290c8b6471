"""What a spec's omitted fields mean, by the defaults a rollout began under.

Owns :data:`DEFAULTS` (the defaults this controller starts a rollout under, kept in the
rollout's ``status.defaults``) and :func:`as_begun` (a canary read as the defaults its rollout
began under). A controller with new defaults, started on canaries whose rollouts began under
older ones, keeps their behaviour until their spec changes and a new rollout begins.

- 1 (no ``status.defaults``): without ``spec.capacity`` both variants ran their fixed
  ``replicas`` at every step.
- 2: without ``spec.capacity`` the capacity plan sizes each variant to its share where the
  router lets the controller size replicas (:attr:`~controlplane.spec.models.ModelCanarySpec.plan`).

Pure; called by the reconciler when it reads a canary with its rollout state, and by
:func:`controlplane.rollout.schedule.initial_state`.
"""

from __future__ import annotations

from controlplane.spec.models import CapacitySpec, ModelCanary

DEFAULTS = 2
"""The defaults a rollout this controller starts begins under."""

_FIXED = CapacitySpec(mode="fixed")


def as_begun(canary: ModelCanary, defaults: int | None) -> ModelCanary:
    """``canary`` as the defaults its rollout began under (``None``: before they were kept,
    the first ones) read it: under the first, no ``spec.capacity`` is fixed replicas."""
    if (defaults or 1) >= 2 or canary.spec.capacity is not None:
        return canary
    spec = canary.spec.model_copy(update={"capacity": _FIXED})
    return canary.model_copy(update={"spec": spec})
