"""Judging one check at one evaluation: value + check -> pass | breach | inconclusive.

Owns the threshold semantics of a check (``above`` / ``below``, ``compare: baseline``,
``minSamples``, missing is inconclusive); ``for`` spans evaluations and belongs to the state
machine. Pure; called by :mod:`controlplane.analysis.evaluator`. See docs/thresholds.md.
"""

from __future__ import annotations

import math

from controlplane.rollout.observations import CheckResult, Verdict
from controlplane.spec.models import DEFAULT_MIN_SAMPLES, CheckSpec, MetricSpec
from controlplane.spec.units import Quantity, Unit, display_value


def min_samples_for(metric: MetricSpec, check: CheckSpec) -> int | None:
    """The effective ``minSamples``: the check's, else 100 for built-ins; None for custom."""
    if metric.builtin is None:
        return None
    return DEFAULT_MIN_SAMPLES if check.min_samples is None else check.min_samples


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _unit(check: CheckSpec) -> Unit:
    threshold = check.above or check.below
    if check.compare == "baseline":
        return Unit.RATIO
    return threshold.unit if threshold is not None else Unit.NUMBER


def _bounds(above: Quantity | None, below: Quantity | None) -> str:
    if above is not None and below is not None:
        return f"within [{below}, {above}]"
    if above is not None:
        return f"<= {above}"
    return f">= {below}"


def judge(
    key: str,
    check: CheckSpec,
    *,
    candidate: float | None,
    stable: float | None = None,
    samples: float | None = None,
    min_samples: int | None = None,
    looked_for: str | None = None,
) -> CheckResult:
    """Judge ``check`` on the candidate's value (and the stable one for ``compare: baseline``).

    For an absolute check ``stable`` is only carried into the result (for display).
    ``looked_for``: what the candidate's query looked for
    (:func:`controlplane.promql.queries.looked_for`), said when it found nothing.

    ``samples`` is the candidate's request count within the window; it is compared with
    ``min_samples`` (see :func:`min_samples_for`; None disables the rule).
    """
    name = check.metric

    def inconclusive(why: str, value: float | None = None) -> CheckResult:
        return CheckResult(
            key=key,
            metric=name,
            verdict="inconclusive",
            value=value,
            candidate=candidate,
            stable=stable,
            samples=samples,
            message=f"{name}: {why}",
        )

    if candidate is None:
        return inconclusive(f"no data: {looked_for}" if looked_for else "no data")
    if not math.isfinite(candidate):
        return inconclusive(f"value is {candidate} (no usable data)")
    if min_samples is not None and min_samples > 0:
        if not _finite(samples):
            return inconclusive(
                f"too few samples: request count unknown (minSamples {min_samples})"
            )
        assert samples is not None
        if samples < min_samples:
            return inconclusive(
                f"too few samples: {samples:.0f} of minSamples {min_samples} requests in the window"
            )

    unit = _unit(check)
    label = name
    if check.compare == "baseline":
        if stable is None:
            return inconclusive("no data for the stable variant")
        if not math.isfinite(stable):
            return inconclusive(f"stable value is {stable} (no usable data)")
        if stable == 0:
            return inconclusive("stable value is 0: relative drift is undefined")
        value = candidate / stable - 1.0
        label = f"{name} drift"
        detail = f" (candidate {candidate:.4g} vs stable {stable:.4g})"
    else:
        value = candidate
        detail = ""

    shown = display_value(value, unit)
    verdict: Verdict
    if check.above is not None and value > check.above.value:
        verdict, message = "breach", f"{label} {shown} > {check.above}{detail}"
    elif check.below is not None and value < check.below.value:
        verdict, message = "breach", f"{label} {shown} < {check.below}{detail}"
    else:
        verdict, message = "pass", f"{label} {shown} {_bounds(check.above, check.below)}{detail}"
    return CheckResult(
        key=key,
        metric=name,
        verdict=verdict,
        value=value,
        candidate=candidate,
        stable=stable,
        samples=samples,
        message=message,
    )
