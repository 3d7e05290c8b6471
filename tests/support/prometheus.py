"""Test-side names for the packaged Prometheus launcher (:mod:`controlplane.local.prometheus`)."""

from controlplane.local.prometheus import (
    PrometheusServer,
    PrometheusSetupError,
    backfill,
    binary,
    free_port,
    start_from_scenario,
    start_prometheus,
)

__all__ = [
    "PrometheusServer",
    "PrometheusSetupError",
    "backfill",
    "binary",
    "free_port",
    "start_from_scenario",
    "start_prometheus",
]
