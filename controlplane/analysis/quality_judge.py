"""The quality judge's reading of a pairer: its pages of scored pairs folded into one test (pure).

Owns what a judge keeps between reads of a pairer (``GET /pairs?after=SEQ``, answered by
:meth:`controlplane.pairing.journal.Journal.page`) and how a page changes it. :class:`PairsRead`
is the pairer's epoch, the last pair number folded in, the pairs the journal lost unread, and
the :class:`~controlplane.analysis.sequential.mean_eprocess.MeanTest` of the scores so far; it
is small and plain, for a resource's status. :func:`fold` reads one page, asked for with
``after`` the last number read: a page of the same epoch continues after it; a new epoch (the
pairer restarted and numbers from 1 again) continues the same test from its pair 1, so a page
of a new epoch asked for after a nonzero number only records the epoch, and the next read asks
from 0. A pair is scored by the spec's metric
(:func:`score_of`): ``kl``, the pair's mean KL in nats (bounded by ``KL_CAP``), or
``agreement``, tested as the disagreement ``1 - agreement`` (bounded by 1). Pairs the pairer
lost or that came before a restart are missed independently of their scores, so the test stays
valid. A malformed page is a :class:`~controlplane.errors.ProviderError` and changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from controlplane.analysis.quality import KL_CAP
from controlplane.analysis.sequential.mean_eprocess import MeanTest, advance
from controlplane.errors import ProviderError
from controlplane.rollout.observations import QualityReading
from controlplane.spec.models import QualitySpec

QualityMetric = Literal["kl", "agreement"]


@dataclass(frozen=True)
class PairsRead:
    """What a judge has read of one pairer: ``epoch`` and ``seq`` (the last pair folded in),
    ``lost`` (pairs the pairer dropped before they were read, over every epoch) and ``test``."""

    epoch: str = ""
    seq: int = 0
    lost: int = 0
    test: MeanTest = field(default_factory=MeanTest)


def bound_of(metric: QualityMetric) -> float:
    """The largest score of ``metric``."""
    return KL_CAP if metric == "kl" else 1.0


def score_of(pair: Mapping[str, Any], metric: QualityMetric) -> float:
    """The score ``metric`` tests of one pair of a page."""
    return float(pair["kl"]) if metric == "kl" else 1.0 - float(pair["agreement"])


def _number(value: object, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProviderError(f"the pairer's page: {what} is not a number: {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ProviderError(f"the pairer's page: {what} {value!r} is outside [{low:g}, {high:g}]")
    return float(value)


def checked_page(page: Mapping[str, Any]) -> tuple[str, int, int, list[Mapping[str, Any]]]:
    """The page's epoch, ``after``, lost count and pairs (in number order), checked."""
    epoch, pairs = page.get("epoch"), page.get("pairs")
    if not isinstance(epoch, str) or not epoch:
        raise ProviderError(f"the pairer's page has no epoch: {epoch!r}")
    asked = page.get("after")
    if isinstance(asked, bool) or not isinstance(asked, int) or asked < 0:
        raise ProviderError(f"the pairer's page: after is not a number >= 0: {asked!r}")
    lost = int(_number(page.get("lost"), "lost", 0, math.inf))
    if not isinstance(pairs, list):
        raise ProviderError(f"the pairer's page has no list of pairs: {pairs!r}")
    for pair in pairs:
        if not isinstance(pair, Mapping):
            raise ProviderError(f"the pairer's page: a pair is not an object: {pair!r}")
        seq = pair.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise ProviderError(f"the pairer's page: a pair's seq is not a number >= 1: {seq!r}")
        _number(pair.get("kl"), f"pair {seq}'s kl", 0, math.inf)
        _number(pair.get("agreement"), f"pair {seq}'s agreement", 0, 1)
    return epoch, asked, lost, sorted(pairs, key=lambda p: int(p["seq"]))


def fold(
    read: PairsRead,
    page: Mapping[str, Any],
    *,
    metric: QualityMetric,
    tolerance: float,
    alpha: float,
) -> PairsRead:
    """``read`` with the pairs of ``page`` it has not folded in yet, scored by ``metric``, in
    their test against ``tolerance`` at level ``alpha``; a decided test keeps its decision."""
    epoch, asked, lost, pairs = checked_page(page)
    if epoch != read.epoch and asked != 0:
        return PairsRead(epoch, 0, read.lost, read.test)  # a restarted pairer: read it from 0
    after = read.seq if epoch == read.epoch else 0
    if asked != after:
        raise ProviderError(f"the pairer's page was asked after {asked}, not after {after}")
    new = [p for p in pairs if int(p["seq"]) > after]
    scores = [score_of(p, metric) for p in new]
    test = advance(read.test, scores, tolerance, bound_of(metric), alpha)
    seq = int(new[-1]["seq"]) if new else after
    return PairsRead(epoch, seq, read.lost + lost, test)


def read_of(reading: QualityReading | None) -> PairsRead:
    """The :class:`PairsRead` a machine's reading stands for (nothing read: ``None``)."""
    if reading is None:
        return PairsRead()
    test = MeanTest(
        reading.pairs,
        reading.total,
        reading.spread,
        reading.log_breach,
        reading.log_pass,
        reading.decided,
    )
    return PairsRead(reading.epoch, reading.seq, reading.lost, test)


def reading_of(read: PairsRead, error: str = "") -> QualityReading:
    """What the machine records of ``read`` (``error``: why this read failed, "" if it did
    not)."""
    t = read.test
    return QualityReading(
        read.epoch, read.seq, read.lost, t.n, t.total, t.spread, t.log_breach, t.log_pass,
        t.decided, error,
    )  # fmt: skip


def judge_page(
    spec: QualitySpec, reading: QualityReading | None, page: Mapping[str, Any] | None, error: str
) -> QualityReading:
    """The machine's next reading: ``page`` (the pairer's answer to ``after`` the reading's
    number; None when it could not be read, ``error`` says why) folded into ``reading``. A
    malformed page is a failed read, and changes nothing else."""
    read = read_of(reading)
    if page is None:
        return reading_of(read, error or "the pairer was not read")
    try:
        after = fold(read, page, metric=spec.metric, tolerance=spec.tolerance, alpha=spec.alpha)
    except ProviderError as exc:
        return reading_of(read, str(exc))
    return reading_of(after)
