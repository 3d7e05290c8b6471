"""Test-side names for the packaged synthetic-metrics generator.

The generator lives in :mod:`controlplane.local.synthetic` (the demo uses it too).
"""

from controlplane.local.synthetic import (
    DAY,
    HOUR,
    Change,
    Scenario,
    Variant,
    expected_histogram_quantile,
    history_end,
    lognormal_cdf,
    lognormal_quantile,
)

__all__ = [
    "DAY",
    "HOUR",
    "Change",
    "Scenario",
    "Variant",
    "expected_histogram_quantile",
    "history_end",
    "lognormal_cdf",
    "lognormal_quantile",
]
