"""What the analysis tells the state machine: one result per due check, plus spend.

Owns the seam between :mod:`controlplane.analysis` (which produces observations by querying a
metric provider) and :mod:`controlplane.rollout.machine` (which consumes them). Pure data.

A check is identified by a stable *key* naming where it sits in the spec:
``steps[0].rollbackOn[1]``, ``shadow.promoteOn``, ``shadow.rollbackOn[0]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from controlplane.spec.models import CheckSpec

Verdict = Literal["pass", "breach", "inconclusive"]


@dataclass(frozen=True)
class DueCheck:
    """A check the machine wants evaluated now: where it is (``key``) and what it says."""

    key: str
    check: CheckSpec


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check at one evaluation.

    ``value`` is what was compared with the thresholds: the candidate's value, or the relative
    drift ``candidate / stable - 1`` for ``compare: baseline``. ``candidate`` / ``stable`` are the
    raw per-variant values when known. ``provider_error`` is True when the result is inconclusive
    because the metric source failed (this, and only this, counts towards ``errorLimit``).
    ``decided`` is set by a sequential judge that reached a conclusion early: ``"pass"`` lets a
    step finish before its duration, ``"breach"`` rolls back.
    """

    key: str
    metric: str
    verdict: Verdict
    value: float | None = None
    candidate: float | None = None
    stable: float | None = None
    samples: float | None = None
    provider_error: bool = False
    message: str = ""
    decided: Literal["pass", "breach"] | None = None


@dataclass(frozen=True)
class Observations:
    """Everything measured at one evaluation time.

    ``spend`` is the candidate's spend over the last day in USD (None: unknown or no budget).
    ``candidate_ready`` is False while the candidate's serving objects are not ready.
    ``spend_error`` is True when the cost query failed (treated like a provider error).
    """

    checks: dict[str, CheckResult] = field(default_factory=dict)
    spend: float | None = None
    spend_error: bool = False
    candidate_ready: bool = True
