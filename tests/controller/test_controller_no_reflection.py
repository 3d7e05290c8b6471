"""Issue 33, through the controller: a canary whose ``spec.analysis.prometheus`` is a hostile
server. Its answers (55 MB, 200,000 deep, an internal page's 403) are provider errors that count
towards ``analysis.errorLimit``, so the canary pauses after that many evaluations and says why;
no byte of an answer reaches ``status.checks[].message``, ``status.reason`` or an Event; and
``/metrics`` names neither the URL nor its credentials.

The world is the controller's own (FakeKube, fake KServe, an injected clock:
:mod:`support.controller_world`); the hostile Prometheus is a real HTTP server on a loopback port
(:mod:`harness.servers.hostile_prometheus`). No program is started.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from dataclasses import replace
from typing import Any

import pytest
from support.controller_world import CANARY, DAY, HOUR, NS, World, world_canary

from controlplane.controller.metrics import ControllerMetrics
from controlplane.controller.reconcile import Reconciler
from controlplane.controller.runner import Controller
from controlplane.providers.prometheus import from_url
from controlplane.providers.source import PrometheusSource
from harness.servers.hostile_prometheus import SECRET, hostile

T0 = float(int(time.time()) // 3600 * 3600 - 30 * DAY)
ERROR_LIMIT = 3


def paused_on_errors(name: str) -> Any:
    def check(world: World) -> bool:
        status = world.get(name).get("status") or {}
        return status.get("paused") == "errors"

    return check


# the tenant's canaries pause after ERROR_LIMIT provider errors in a row
ANALYSIS = {**CANARY["spec"]["analysis"], "errorLimit": ERROR_LIMIT}


def everything_a_tenant_reads(world: World, name: str) -> str:
    """The canary (status included) and every Event about it, as one text."""
    events = list(world.kube.list("v1", "Event", NS))
    return json.dumps(world.get(name)) + json.dumps(events)


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        pytest.param("huge", "Prometheus answer over 16 MiB: refused", id="55MB"),
        pytest.param("deep", "Prometheus answer nested deeper than 64: refused", id="200000-deep"),
        pytest.param("forbidden", "HTTP 403 Forbidden", id="403-internal-page"),
    ],
)
def test_a_hostile_prometheus_pauses_the_canary_at_its_error_limit(mode: str, said: str) -> None:
    """Before: the 55 MB answer took the controller to about 2 GB; the deep one raised a
    RecursionError that failed the whole tick, retried every 300 s for ever (the canary never
    reached its errorLimit); the 403's body was copied into the status and a Warning Event."""
    with hostile(mode) as server:
        url = server.url + "/internal/admin?ignore="
        world = World(T0, url)
        world.create(world_canary("tenant", url, analysis=ANALYSIS))
        tracemalloc.start()
        try:
            world.run_until(paused_on_errors("tenant"), limit=2 * DAY)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert server.hits, "the controller never asked the hostile Prometheus"
    state = world.state("tenant")
    assert state.paused == "errors", world.history("tenant")
    assert state.reason is not None
    assert state.reason.kind == "provider-errors"
    assert state.reason.message.startswith(f"{ERROR_LIMIT} consecutive evaluations")
    assert said in state.reason.message
    # paused at the third evaluation: the ticks are 2 h apart once the variants are ready
    assert world.clock.t - T0 <= (ERROR_LIMIT + 2) * 2 * HOUR
    checks = world.get("tenant")["status"]["checks"]
    assert checks
    assert all(said in check["message"] for check in checks.values())
    read = everything_a_tenant_reads(world, "tenant")
    assert SECRET not in read
    assert "hunter2" not in read
    assert [r for r, m in world.events("tenant") if said in m][:1] == ["Paused"]
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB traced"


def test_metrics_name_no_prometheus_url_nor_its_credentials() -> None:
    """Before: ``canary_controller_provider_errors_total{prometheus="http://admin:s3cret@..."}``
    on the unauthenticated ``/metrics``, one series per URL. The controller's ``--prometheus``
    here carries credentials (a canary without ``spec.analysis.prometheus`` uses it); a second
    canary names its own URL."""
    with hostile("forbidden") as server:
        port = server.url.rsplit(":", 1)[1]
        default = f"http://admin:s3cret@127.0.0.1:{port}/internal/admin?ignore="
        own = f"http://127.0.0.1:{port}/tenant-b"
        world = World(T0, own)
        settings = replace(world.settings, default_prometheus=default)
        metrics = ControllerMetrics()
        world.controller = Controller(
            world.kube,
            Reconciler(world.kube, world.catalog, settings),
            lambda u: PrometheusSource(from_url(u, timeout_s=5)),
            world.clock,
            namespaces=[NS],
            default_prometheus=default,
            observer=metrics,
        )
        metrics.attach(world.controller)
        world.create(world_canary("tenant", None, analysis=ANALYSIS))  # uses the default
        world.create(world_canary("tenant-b", own, analysis=ANALYSIS))  # names its own
        both = [paused_on_errors("tenant"), paused_on_errors("tenant-b")]
        world.run_until(lambda w: all(done(w) for done in both), limit=2 * DAY)
        assert {hit.split()[0] for hit in server.hits} == {"POST"}
    assert all(done(world) for done in both)
    text = metrics.exposition()[0].decode()
    for leak in ("s3cret", "admin", f"127.0.0.1:{port}", "internal", "tenant-b/"):
        assert leak not in text
    for source in ("default", "spec"):
        errors = metrics.registry.get_sample_value(
            "canary_controller_provider_errors_total", {"source": source}
        )
        assert errors is not None, source
        assert errors >= ERROR_LIMIT, source
    assert 'canary_controller_provider_errors_total{source="none"} 0.0' in text
    series = [
        line
        for line in text.splitlines()
        if line.startswith("canary_controller_provider_errors_total")
    ]
    assert len(series) == 3  # one per source, whatever the URLs
