"""``canaryctl controller``: run the ModelCanary controller against a cluster.

Owns the command line of the controller and the wiring of its parts: the Kubernetes adapter
(:class:`~controlplane.kube.real.RealKube`), the reconciler and the runner
(:mod:`controlplane.controller`), Prometheus sources, optional leader election on a Lease, and the
``/metrics`` endpoint (``prometheus_client``) that the shipped ServiceMonitor scrapes. SIGTERM and
SIGINT stop it cleanly (the lease is released). Called by :mod:`controlplane.cli.main`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from controlplane.errors import UsageError
from controlplane.spec.units import parse_duration

LEASE_NAME = "canary-controller"


def _seconds(text: str, flag: str) -> float:
    try:
        return parse_duration(text).seconds
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "controller",
        help="run the controller",
        description="Reconcile ModelCanary resources: deploy, shift traffic, analyse, promote or "
        "roll back. Crash-safe (state lives in .status) and HA with --leader-elect.",
    )
    p.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable); default: all namespaces",
    )
    p.add_argument("--prometheus", metavar="URL", help="Prometheus for specs that name none")
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig file (default: in-cluster)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--leader-elect", action="store_true", help="elect one active replica")
    p.add_argument("--lease-namespace", default="canary-system", metavar="NS")
    p.add_argument("--lease-name", default=LEASE_NAME, metavar="NAME")
    p.add_argument("--lease-duration", default="15s", metavar="DURATION")
    p.add_argument("--identity", help="replica identity (default: host name + random suffix)")
    p.add_argument(
        "--interval-override",
        metavar="DURATION",
        help="use this analysis interval for every canary (demos; part of the spec hash)",
    )
    p.add_argument("--progress-deadline", default="30m", metavar="DURATION")
    p.add_argument("--promote-cleanup-delay", default="10m", metavar="DURATION")
    p.add_argument("--rollback-cleanup-delay", default="10m", metavar="DURATION")
    p.add_argument("--tick", default="5s", metavar="DURATION", help="timers align to this grid")
    p.add_argument("--metrics-port", type=int, default=8080, help="0 disables /metrics")
    p.add_argument("--metrics-address", default="0.0.0.0")
    p.add_argument("--once", action="store_true", help="one pass over every canary, then exit")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def settings_from(args: argparse.Namespace) -> Any:
    """The reconciler :class:`~controlplane.controller.reconcile.Settings` of the flags."""
    from controlplane.controller.reconcile import Settings

    override = args.interval_override
    return Settings(
        progress_deadline_s=_seconds(args.progress_deadline, "--progress-deadline"),
        promote_cleanup_s=_seconds(args.promote_cleanup_delay, "--promote-cleanup-delay"),
        rollback_cleanup_s=_seconds(args.rollback_cleanup_delay, "--rollback-cleanup-delay"),
        interval_override_s=None if override is None else _seconds(override, "--interval-override"),
        default_prometheus=args.prometheus,
    )


class StatsCollector:
    """Exposes :class:`~controlplane.controller.runner.Stats` to ``prometheus_client``."""

    def __init__(self, controller: Any) -> None:
        self.controller = controller

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self.controller.stats
        prefix = "canary_controller"
        yield CounterMetricFamily(f"{prefix}_reconciles", "Reconcile attempts", stats.reconciles)
        yield CounterMetricFamily(f"{prefix}_reconcile_errors", "Failed reconciles", stats.errors)
        yield CounterMetricFamily(f"{prefix}_conflicts", "Status write conflicts", stats.conflicts)
        yield CounterMetricFamily(f"{prefix}_analysis_ticks", "Analysis ticks", stats.ticks)
        yield CounterMetricFamily(
            f"{prefix}_analysis_queries", "Metric queries sent", stats.queries_total
        )
        yield GaugeMetricFamily(
            f"{prefix}_last_tick_queries", "Queries of the last tick", stats.last_tick_queries
        )
        yield GaugeMetricFamily(
            f"{prefix}_last_tick_canaries", "Canaries of the last tick", stats.last_tick_canaries
        )
        yield GaugeMetricFamily(f"{prefix}_leader", "1 while leading", 1 if stats.leader else 0)


def build(args: argparse.Namespace, kube: Any, clock: Any = time.time) -> Any:
    """The :class:`~controlplane.controller.runner.Controller` of the flags, on ``kube``."""
    from controlplane.analysis.providers.prometheus import from_url
    from controlplane.controller.batch import PrometheusSource
    from controlplane.controller.reconcile import Reconciler
    from controlplane.controller.runner import Controller
    from controlplane.kube.lease import LeaderElector
    from controlplane.profiles.catalog import load_catalog

    settings = settings_from(args)
    elector = None
    if args.leader_elect:
        identity = args.identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        elector = LeaderElector(
            kube,
            args.lease_namespace,
            args.lease_name,
            identity,
            _seconds(args.lease_duration, "--lease-duration"),
            clock,
        )
    return Controller(
        kube,
        Reconciler(kube, load_catalog(), settings),
        lambda url: PrometheusSource(from_url(url)),
        clock,
        namespaces=args.namespace or [None],
        elector=elector,
        grid_s=_seconds(args.tick, "--tick"),
        default_prometheus=args.prometheus,
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings_from(args)  # flag errors before connecting
    from controlplane.kube.real import RealKube

    kube = RealKube.connect(kubeconfig=args.kubeconfig, context=args.context)
    controller = build(args, kube)
    if args.once:
        controller.poll(5.0)
        controller.run_once()
        return 0
    if args.metrics_port:
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry()
        registry.register(StatsCollector(controller))
        start_http_server(args.metrics_port, addr=args.metrics_address, registry=registry)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    controller.run(stop)
    return 0
