"""The local stack's Prometheus side: its scrape configuration, and what it says of its targets.

:func:`scrape_config` scrapes the model servers (static, or a ``file_sd_configs`` file) and the
router; :func:`last_scrape` and :func:`targets_up` read ``/api/v1/targets``. Called by
:mod:`controlplane.local.stack` and :mod:`controlplane.local.pool`.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from controlplane.local.server import ModelServer
from controlplane.promql.queries import prom_duration
from controlplane.spec.models import ModelCanary

FILE_SD_REFRESH = "5s"
"""Prometheus rereads a ``file_sd_configs`` file whenever it changes (inotify) and at least this
often besides."""


def scrape_config(
    canary: ModelCanary,
    servers: Mapping[str, ModelServer],
    router_port: int,
    interval: float,
    *,
    targets_file: Path | None = None,
) -> str:
    """Prometheus configuration scraping the model servers (with their contract labels) and the
    router. ``servers`` are static targets; ``targets_file`` is a ``file_sd_configs`` file that
    lists the replicas that exist at the moment (:func:`replica_targets`), reread whenever it
    changes. The router's Envoy cluster stats are scraped as they are, as a cluster's gateway
    scrape takes Envoy's ``/stats/prometheus``: no per-variant relabeling (the ``error-rate``
    query finds each variant's clusters by ``envoy_cluster_name``:
    :func:`controlplane.promql.http_errors.envoy_backend`); only the target's static
    ``namespace``/``canary`` labels, which that query does not read.
    ``scrape_timeout`` may not exceed the interval."""
    every = prom_duration(interval)
    labels = {"namespace": canary.metadata.namespace, "canary": canary.metadata.name}
    variants: dict[str, Any] = {"job_name": "local-variants", "honor_labels": True}
    if servers:
        variants["static_configs"] = [
            {
                "targets": [f"127.0.0.1:{server.port}"],
                "labels": {**labels, "variant": server.who.variant},
            }
            for server in servers.values()
        ]
    if targets_file is not None:
        variants["file_sd_configs"] = [
            {"files": [str(targets_file)], "refresh_interval": FILE_SD_REFRESH}
        ]
    config = {
        "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
        "scrape_configs": [
            variants,
            {
                "job_name": "local-router",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{router_port}"], "labels": labels}],
            },
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def _active_targets(url: str) -> list[dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(url + "/api/v1/targets?state=active", timeout=2) as response:
            data = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    found: list[dict[str, Any]] = data.get("data", {}).get("activeTargets", [])
    return found


def targets_up(url: str) -> tuple[int, int]:
    targets = _active_targets(url)
    if targets is None:
        return 0, -1
    return sum(1 for t in targets if t.get("health") == "up"), len(targets)


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _unix(stamp: str) -> float | None:
    """Prometheus' RFC 3339 time (up to nanoseconds, ``Z`` or an offset) in unix seconds."""
    m = _RFC3339.match(stamp)
    if m is None:
        return None
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    whole = datetime.fromisoformat(m.group(1) + zone).timestamp()
    return whole + (float(m.group(2)) if m.group(2) else 0.0)


def last_scrape(url: str, instance: str) -> float | None:
    """When the Prometheus at ``url`` last began a successful scrape of ``instance`` (its
    ``lastScrape`` while its health is ``up``); None before one, or when it is no target."""
    for target in _active_targets(url) or []:
        if target.get("labels", {}).get("instance") != instance or target.get("health") != "up":
            continue
        return _unix(str(target.get("lastScrape", "")))
    return None
