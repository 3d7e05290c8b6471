"""``grouped_promql.shards``: a grouped sequential query's canaries split into at most ``most``
parts.

Every (window, canary) lands in exactly one part; parts hold about ``SHARD_CANARIES`` canaries
and there are never more than ``most`` of them (the queries per tick stay bounded whatever N);
a small query stays whole. ``_merged`` joins the parts' answers, a failure wins.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from controlplane.controller.batch import _merged
from controlplane.errors import ProviderUnavailable
from controlplane.promql.grouped import SHARD_CANARIES, shards


@given(
    st.dictionaries(
        st.sampled_from([60.0, 120.0, 300.0, 900.0]),
        st.sets(st.integers(0, 5000).map(lambda i: f"c{i}"), max_size=1500),
        max_size=4,
    ),
    st.integers(1, 6),
)
def test_every_canary_in_one_part_at_most_most_parts(
    terms: dict[float, set[str]], most: int
) -> None:
    parts = shards(terms, most)
    total = sum(len(names) for names in terms.values())
    assert 1 <= len(parts) <= max(1, min(most, math.ceil(total / SHARD_CANARIES)))
    seen = [(param, name) for part in parts for param, names in part.items() for name in names]
    assert sorted(seen) == sorted((p, n) for p, names in terms.items() for n in names)
    if total <= SHARD_CANARIES:
        assert parts == [{p: n for p, n in terms.items() if n}] or not total


def test_merged_answers() -> None:
    a = {("c1", "cand"): 1.0}
    b = {("c2", "cand"): 2.0}
    assert _merged([a, b]) == {**a, **b}
    assert _merged([a]) is a
    failure = ProviderUnavailable("down")
    assert _merged([a, failure, b]) is failure
