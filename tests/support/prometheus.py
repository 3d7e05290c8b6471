"""Test-side names for the packaged launchers of Prometheus and Alertmanager
(:mod:`controlplane.local.prometheus`)."""

from controlplane.local.prometheus import (
    PrometheusServer,
    PrometheusSetupError,
    backfill,
    binary,
    free_port,
    start_alertmanager,
    start_from_scenario,
    start_prometheus,
)

__all__ = [
    "PrometheusServer",
    "PrometheusSetupError",
    "backfill",
    "binary",
    "free_port",
    "start_alertmanager",
    "start_from_scenario",
    "start_prometheus",
]
