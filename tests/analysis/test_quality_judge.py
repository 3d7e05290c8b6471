"""``controlplane.analysis.quality_judge``: a pairer's pages folded into the quality test."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest

from controlplane.analysis.quality import KL_CAP, PairScore
from controlplane.analysis.quality_judge import (
    PairsRead,
    fold,
    judge_page,
    read_of,
    reading_of,
    score_of,
)
from controlplane.analysis.sequential.mean_eprocess import MeanTest, advance, decide
from controlplane.errors import ProviderError
from controlplane.pairing.journal import Journal
from controlplane.spec.models import QualitySpec

ALPHA = 0.05


def journal_of(scores: list[PairScore], keep: int = 10_000, epoch: str = "e1") -> Journal:
    journal = Journal(keep, epoch)
    for i, s in enumerate(scores):
        journal.add(float(i), "stable", s)
    return journal


def scores(n: int, seed: int, kl_mean: float) -> list[PairScore]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        agreement = 1.0 if rng.random() < 0.7 else rng.random()
        kl = min(KL_CAP, rng.expovariate(1 / kl_mean))
        out.append(PairScore(agreement, kl, agreement == 1.0, 8))
    return out


def same(got: MeanTest, want: MeanTest) -> bool:
    """The same test, its sums up to rounding (a batch sums in another order)."""
    floats = ("total", "spread", "log_breach", "log_pass")
    return (got.n, got.decided) == (want.n, want.decided) and all(
        getattr(got, f) == pytest.approx(getattr(want, f), rel=1e-12, abs=1e-12) for f in floats
    )


def read_all(journal: Journal, read: PairsRead, limit: int, **judge: Any) -> PairsRead:
    while True:
        page = journal.page(read.seq if read.epoch == journal.epoch else 0, limit)
        after = fold(read, page, **judge)
        if after == read:
            return read
        read = after


@pytest.mark.parametrize("metric", ["kl", "agreement"])
@pytest.mark.parametrize("limit", [1, 7, 1000])
def test_pages_of_any_size_fold_to_the_test_of_all_the_scores(metric: str, limit: int) -> None:
    pairs = scores(120, seed=3, kl_mean=0.2)
    judge = {"metric": metric, "tolerance": 0.3, "alpha": ALPHA}
    read = read_all(journal_of(pairs), PairsRead(), limit, **judge)
    bound = KL_CAP if metric == "kl" else 1.0
    values = [p.kl if metric == "kl" else 1 - p.agreement for p in pairs]
    want = advance(MeanTest(), values, 0.3, bound, ALPHA)
    assert same(read.test, want), (read.test, want)
    assert read.seq == 120 if want.decided is None else read.seq >= want.n
    assert read.epoch == "e1"
    assert read.lost == 0
    assert score_of(journal_of(pairs).page(0)["pairs"][0], metric) == values[0]  # type: ignore[arg-type]


def test_an_identical_candidate_passes_and_a_divergent_one_breaches() -> None:
    identical = journal_of([PairScore(1.0, 0.0, True, 8)] * 200)
    judge = {"tolerance": 0.1, "alpha": ALPHA}
    passed = read_all(identical, PairsRead(), 50, metric="agreement", **judge)
    assert passed.test.decided == "pass"
    # the KL's range (10 nats) makes each pass bet small: 200 pairs are not evidence enough
    assert read_all(identical, PairsRead(), 50, metric="kl", **judge).test.decided is None
    worse = scores(400, seed=5, kl_mean=0.6)
    breached = read_all(journal_of(worse), PairsRead(), 50, metric="kl", tolerance=0.2, alpha=ALPHA)
    assert breached.test.decided == "breach"
    assert breached.test.n < 400


def test_a_restarted_pairer_is_read_from_its_first_pair_into_the_same_test() -> None:
    judge = {"metric": "agreement", "tolerance": 0.5, "alpha": 1e-9}
    before = scores(10, seed=1, kl_mean=0.1)
    read = read_all(journal_of(before, epoch="a"), PairsRead(), 4, **judge)
    assert (read.epoch, read.seq, read.test.n) == ("a", 10, 10)
    after = journal_of(scores(6, seed=2, kl_mean=0.1), keep=4, epoch="b")
    noted = fold(read, after.page(read.seq), **judge)  # asked after 10 of a pairer now at 6
    assert (noted.epoch, noted.seq, noted.test) == ("b", 0, read.test)
    resumed = fold(noted, after.page(0), **judge)
    assert (resumed.seq, resumed.test.n, resumed.lost) == (6, 14, 2)  # pairs 1, 2 left unread
    values = [1 - p.agreement for p in before] + [
        1 - p["agreement"] for p in after.page(0)["pairs"]
    ]
    assert same(resumed.test, advance(MeanTest(), values, 0.5, 1.0, 1e-9))


def test_a_decided_test_keeps_its_decision_as_pairs_go_on() -> None:
    journal = journal_of([PairScore(0.0, KL_CAP, False, 8)] * 30)
    read = fold(PairsRead(), journal.page(0), metric="kl", tolerance=0.1, alpha=ALPHA)
    assert read.test.decided == "breach"
    decided = read.test
    journal.add(99.0, "stable", PairScore(1.0, 0.0, True, 8))
    later = fold(read, journal.page(read.seq), metric="kl", tolerance=0.1, alpha=ALPHA)
    assert later.test == decided
    assert later.seq == 31


GOOD = {"seq": 1, "at": 0.0, "servedBy": "stable", "agreement": 1.0, "kl": 0.0}


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ({"after": 0, "lost": 0, "pairs": []}, "has no epoch"),
        ({"epoch": "e", "after": -1, "lost": 0, "pairs": []}, "after is not a number >= 0"),
        ({"epoch": "e", "after": 0, "lost": "x", "pairs": []}, "lost is not a number"),
        ({"epoch": "e", "after": 0, "lost": 0, "pairs": {}}, "has no list of pairs"),
        ({"epoch": "e", "after": 0, "lost": 0, "pairs": [1]}, "a pair is not an object"),
        ({"epoch": "e", "after": 0, "lost": 0, "pairs": [{**GOOD, "seq": 0}]}, "seq is not"),
        ({"epoch": "e", "after": 0, "lost": 0, "pairs": [{**GOOD, "kl": -1}]}, "outside"),
        ({"epoch": "e", "after": 0, "lost": 0, "pairs": [{**GOOD, "kl": float("nan")}]}, "kl"),
        ({"epoch": "e", "after": 0, "lost": 0, "pairs": [{**GOOD, "agreement": 2}]}, "outside"),
        ({"epoch": "e", "after": 0, "lost": 0, "pairs": [{**GOOD, "agreement": True}]}, "not a"),
        ({"epoch": "e0", "after": 3, "lost": 0, "pairs": []}, "asked after 3, not after 5"),
    ],
)
def test_a_malformed_page_is_refused_with_its_reason(page: dict[str, Any], message: str) -> None:
    read = PairsRead(epoch="e0", seq=5)
    with pytest.raises(ProviderError, match=message):
        fold(read, page, metric="kl", tolerance=0.5, alpha=ALPHA)


def test_the_fewest_pairs_a_pass_takes_are_those_the_docs_give() -> None:
    """docs/judges.md, "How many pairs a pass takes": an identical candidate at alpha 5 %."""
    text = (Path(__file__).parents[2] / "docs" / "judges.md").read_text()
    rows = re.findall(r"^\| (0\.\d+) \| (\d+) \| (\d+) \|$", text, re.MULTILINE)
    assert len(rows) == 4
    for tolerance, agreement, kl in rows:
        m = float(tolerance)
        assert decide([0.0] * 5000, m, 1.0, 0.05) == ("pass", int(agreement)), tolerance
        assert decide([0.0] * 5000, m, KL_CAP, 0.05) == ("pass", int(kl)), tolerance


def test_the_machines_reading_round_trips_and_a_bad_page_is_a_failed_read() -> None:
    spec = QualitySpec.model_validate({"sample": "5%", "tolerance": 0.2, "metric": "agreement"})
    journal = journal_of(scores(40, seed=9, kl_mean=0.1), epoch="p1")
    reading = judge_page(spec, None, journal.page(0, 25), "")
    assert (reading.epoch, reading.seq, reading.pairs, reading.error) == ("p1", 25, 25, "")
    assert reading_of(read_of(reading)) == reading
    reading = judge_page(spec, reading, journal.page(reading.seq), "")
    assert (reading.seq, reading.pairs) == (40, 40)
    values = [1 - p["agreement"] for p in journal.page(0)["pairs"]]
    want = advance(MeanTest(), values, 0.2, 1.0, spec.alpha)
    assert same(read_of(reading).test, want)
    failed = judge_page(spec, reading, {"epoch": "p1", "after": 40}, "")
    assert failed.error.startswith("the pairer's page: lost is not a number")
    assert reading_of(read_of(failed), failed.error) == failed
    assert (failed.seq, failed.pairs, failed.total) == (40, 40, reading.total)
    unread = judge_page(spec, reading, None, "connection refused")
    assert unread.error == "connection refused"
    assert unread.pairs == 40
