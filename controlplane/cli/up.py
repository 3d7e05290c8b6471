"""``canaryctl up FILE [--time-scale N] [--load RPS] [--inject R.K=V]... [--dashboard[=PORT]]``

Runs a canary end to end on this machine, no cluster, with every duration divided by
``--time-scale``, and prints the outcome, its exit code (:func:`exit_code`) and the GPUs of the run
(:func:`capacity_line`); ``--dashboard`` serves it through the controller's API. A thin shell over
:func:`controlplane.local.stack.run_up`. See docs/local.md.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import math
import secrets
import signal
from dataclasses import dataclass

from rich.console import Console

from controlplane.analysis.metric_provider import MetricProvider
from controlplane.api.local_source import LocalSource
from controlplane.api.server import ApiServer
from controlplane.cli.exits import replay_exit
from controlplane.errors import UsageError
from controlplane.local.display import LiveDisplay, LogDisplay, ProgressDisplay
from controlplane.local.engines import ENGINE_KINDS
from controlplane.local.inject import parse_injections
from controlplane.local.stack import UpConfig, UpResult, run_up
from controlplane.local.timescale import scale_canary
from controlplane.local.watcher import RunWatcher
from controlplane.profiles.catalog import load_catalog
from controlplane.simulation import SimulationResult
from controlplane.spec.models import ModelCanary
from controlplane.spec.units import format_duration, parse_duration
from controlplane.validation import validated_file


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "up",
        help="run a canary end to end on this machine",
        description="Run a canary end to end on this machine: local model servers, a router, "
        "a real Prometheus and a load generator, driven by the controller's state machine. "
        "Durations are divided by --time-scale so a four-week schedule runs in minutes.",
    )
    parser.add_argument("file", metavar="FILE", help="a canary.yml (one ModelCanary)")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="N",
        help="divide every duration of the spec by N (default 1)",
    )
    parser.add_argument(
        "--load",
        type=float,
        default=10.0,
        metavar="RPS",
        help="requests per second sent through the router (default 10)",
    )
    parser.add_argument(
        "--inject",
        action="append",
        default=[],
        metavar="ROLE.KIND=VALUE",
        help="fault injection, e.g. candidate.latency=+300ms or candidate.errors=2%% (repeatable)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINE_KINDS,
        default="simulated",
        help="what answers requests (default: simulated, no model runs)",
    )
    parser.add_argument(
        "--scrape-interval",
        default="1s",
        metavar="DURATION",
        help="Prometheus scrape interval (default 1s); query windows are at least 4 of them",
    )
    parser.add_argument(
        "--max-time",
        default=None,
        metavar="DURATION",
        help="stop after this much wall-clock time even without an outcome (e.g. 5m)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of every random draw")
    parser.add_argument(
        "--plot", default=None, metavar="FILE.png", help="draw weight and checked metrics"
    )
    parser.add_argument(
        "--profiles", default=None, metavar="PATH", help="GPU catalogue (default: packaged)"
    )
    parser.add_argument(
        "--dashboard",
        nargs="?",
        type=int,
        const=DASHBOARD_PORT,
        default=None,
        metavar="PORT",
        help=f"serve the dashboard of the run on 127.0.0.1:PORT (default {DASHBOARD_PORT}; "
        "write --dashboard=PORT)",
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")


DASHBOARD_PORT = 3100


def _duration(raw: str | None, flag: str) -> float | None:
    if raw is None:
        return None
    try:
        seconds = parse_duration(raw).seconds
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    if seconds <= 0:
        raise UsageError(f"{flag} must be positive")
    return seconds


def _load(path: str) -> ModelCanary:
    canaries = validated_file(path)
    if len(canaries) != 1:
        raise UsageError(f"{path} holds {len(canaries)} ModelCanary documents; `up` runs one")
    canary = canaries[0]
    ref = canary.spec.stable.target_ref
    if ref is not None:
        raise UsageError(
            f"{path}: spec.stable.targetRef: `up` serves both variants on this machine, and this "
            f"stable is the {ref.kind} {ref.name!r} of a cluster: write the stable out "
            "(storageUri, gpu, ...) to run it here"
        )
    return canary


def config_from_args(args: argparse.Namespace, canary: ModelCanary) -> UpConfig:
    if not (math.isfinite(args.time_scale) and args.time_scale > 0):
        raise UsageError("--time-scale must be a positive number")
    if not (math.isfinite(args.load) and args.load >= 0):
        raise UsageError("--load must be a non-negative number of requests per second")
    names = {canary.spec.stable.name: "stable", canary.spec.candidate.name: "candidate"}
    scrape = _duration(args.scrape_interval, "--scrape-interval")
    assert scrape is not None
    return UpConfig(
        time_scale=args.time_scale,
        load_rps=args.load,
        faults=parse_injections(args.inject, names),
        engine=args.engine,
        scrape_interval=scrape,
        max_time_s=_duration(args.max_time, "--max-time"),
        seed=args.seed,
    )


def outcome_line(result: UpResult) -> str:
    """The one line that says how the run ended, and why."""
    from controlplane.rollout.wording import inconclusive_now

    state, spec = result.state, result.canary.spec
    engine = f"[{result.engine} engine]"
    took = f"{result.elapsed_s:.0f}s"
    spent = state.history[-1].time - state.started_at if state.history else 0.0
    spec_time = format_duration(round(spent * result.scaling.factor))
    if result.outcome == "promoted":
        return (
            f"PROMOTED: {spec.candidate.name} ({spec.candidate.quantization}) replaces "
            f"{spec.stable.name} after {len(spec.steps)} steps, in {took} "
            f"(spec time {spec_time}) {engine}"
        )
    if result.outcome == "rolled_back":
        why = state.reason.message if state.reason is not None else "no reason recorded"
        return (
            f"ROLLED BACK at step {state.step} (weight was "
            f"{spec.steps[max(state.step_index, 0)].weight}%): {why} {engine}"
        )
    if result.outcome == "interrupted":
        return f"INTERRUPTED at step {state.step} (weight {state.weight}%) after {took} {engine}"
    why = f": {state.reason.message}" if state.reason is not None else ""
    held = inconclusive_now(state)
    if held is not None and state.reason is None:
        why = f": checks inconclusive: {held}"
    return f"NO OUTCOME after {took}: {state.phase} at step {state.step}{why} {engine}"


def capacity_line(result: UpResult) -> str | None:
    """The GPUs of the run in one line: peak (and budget), GPU-hours in spec time against both
    variants at full size for as long; None when the rollout never ran."""
    report = result.capacity
    if report is None or report.spec_hours <= 0:
        return None
    how = "replicas followed the plan" if report.planned else "fixed replicas"
    budget = f" of a {report.budget_gpus}-GPU budget" if report.budget_gpus is not None else ""
    full = report.full_size
    share = report.gpu_hours / report.full_size_gpu_hours if report.full_size_gpu_hours else 0.0
    spec_time = format_duration(round(report.spec_hours * 3600))
    return (
        f"GPUs ({how}): peak {report.peak_gpus}{budget}; {report.gpu_hours:,.1f} GPU-hours over "
        f"{spec_time} of spec time, against {report.full_size_gpu_hours:,.1f} with both variants "
        f"at full size (stable {full.stable} + candidate {full.candidate} replicas, "
        f"{report.full_size_gpus} GPUs): {share:.0%}"
    )


async def _main(
    args: argparse.Namespace,
    canary: ModelCanary,
    config: UpConfig,
    console: Console,
    display: ProgressDisplay,
    watcher: RunWatcher | None = None,
) -> UpResult:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    plot = None
    if args.plot:
        from controlplane.cli.plot import plot_result

        path = args.plot

        def plot(run: SimulationResult, provider: MetricProvider) -> object:
            return plot_result(run, provider, path, time_scale=config.time_scale)

    try:
        return await run_up(
            canary, config, display, stop, load_catalog(args.profiles), plot, watcher
        )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    canary = _load(args.file)
    config = config_from_args(args, canary)
    as_json = args.output == "json"
    console = Console(stderr=as_json)
    display: ProgressDisplay = (
        LiveDisplay(console) if console.is_terminal and not as_json else LogDisplay(console)
    )
    dashboard = None
    if args.dashboard is not None:  # --dashboard=0: any free port
        dashboard = serve_dashboard(canary, config, args.dashboard)
    if dashboard is not None:
        console.print(f"dashboard: {dashboard.url}", markup=False, highlight=False, soft_wrap=True)
    try:
        watcher = dashboard.source if dashboard is not None else None
        result = asyncio.run(_main(args, canary, config, console, display, watcher))
    finally:
        if dashboard is not None:
            dashboard.stop()
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    console.print(outcome_line(result), markup=False, highlight=False, soft_wrap=True)
    gpus = capacity_line(result)
    if gpus is not None:
        console.print(gpus, markup=False, highlight=False, soft_wrap=True)
    if args.plot and result.outcome != "interrupted":
        console.print(f"plot written to {args.plot}", markup=False)
    return exit_code(result.outcome)


@dataclass
class Dashboard:
    """The dashboard of a run: its server, the URL with the token, the run's source."""

    server: ApiServer
    url: str
    source: LocalSource

    def stop(self) -> None:
        self.server.stop()


def serve_dashboard(canary: ModelCanary, config: UpConfig, port: int) -> Dashboard:
    """Serve the run of ``canary`` on 127.0.0.1:``port`` (0: any free port)."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--dashboard: the port must be within 0..65535, got {port}")
    from controlplane.api.app import create_app
    from controlplane.api.auth import Authenticator
    from controlplane.api.config import ApiConfig

    scaled, _ = scale_canary(canary, config.time_scale, config.scrape_interval)
    source = LocalSource(scaled, config.time_scale)
    token = secrets.token_urlsafe(32)
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "local"
    app = create_app(
        ApiConfig(
            kube=None,
            auth=Authenticator(static_token=token, static_user=user),
            source=source,
            mode="local",
            namespaces=(canary.metadata.namespace,),
        )
    )
    server = ApiServer(app, "127.0.0.1", port).start()
    return Dashboard(server, f"{server.url}/dashboard/#token={token}", source)


def exit_code(outcome: str) -> int:
    """0 promoted, 5 rolled back (as ``status`` and ``simulate``), 130 interrupted, 1 without an
    outcome (``--max-time`` reached, paused)."""
    if outcome == "interrupted":
        return 130
    if outcome in ("promoted", "rolled_back"):
        return replay_exit(outcome)
    return 1
