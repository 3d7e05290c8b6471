"""Which checks the sequential judge supports: the spec rules of ``judge: sequential``.

Owns :func:`problems` (what makes a check unusable with ``judge: sequential``, or ``test: shift`` /
``finalLook`` without it), the built-ins it supports (:data:`SUPPORTED`, :data:`HISTOGRAMS`) and
:func:`is_sequential`. Pure, and light: no numpy or scipy, so validating a spec (``canaryctl
validate``) does not load the statistics. Called by :mod:`controlplane.validation`, the judge itself
(:mod:`controlplane.analysis.sequential.check`), the evaluator and the controller's tick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controlplane.errors import Problem
from controlplane.promql.contract import contract_for

if TYPE_CHECKING:
    from controlplane.spec.models import CheckSpec, ModelCanary

HISTOGRAMS: dict[str, str] = contract_for().bucket_series()
"""Built-in latency metrics the sequential judge supports, with their bucket series in the
KServe-pinned vLLM's :mod:`~controlplane.promql.contract` (a canary's queries use the
series of its own version: :func:`controlplane.promql.sequential.plan`)."""

SUPPORTED = frozenset({"error-rate", *HISTOGRAMS})
"""Built-in metrics a ``judge: sequential`` check may use."""


def is_sequential(check: CheckSpec) -> bool:
    return check.judge == "sequential"


def design_effect(canary: ModelCanary) -> float:
    """How many requests weigh as one independent sample: ``2 * turns - 1`` when
    ``traffic.session`` keeps each conversation of ``turns`` turns (its mean) on one variant,
    else 1.

    Turns of one conversation share its prompt, context and prefix cache, so their latencies and
    errors go together; the judges' counts assume independent requests. Dividing every count by
    the design effect ``sum(m_i^2) / sum(m_i)`` of conversations of ``m_i`` turns, with the turns
    of a conversation taken as fully alike, keeps the tests' level whatever the correlation
    (Kish's design effect at an intra-class correlation of 1; Rao and Scott's correction of a
    count test). Conversation lengths as spread as a geometric law of mean ``turns`` give
    ``E[m^2] / E[m] = 2 * turns - 1``. Measured in docs/judges.md, "Sessions"."""
    session = canary.spec.traffic.session
    if session is None or session.turns is None:
        return 1.0
    return effect_of_turns(session.turns)


def effect_of_turns(turns: float) -> float:
    """:func:`design_effect` of conversations of ``turns`` turns on average: ``2 * turns - 1``."""
    return 2.0 * turns - 1.0


def problems(canary: ModelCanary, check: CheckSpec, path: str) -> list[Problem]:
    """What makes ``check`` unusable with ``judge: sequential`` (empty: fine).

    Supported: ``error-rate`` and the latency histograms, with ``above`` only, absolute or
    ``compare: baseline``; ``test: shift`` on a latency histogram, ``compare: baseline``,
    ``above: X%`` (the tolerated slowdown, 0% to 1000%; ``finalLook`` only with 0%). Spec
    validation may call this to reject such specs up front; the evaluator reports the same
    problems as a provider error (the canary pauses and says why).
    """
    shift = check.test == "shift"
    if not is_sequential(check):
        misplaced = []
        if shift:
            misplaced.append(Problem(f"{path}.test", "test: shift needs judge: sequential"))
        if check.final_look > 0:
            misplaced.append(
                Problem(
                    f"{path}.finalLook",
                    "finalLook keeps part of a sequential judge's alpha for the step's end: "
                    "it needs judge: sequential",
                )
            )
        return misplaced
    metric = canary.metric(check.metric)
    found: list[Problem] = []
    if metric is None:
        return [Problem(f"{path}.metric", f"metric {check.metric!r} is not defined")]
    session = canary.spec.traffic.session
    if session is not None and session.turns is None:
        found.append(
            Problem(
                f"{path}.judge",
                "traffic.session keeps a conversation on one variant, so its turns are not "
                "independent samples: judge: sequential needs traffic.session.turns, the mean "
                "turns of a conversation, to count the evidence by session",
            )
        )
    if shift and (metric.builtin not in HISTOGRAMS or check.compare != "baseline"):
        found.append(
            Problem(
                f"{path}.test",
                "test: shift compares the candidate's whole latency histogram with the "
                "stable's: it needs a latency built-in "
                f"({', '.join(sorted(HISTOGRAMS))}) and compare: baseline",
            )
        )
    elif shift and check.above is not None and not 0.0 <= check.above.value <= 10.0:
        found.append(
            Problem(
                f"{path}.above",
                "test: shift's tolerance is how much slower the candidate may be (every latency "
                "times 1 + above): write a percentage from 0% to 1000%",
            )
        )
    elif shift and check.above is not None and check.above.value > 0 and check.final_look > 0:
        found.append(
            Problem(
                f"{path}.finalLook",
                "the closing test of test: shift is a rank test against no shift at all: it "
                "would roll back a candidate inside the tolerance; drop finalLook or write "
                "above: 0%",
            )
        )
    if metric.builtin not in SUPPORTED:
        what = metric.builtin or "a custom query"
        found.append(
            Problem(
                f"{path}.judge",
                f"judge: sequential needs counts: it supports the built-ins "
                f"{', '.join(sorted(SUPPORTED))}, not {what}",
            )
        )
    if check.below is not None or check.above is None:
        found.append(
            Problem(f"{path}.judge", "judge: sequential supports 'above' only (not 'below')")
        )
    elif check.compare != "baseline" and metric.builtin == "error-rate":
        if not 0.0 < check.above.value < 1.0:
            found.append(Problem(f"{path}.above", "an error-rate limit must be within (0%, 100%)"))
    elif check.compare != "baseline" and check.above.value <= 0:
        found.append(Problem(f"{path}.above", "a latency bound must be positive"))
    elif check.compare == "baseline" and check.above.value <= -1.0:
        found.append(Problem(f"{path}.above", "a relative tolerance must be above -100%"))
    return found
