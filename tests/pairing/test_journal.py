"""``controlplane.pairing.journal``: the scored pairs a reader pages through."""

from __future__ import annotations

import pytest

from controlplane.analysis.quality import PairScore
from controlplane.pairing.journal import Journal

SCORE = PairScore(agreement=0.5, kl=0.25, exact=False, compared=3)


def test_pairs_are_numbered_from_one_and_paged_after_a_number() -> None:
    journal = Journal(epoch="e1")
    for i in range(5):
        journal.add(100.0 + i, "stable" if i % 2 else "candidate", SCORE)
    page = journal.page(2, limit=2)
    assert page["epoch"] == "e1"
    assert page["after"] == 2
    assert page["last"] == 5
    assert page["lost"] == 0
    assert page["pairs"] == [
        {"seq": 3, "at": 102.0, "servedBy": "candidate", "agreement": 0.5, "kl": 0.25,
         "exact": False, "compared": 3},
        {"seq": 4, "at": 103.0, "servedBy": "stable", "agreement": 0.5, "kl": 0.25,
         "exact": False, "compared": 3},
    ]  # fmt: skip
    assert [p["seq"] for p in journal.page(4)["pairs"]] == [5]
    assert journal.page(5)["pairs"] == []
    assert journal.page(5)["lost"] == 0


def test_pairs_dropped_before_they_were_read_are_counted_as_lost() -> None:
    journal = Journal(keep=3)
    for i in range(10):
        journal.add(float(i), "stable", SCORE)
    page = journal.page(2)
    assert [p["seq"] for p in page["pairs"]] == [8, 9, 10]
    assert page["lost"] == 5  # 3 to 7 left before the reader came back
    assert journal.page(7)["lost"] == 0
    assert journal.page(0)["lost"] == 7


def test_each_journal_has_its_own_epoch() -> None:
    assert Journal().epoch != Journal().epoch
    with pytest.raises(ValueError, match="keep must be at least 1"):
        Journal(keep=0)
