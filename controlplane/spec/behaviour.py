"""The methods of the spec's objects, apart from their shape: one body for both kinds of object.

Owns the few methods and properties the rules, the controller and the renderers call on a
canary (:meth:`CanaryMethods.metric`, :meth:`SpecMethods.variant`,
:meth:`SpecMethods.candidate_is_stable`, :attr:`MetricMethods.quantile_or_default`, ...). The
pydantic models of :mod:`controlplane.spec.models` inherit these mixins, and so do the light
objects of :mod:`controlplane.spec.fast_models` (generated from those models by
:mod:`controlplane.spec.fastgen`), so ``canaryctl validate``'s fast path runs the same code on
its objects. Pure; imports no pydantic (issue 41: ``validate FILE`` starts without it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controlplane.spec.constants import DEFAULT_QUANTILE

if TYPE_CHECKING:
    from controlplane.spec.models import (
        MetricSpec,
        ModelCanary,
        ModelCanarySpec,
        VariantSpec,
    )


class MetricMethods:
    """The methods of ``MetricSpec``."""

    __slots__ = ()

    @property
    def quantile_or_default(self: MetricSpec) -> float:
        """The quantile a latency built-in reads: ``quantile``, else :data:`DEFAULT_QUANTILE`."""
        return DEFAULT_QUANTILE if self.quantile is None else self.quantile


class SpecMethods:
    """The methods of ``ModelCanarySpec``."""

    __slots__ = ()

    def variant(self: ModelCanarySpec, role: str) -> VariantSpec:
        """The variant of ``role``, ``"stable"`` or ``"candidate"`` (ValueError for another)."""
        if role == "stable":
            return self.stable
        if role == "candidate":
            return self.candidate
        raise ValueError(f"no variant role {role!r}: stable or candidate")

    def candidate_is_stable(self: ModelCanarySpec) -> bool:
        """True when the candidate equals the stable variant in every field but ``name``: there
        is nothing to roll out (a no-op rollout, e.g. after a git revert of a failed candidate).
        An adopted stable not yet resolved (:attr:`adopted`, no ``storageUri``) is never equal."""
        if self.adopted and not self.stable.storage_uri:
            return False
        exclude = {"name", "target_ref"}
        return self.candidate.model_dump(exclude=exclude) == self.stable.model_dump(exclude=exclude)

    @property
    def adopted(self: ModelCanarySpec) -> bool:
        """The stable is a live InferenceService the canary adopted (``stable.targetRef``)."""
        return self.stable.target_ref is not None


class CanaryMethods:
    """The methods of ``ModelCanary``."""

    __slots__ = ()

    def resolved_from(self: ModelCanary) -> Any:
        """What :func:`controlplane.serving.adopt.resolve` made this copy with, or None."""
        return self._resolved

    def metric(self: ModelCanary, name: str) -> MetricSpec | None:
        """The metric called ``name``, or None."""
        return next((m for m in self.spec.analysis.metrics if m.name == name), None)
