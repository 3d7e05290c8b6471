"""Synthetic history has vLLM's real latency histograms: names and bucket bounds per built-in."""

from __future__ import annotations

import re

import pytest
from support.scenario import HOUR, Scenario, Variant, lognormal_cdf

from controlplane.promql.contract import LATENCY_BUILTINS, contract_for

BUCKET = re.compile(
    r'^(?P<name>[^{ ]+)_bucket\{[^}]*variant="(?P<variant>[^"]+)",le="(?P<le>[^"]+)"'
)


def scenario(vllm_version: str | None = None, **candidate: float) -> Scenario:
    return Scenario(
        start=1_800_000_000.0,
        duration=HOUR,
        stable=Variant("bf16"),
        candidate=Variant("nf4", **candidate),  # type: ignore[arg-type]
        families=frozenset({"e2e", "ttft", "itl"}),
        vllm_version=vllm_version,
    )


def bounds_written(s: Scenario) -> dict[tuple[str, str], list[str]]:
    """``{(histogram, variant): [le, ...]}`` in the order the OpenMetrics text has them."""
    found: dict[tuple[str, str], list[str]] = {}
    for line in "".join(s.openmetrics()).splitlines():
        match = BUCKET.match(line)
        if match is not None:
            les = found.setdefault((match["name"], match["variant"]), [])
            if match["le"] not in les:
                les.append(match["le"])
    return found


@pytest.mark.parametrize("version", [None, "0.24.0", "0.33.0"])
def test_each_latency_histogram_has_the_contracts_buckets(version: str | None) -> None:
    contract = contract_for(version)
    written = bounds_written(scenario(version))
    expected = {
        (contract.histogram(b).name, variant): [repr(le) for le in contract.buckets(b)] + ["+Inf"]
        for b in LATENCY_BUILTINS
        for variant in ("bf16", "nf4")
    }
    assert written == expected
    assert [float(le) for le in written["vllm:e2e_request_latency_seconds", "nf4"][:2]] == [
        0.3,
        0.5,
    ]


def test_bucket_counts_are_the_lognormals_expected_counts_at_those_bounds() -> None:
    s = scenario()
    per_step = s.total_rps * 0.25 * s.step
    last = {
        le: float(line.rsplit(" ", 2)[1])
        for line in "".join(s.openmetrics()).splitlines()
        if line.startswith("vllm:e2e_request_latency_seconds_bucket{")
        and 'variant="nf4"' in line
        and (le := line.split('le="')[1].split('"')[0]) in ("0.3", "+Inf")
    }
    requests = per_step * (len(s.times) - 1)
    assert last["+Inf"] == pytest.approx(requests)
    assert last["0.3"] == pytest.approx(requests * float(lognormal_cdf(0.3, 0.15, 0.3)))


def test_a_fast_e2e_latency_reads_at_the_first_bucket_floor() -> None:
    """A 70 ms median (true P95 ~115 ms) reads as ~285 ms: what a real vLLM shows."""
    s = scenario(latency_median_s=0.07)
    p95 = s.expected_quantile(0.95, "e2e-latency", "candidate", s.end)
    assert 0.95 * 0.3 <= p95 < 0.3
    assert p95 == pytest.approx(0.3 * 0.95 / float(lognormal_cdf(0.3, 0.07, 0.3)))


@pytest.mark.parametrize(
    ("builtin", "median"), [("e2e-latency", 0.6), ("ttft", 0.05), ("inter-token-latency", 0.02)]
)
def test_expected_quantile_interpolates_between_the_builtins_own_bounds(
    builtin: str, median: float
) -> None:
    s = scenario(latency_median_s=0.6)  # ttft and inter-token latency: Variant's 50 ms and 20 ms
    value = s.expected_quantile(0.5, builtin, "candidate", s.end)
    bounds = (0.0, *s.buckets(builtin))
    lower = max(b for b in bounds if b < median)
    upper = min(b for b in bounds if b >= median)
    assert lower < value <= upper
    assert s.buckets(builtin) == contract_for(None).buckets(builtin)


def test_expected_quantile_reads_the_roles_parameters() -> None:
    s = scenario(latency_median_s=0.6)
    candidate = s.expected_quantile(0.5, "e2e-latency", "candidate", s.end)
    stable = s.expected_quantile(0.5, "e2e-latency", "stable", s.end)  # 150 ms: first bucket
    assert 0.5 < candidate <= 0.8
    assert stable == pytest.approx(0.3 * 0.5 / float(lognormal_cdf(0.3, 0.15, 0.3)))
