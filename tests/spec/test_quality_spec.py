"""Validation of ``spec.quality``, reported as ``FILE:LINE: path: message``."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.spec.load import load_text
from controlplane.validation import check_text

ROOT = Path(__file__).resolve().parents[2]
BASE = (ROOT / "canary" / "four-week.yml").read_text()
QUALITY = """  quality:
    sample: 5%
    metric: agreement
    tolerance: 0.1
"""


def with_quality(block: str = QUALITY) -> str:
    return BASE.replace("  steps:\n", block + "  steps:\n", 1)


def problems(text: str) -> list[str]:
    return [p.format() for p in check_text(text, "q.yml")]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_quality_section_is_read_with_its_defaults() -> None:
    text = with_quality()
    assert problems(text) == []
    quality = load_text(text)[0].spec.quality
    assert quality is not None
    assert (quality.sample.value, quality.metric, quality.tolerance) == (0.05, "agreement", 0.1)
    assert (quality.per_minute, quality.alpha, quality.undecided) == (60, 0.05, "hold")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("sample: 5%", "sample: 60%", "spec.quality.sample: must be above 0% and at most 50%"),
        ("sample: 5%", "sample: 0%", "spec.quality.sample: must be above 0% and at most 50%"),
        ("sample: 5%", "sample: 200ms", "spec.quality.sample: must be a share like 5%"),
        ("sample: 5%", "sample: 0.05", "spec.quality.sample: must be a share like 5%"),
        ("tolerance: 0.1", "tolerance: 1", "spec.quality.tolerance: the mean disagreement"),
        ("tolerance: 0.1", "tolerance: 0", "spec.quality.tolerance: must be greater than 0"),
        (
            "metric: agreement",
            "metric: bleu",
            "spec.quality.metric: must be one of 'agreement' or 'kl'",
        ),
    ],
)
def test_a_bad_quality_field_is_refused_at_its_line(old: str, new: str, message: str) -> None:
    text = with_quality(QUALITY.replace(old, new))
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith(f"q.yml:{line_of(text, new)}: {message}"), found


def test_the_kl_takes_a_tolerance_in_nats_below_its_cap() -> None:
    text = with_quality(QUALITY.replace("metric: agreement", "metric: kl").replace("0.1", "2"))
    assert problems(text) == []
    capped = with_quality(QUALITY.replace("metric: agreement", "metric: kl").replace("0.1", "10"))
    (found,) = problems(capped)
    assert "spec.quality.tolerance: must be less than 10" in found


def test_a_router_that_cannot_send_a_sample_through_the_pairer_is_refused() -> None:
    text = with_quality().replace("    router: gateway-api", "    router: istio")
    found = problems(text)
    assert any(
        f"q.yml:{line_of(text, '  quality:')}: spec.quality: needs traffic.router gateway-api" in f
        for f in found
    ), found
