"""GPU cost arithmetic of a variant, from the catalogue's on-demand prices.

Owns one formula: USD per day = price per GPU-hour x gpuCount x replicas x 24. Pure (no I/O, no
clock). Called by spec validation (to compare a candidate with ``budget.dailyLimit``), by
``canaryctl`` output and by the docs. The live spend the budget gate acts on comes from
``budget.costQuery`` in Prometheus, not from here: this is the list-price estimate.
"""

from __future__ import annotations

from controlplane.profiles.catalog import Catalog
from controlplane.spec.models import VariantSpec

HOURS_PER_DAY = 24


def hourly_cost(variant: VariantSpec, catalog: Catalog) -> float:
    """USD per hour of all replicas of ``variant``. ProfileError for an unknown GPU."""
    gpu = catalog.require_gpu(variant.gpu)
    return gpu.price_per_hour_usd * variant.gpu_count * variant.replicas


def daily_cost(variant: VariantSpec, catalog: Catalog) -> float:
    """USD per day of all replicas of ``variant``. ProfileError for an unknown GPU."""
    return hourly_cost(variant, catalog) * HOURS_PER_DAY
