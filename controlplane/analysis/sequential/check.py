"""``judge: sequential`` checks: which it supports, the counts they need, their verdicts.

Owns the bridge between a spec check and the sequential statistics: the plan of a canary's
counts (the PromQL is :mod:`controlplane.promql.sequential`'s) and the mapping of a look onto a
:class:`~controlplane.rollout.observations.CheckResult`. Pure; called by the evaluator.
Decisions: docs/judges.md; mathematics and queries: docs/judges-derivation.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from controlplane.analysis.sequential import decision_rule
from controlplane.analysis.sequential.buckets import bucket_quantile
from controlplane.analysis.sequential.count_judges import (
    CountLook,
    SequentialResult,
    counts_look,
    judge_looks,
    rate_look,
)
from controlplane.analysis.sequential.latency_batch import (
    Pending,
    Prepared,
    absolute_looks,
    shift_looks,
)
from controlplane.analysis.sequential.latency_judges import (
    ShiftLook,
    judge_shift_looks,
    latency_look,
    shift_look,
)
from controlplane.analysis.sequential.support import HISTOGRAMS, problems
from controlplane.errors import NoData, SpecError
from controlplane.promql import sequential as sequential_promql
from controlplane.promql.http_errors import HttpSource
from controlplane.promql.sequential import Plan
from controlplane.rollout.observations import CheckResult
from controlplane.spec.models import CheckSpec, MetricSpec, ModelCanary
from controlplane.spec.units import Unit, display_value


def plan(
    canary: ModelCanary,
    check: CheckSpec,
    since: float,
    now: float,
    *,
    closes_at: float | None = None,
    source: HttpSource | None = None,
) -> Plan:
    """The queries of ``check`` over ``[since, now]`` (:func:`controlplane.promql.sequential.plan`;
    ``source``: ``error-rate``'s HTTP source, None: the spec's). Raises :class:`SpecError` when
    the sequential judge does not support the check."""
    found = problems(canary, check, "check")
    if found:
        raise SpecError(found)
    return sequential_promql.plan(canary, check, since, now, closes_at=closes_at, source=source)


@dataclass(frozen=True)
class Counts:
    """Cumulative counts since the step started, as the provider answered them.

    ``None`` means "no series": for request/error counters that is zero requests (vLLM
    initialises its counters at 0, so an absent series means nothing was served yet).
    """

    cand_events: float | None = None
    cand_total: float | None = None
    stable_events: float | None = None
    stable_total: float | None = None
    cand_buckets: Mapping[float, float] | None = None
    stable_buckets: Mapping[float, float] | None = None
    boundary_s: float | None = None
    reference_buckets: Mapping[float, float] | None = None
    closing: Counts | None = None
    """The same counts over the whole step (``Plan.closing``'s answers): the closing test runs
    on them when given. ``boundary_s`` and ``reference_buckets`` are the outer ones."""

    def weighed(self, design_effect: float) -> Counts:
        """Every count (the closing ones too) divided by ``design_effect``: the independent
        samples they weigh as (:func:`~controlplane.analysis.sequential.support.design_effect`).
        The boundary stays."""
        if design_effect == 1.0:
            return self

        def count(value: float | None) -> float | None:
            return None if value is None else value / design_effect

        def buckets(found: Mapping[float, float] | None) -> Mapping[float, float] | None:
            return None if found is None else {le: n / design_effect for le, n in found.items()}

        return replace(
            self,
            cand_events=count(self.cand_events),
            cand_total=count(self.cand_total),
            stable_events=count(self.stable_events),
            stable_total=count(self.stable_total),
            cand_buckets=buckets(self.cand_buckets),
            stable_buckets=buckets(self.stable_buckets),
            reference_buckets=buckets(self.reference_buckets),
            closing=None if self.closing is None else self.closing.weighed(design_effect),
        )


def _zero(value: float | None) -> float:
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _unit(check: CheckSpec) -> Unit:
    if check.compare == "baseline":
        return Unit.RATIO
    return check.above.unit if check.above is not None else Unit.NUMBER


@dataclass(frozen=True)
class _Judged:
    res: SequentialResult
    served: float  # candidate requests the test saw
    quantity: float | None  # the candidate's value in the metric's own unit
    stable_quantity: float | None


def run_looks(looks: Sequence[Pending], *, e_values: bool = True) -> list[SequentialResult]:
    """The anytime tests of many looks at once, in their order: the count looks through
    :func:`~controlplane.analysis.sequential.count_judges.judge_looks`, the shift looks through
    :func:`~controlplane.analysis.sequential.latency_judges.judge_shift_looks`, each one numpy pass
    over all the looks of its kind. ``e_values=False``: the count looks' e-values only where they
    decide (``judge_looks``), the rest is the same."""
    out: list[SequentialResult | None] = [
        look if isinstance(look, SequentialResult) else None for look in looks
    ]
    counts = [i for i, look in enumerate(looks) if isinstance(look, CountLook)]
    shifts = [i for i, look in enumerate(looks) if isinstance(look, ShiftLook)]
    by_counts = [look for look in looks if isinstance(look, CountLook)]
    by_shift = [look for look in looks if isinstance(look, ShiftLook)]
    for i, res in zip(counts, judge_looks(by_counts, e_values=e_values), strict=True):
        out[i] = res
    for i, res in zip(shifts, judge_shift_looks(by_shift), strict=True):
        out[i] = res
    return [res for res in out if res is not None]


def _judge(
    check: CheckSpec, metric: MetricSpec, counts: Counts, alpha: float, *, fixed: bool = False
) -> _Judged | str | None:
    """The sequential test of ``check`` on ``counts`` at level ``alpha`` (:func:`_prepare`, then
    its anytime test alone; a ``fixed`` look is its result already)."""
    prepared = _prepare(check, metric, counts, alpha, fixed=fixed)
    if not isinstance(prepared, Prepared):
        return prepared
    look = prepared.look
    (res,) = [look] if isinstance(look, SequentialResult) else run_looks([look])
    return _Judged(res, prepared.served, prepared.quantity, prepared.stable_quantity)


def _prepare(
    check: CheckSpec, metric: MetricSpec, counts: Counts, alpha: float, *, fixed: bool = False
) -> Prepared | str | None:
    """The sequential test of ``check`` on ``counts`` at level ``alpha``, up to its anytime test:
    the look (or its result); a reason it is inconclusive (str); or None when the candidate
    served nothing (no latency buckets). ``fixed``: only the fixed-horizon p-value (the closing
    test's), no anytime test."""
    assert check.above is not None
    baseline = check.compare == "baseline"
    res: Pending
    if metric.builtin == "error-rate":
        if baseline:
            res = counts_look(
                _zero(counts.cand_events),
                _zero(counts.cand_total),
                _zero(counts.stable_events),
                _zero(counts.stable_total),
                check.above.value,
                alpha,
                fixed=fixed,
            )
        else:
            res = rate_look(
                _zero(counts.cand_events),
                _zero(counts.cand_total),
                check.above.value,
                alpha,
                fixed=fixed,
            )
        return Prepared(res, _zero(counts.cand_total), res.estimate, None)
    q = metric.quantile_or_default
    cand = dict(counts.cand_buckets or {})
    if not cand or max(cand.values()) <= 0:
        return None
    stable_quantity: float | None = None
    if baseline and check.test == "shift":
        res = shift_look(
            cand,
            counts.stable_buckets or {math.inf: 0.0},
            counts.reference_buckets or {math.inf: 0.0},
            alpha,
            tolerance=check.above.value,
            fixed=fixed,
        )
        stable = counts.stable_buckets
        stable_quantity = bucket_quantile(stable, q) if stable else None
    elif baseline:
        if counts.boundary_s is None or not math.isfinite(counts.boundary_s):
            return (
                "the stable variant had no latency data just before the step started "
                "(the boundary of the comparison is its quantile then)"
            )
        res = latency_look(
            cand,
            counts.stable_buckets or {math.inf: 0.0},
            q,
            alpha,
            tolerance=check.above.value,
            stable_boundary_s=counts.boundary_s,
            fixed=fixed,
        )
        stable_quantity = counts.boundary_s
    else:
        res = latency_look(cand, None, q, alpha, bound_s=check.above.value, fixed=fixed)
    return Prepared(res, max(cand.values()), bucket_quantile(cand, q), stable_quantity)


def _closing(check: CheckSpec, metric: MetricSpec, counts: Counts) -> str | None:
    """The closing test's breach message, or None when it does not run or does not reject.

    It runs on ``counts.closing`` (the whole step, pinned at its end) at level ``alpha *
    finalLook``: one fixed-horizon test (exact binomial, or Wilcoxon-Mann-Whitney for ``test:
    shift``) at one look fixed in advance. Its data cannot change after the step's end, so
    evaluating it again while a step is held is the same look. A closing test without data
    (no requests, a broken histogram) does not reject: the anytime test speaks for the check.
    """
    if counts.closing is None or check.final_look <= 0:
        return None
    pinned = replace(
        counts.closing,
        boundary_s=counts.boundary_s,
        reference_buckets=counts.reference_buckets,
        closing=None,
    )
    level = decision_rule.closing_level(check.alpha, check.final_look)
    try:
        judged = _judge(check, metric, pinned, level, fixed=True)
    except (SpecError, NoData):
        return None
    if not isinstance(judged, _Judged) or not decision_rule.closing_rejects(
        judged.res.p_fixed, check.alpha, check.final_look
    ):
        return None
    return (
        f"closing test at the step's end: p = {judged.res.p_fixed:.3g} <= {level:g} "
        f"(alpha {check.alpha:g} x finalLook {check.final_look:g}; fixed-horizon test on the "
        f"whole step, {judged.served:.0f} candidate requests): {judged.res.message}"
    )


@dataclass(frozen=True)
class CheckLook:
    """One sequential check to judge at one look: its result's ``key``, the check, its metric,
    the counts the provider answered, the check's ``minSamples`` and the requests that weigh as
    one independent sample (``design_effect``: 1 unless sessions stay on one variant)."""

    key: str
    check: CheckSpec
    metric: MetricSpec
    counts: Counts
    min_samples: int | None
    design_effect: float = 1.0
    started_s: float = 0.0
    """Seconds into the step where the counts start: 0, or later when the stable had no history
    before the step (:func:`from_later_start`)."""

    @property
    def since_words(self) -> str:
        """Where the counts start, in words."""
        if self.started_s <= 0:
            return "since the step started"
        return f"since {self.started_s:g} s into the step"

    def weighed(self) -> CheckLook:
        """This look with its counts as the independent samples they weigh as."""
        if self.design_effect == 1.0:
            return self
        return replace(self, counts=self.counts.weighed(self.design_effect))


def judge_check(
    key: str,
    check: CheckSpec,
    metric: MetricSpec,
    counts: Counts,
    *,
    min_samples: int | None,
    design_effect: float = 1.0,
    started_s: float = 0.0,
) -> CheckResult:
    """The :class:`CheckResult` of one sequential look (see the module docstring): its look
    built alone (:func:`_prepare`), then :func:`run_looks` of one. :func:`judge_checks` gives
    the same result (the tests hold it)."""
    item = CheckLook(key, check, metric, counts, min_samples, design_effect, started_s)
    return _judge_items([item], arrays=False)[0]


def lacks_stable_history(look: CheckLook) -> bool:
    """Whether ``look`` is a ``compare: baseline`` latency check whose stable had no latency data
    in the window before its counts start: no reference requests (``test: shift``) or no
    boundary (the quantile comparison). :func:`from_later_start` then says what to judge."""
    if look.check.compare != "baseline" or look.metric.builtin not in HISTOGRAMS:
        return False
    counts = look.counts
    if look.check.test == "shift":
        ref = counts.reference_buckets
        return not ref or max(ref.values()) <= 0
    return counts.boundary_s is None or not math.isfinite(counts.boundary_s)


def from_later_start(
    look: CheckLook,
    laters: Sequence[CheckLook | CheckResult],
    *,
    since: float,
    starts: Sequence[float],
    now: float,
) -> CheckLook | CheckResult:
    """What to judge for ``look``, which :func:`lacks_stable_history`. ``starts``: the later
    starts of its counts (:func:`controlplane.promql.sequential.later_starts`); ``laters``: the
    same check's looks from the first of them, in order, up to the first whose stable has
    history (or a look that failed, which is returned). That one is judged: its reference is
    the stable's data from the step's start to it, which its counts do not include. While none
    has history and a later start is still to come, an inconclusive result says when the check
    looks again; after the last, that there is nothing to compare with (the step holds; the
    step's other checks still judge)."""
    for start, later in zip(starts, laters, strict=False):
        if isinstance(later, CheckResult):
            return later
        if not lacks_stable_history(later):
            return replace(later, started_s=start - since)
    coming = [start for start in starts if start > now]
    if not coming:
        return _inconclusive(
            look,
            "the stable variant had no latency data before the step started nor in its first "
            f"{starts[-1] - since:g} s: there is nothing to compare the candidate with",
        )
    return _inconclusive(
        look,
        "the stable variant had no latency data in the window before the step started (a "
        "stable just deployed or adopted): its data from the step's start becomes the "
        f"reference at the first look that finds some (every {starts[0] - since:g} s, up to "
        f"{starts[-1] - since:g} s into the step), and the test judges the requests after it; "
        f"next look in {coming[0] - now:.0f} s",
    )


def _inconclusive(item: CheckLook, why: str, *, provider_error: bool = False) -> CheckResult:
    name = item.check.metric
    return CheckResult(
        key=item.key,
        metric=name,
        verdict="inconclusive",
        provider_error=provider_error,
        message=f"{name} (sequential): {why}",
    )


def judge_checks(items: Sequence[CheckLook]) -> list[CheckResult]:
    """The :class:`CheckResult` of many sequential looks (a tick's checks), in their order.

    The same results as :func:`judge_check` on each alone, computed together: latency looks built on
    arrays by bucket layout, every anytime test in one numpy pass per kind (:func:`run_looks`).
    With ``finalLook`` ``f`` the anytime test runs at ``alpha * (1 - f)`` and the closing test at
    ``alpha * f``, so by the union bound a good candidate is rolled back at most ``alpha``.
    """
    return _judge_items(items, arrays=True)


def _judge_items(items: Sequence[CheckLook], *, arrays: bool) -> list[CheckResult]:
    """:func:`judge_checks`; ``arrays``: the latency looks built on arrays
    (:func:`_prepare_latency`), else each alone. Each look's counts are weighed by its design
    effect first; the requests a result reports are the requests served."""
    items = [item.weighed() for item in items]
    built = _prepare_latency(items) if arrays else {}
    prepared: list[Prepared | str | CheckResult | None] = []
    for i, item in enumerate(items):
        if i in built:
            prepared.append(built[i])
            continue
        anytime_alpha = decision_rule.anytime_alpha(item.check.alpha, item.check.final_look)
        try:
            prepared.append(_prepare(item.check, item.metric, item.counts, anytime_alpha))
        except SpecError as exc:
            prepared.append(_inconclusive(item, f"cannot judge: {exc}", provider_error=True))
        except NoData as exc:
            prepared.append(_inconclusive(item, str(exc)))
    looks = [p.look for p in prepared if isinstance(p, Prepared)]
    results = iter(run_looks(looks, e_values=not arrays))
    out = []
    for item, p in zip(items, prepared, strict=True):
        if isinstance(p, CheckResult):
            out.append(p)
        elif isinstance(p, Prepared):
            served = p.served * item.design_effect
            judged = _Judged(next(results), served, p.quantity, p.stable_quantity)
            out.append(_verdict(item, judged))
        else:
            out.append(_verdict(item, p))
    return out


def _prepare_latency(items: Sequence[CheckLook]) -> dict[int, Prepared | None]:
    """:func:`_prepare` of the tick's absolute latency and ``test: shift`` checks, on arrays
    (:mod:`~controlplane.analysis.sequential.latency_batch`), by index; the checks it leaves out are
    prepared alone."""
    absolute: list[int] = []
    shift: list[int] = []
    for i, item in enumerate(items):
        check, builtin = item.check, item.metric.builtin
        if builtin not in HISTOGRAMS or check.above is None:
            continue
        if check.compare != "baseline":
            absolute.append(i)
        elif check.test == "shift":
            shift.append(i)
    out: dict[int, Prepared | None] = {}

    def level(i: int) -> float:
        return decision_rule.anytime_alpha(items[i].check.alpha, items[i].check.final_look)

    def above(i: int) -> float:
        limit = items[i].check.above
        assert limit is not None
        return limit.value

    if absolute:
        built = absolute_looks(
            [items[i].counts.cand_buckets for i in absolute],
            [above(i) for i in absolute],
            [items[i].metric.quantile_or_default for i in absolute],
            [level(i) for i in absolute],
        )
        out.update({absolute[j]: p for j, p in built.items()})
    if shift:
        built = shift_looks(
            [items[i].counts.cand_buckets for i in shift],
            [items[i].counts.stable_buckets for i in shift],
            [items[i].counts.reference_buckets for i in shift],
            [above(i) for i in shift],
            [items[i].metric.quantile_or_default for i in shift],
            [level(i) for i in shift],
        )
        out.update({shift[j]: p for j, p in built.items()})
    return out


def _verdict(item: CheckLook, judged: _Judged | str | None) -> CheckResult:
    """One check's :class:`CheckResult` from its judged look (the closing test included)."""
    key, check, metric, counts, min_samples = (
        item.key,
        item.check,
        item.metric,
        item.counts,
        item.min_samples,
    )
    name = check.metric

    def inconclusive(why: str) -> CheckResult:
        return _inconclusive(item, why)

    assert check.above is not None
    baseline = check.compare == "baseline"
    anytime_alpha = decision_rule.anytime_alpha(check.alpha, check.final_look)
    if judged is None:
        if min_samples:
            return inconclusive(f"no requests {item.since_words} (minSamples {min_samples})")
        return CheckResult(
            key=key,
            metric=name,
            verdict="pass",
            samples=0.0,
            message=f"{name} (sequential): no requests {item.since_words}",
        )
    if isinstance(judged, str):
        return inconclusive(judged)
    res, served, quantity = judged.res, judged.served, judged.quantity
    stable_quantity = judged.stable_quantity
    if check.test == "shift":
        value = _finite(2.0 * res.estimate - 1.0)  # Cliff's delta: 0 = no shift
    else:
        value = _finite(res.estimate - 1.0 if baseline else quantity)
    by_session = (
        f", weighed as {served / item.design_effect:.0f} by session"
        if item.design_effect != 1.0
        else ""
    )
    detail = (
        f" [alpha {anytime_alpha:g}, {served:.0f} candidate requests {item.since_words}"
        f"{by_session}]"
    )
    evidence = _log_e(res.e_value)
    bound = math.log(1.0 / anytime_alpha) if anytime_alpha > 0 else None
    decision = res.decision
    said = f"{res.message}{detail}"
    closing = _closing(check, metric, counts) if decision != "breach" else None
    if closing is not None:  # the closing test overrules "continue" (and an early pass)
        decision, said = "breach", closing
    if decision in ("breach", "pass"):
        word = "breach" if decision == "breach" else "passed early"
        return CheckResult(
            key=key,
            metric=name,
            verdict=decision,
            value=value,
            candidate=_finite(quantity),
            stable=_finite(stable_quantity),
            samples=served,
            message=f"{name} (sequential) {word}: {said}",
            decided=decision,
            evidence=evidence,
            evidence_bound=bound,
        )
    if min_samples is not None and served < min_samples:
        return CheckResult(
            key=key,
            metric=name,
            verdict="inconclusive",
            value=value,
            samples=served,
            message=(
                f"{name} (sequential): no evidence either way yet, {served:.0f} requests "
                f"{item.since_words} < minSamples {min_samples}"
            ),
            evidence=evidence,
            evidence_bound=bound,
        )
    shown = display_value(value, _unit(check)) if value is not None else "n/a"
    return CheckResult(
        key=key,
        metric=name,
        verdict="pass",
        value=value,
        candidate=_finite(quantity),
        stable=_finite(stable_quantity),
        samples=served,
        message=(f"{name} (sequential): no evidence of a breach ({shown}; {res.message}){detail}"),
        evidence=evidence,
        evidence_bound=bound,
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _log_e(e_value: float) -> float | None:
    """The log of an e-value the judge computed; None where it did not (``NaN``: a batched count
    look that cannot decide) or where it is not positive."""
    if not math.isfinite(e_value) or e_value <= 0:
        return None
    return math.log(e_value)
