"""``canaryctl controller``: run the ModelCanary controller against a cluster.

Owns the controller's command line and the wiring of its parts: the Kubernetes adapter, the
reconciler and runner, Prometheus sources, leader election, the metrics, the HTTP API on one port
(uvicorn on a thread beside the loop) and the allowed endpoints (:func:`endpoints_from`). SIGTERM
and SIGINT stop it cleanly. See docs/controller.md and docs/install.md.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from controlplane.errors import UsageError
from controlplane.providers.logsafety import quiet_http_loggers
from controlplane.serving.startup import CRASH_LOOP_RESTARTS
from controlplane.spec.units import parse_duration

LEASE_NAME = "canary-controller"
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def _seconds(text: str, flag: str) -> float:
    try:
        return parse_duration(text).seconds
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _restarts(text: str) -> int:
    """``--crash-loop-restarts``: a whole number, at least 1."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of restarts, 1 or more")
    return count


class DefaultsShown(argparse.HelpFormatter):
    """``--help`` with each flag's default, as ``ArgumentDefaultsHelpFormatter`` shows it, but
    only where there is one to show (not for None, an empty list or an off switch) and the
    help text does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            default in (None, [], False, argparse.SUPPRESS)
            or "default" in text
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "controller",
        help="run the controller",
        description="Reconcile ModelCanary resources: deploy, shift traffic, analyse, promote or "
        "roll back. Crash-safe (state lives in .status) and HA with --leader-elect.",
        formatter_class=DefaultsShown,
    )
    p.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable); default: all namespaces",
    )
    p.add_argument(
        "--prometheus",
        metavar="URL",
        help="Prometheus for specs that name none (spec.analysis.prometheus); always allowed",
    )
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig file (default: in-cluster)")
    p.add_argument(
        "--context", metavar="NAME", help="kubeconfig context (default: the current one)"
    )
    p.add_argument(
        "--leader-elect",
        action="store_true",
        help="elect one active replica through a Lease (run several for HA)",
    )
    p.add_argument(
        "--lease-namespace",
        default="canary-system",
        metavar="NS",
        help="namespace of the leader-election Lease",
    )
    p.add_argument(
        "--lease-name", default=LEASE_NAME, metavar="NAME", help="name of the leader-election Lease"
    )
    p.add_argument(
        "--lease-duration",
        default="15s",
        metavar="DURATION",
        help="how long a leader's Lease holds without renewal before another replica takes over",
    )
    p.add_argument("--identity", help="replica identity (default: host name + random suffix)")
    p.add_argument(
        "--interval-override",
        metavar="DURATION",
        help="use this analysis interval for every canary (demos; part of the spec hash)",
    )
    p.add_argument(
        "--progress-deadline",
        default="30m",
        metavar="DURATION",
        help="roll back a candidate not ready this long after the rollout started (two "
        "analysis intervals if shorter while it takes traffic), or a step whose weights the "
        "router has not put in effect this long",
    )
    p.add_argument(
        "--pairer-image",
        default=None,
        metavar="IMAGE",
        help="the image of the quality judge's pairer beside a canary with spec.quality: this "
        "controller's own (the chart sets it); without it such a canary cannot be deployed",
    )
    p.add_argument(
        "--crash-loop-restarts",
        type=_restarts,
        default=CRASH_LOOP_RESTARTS,
        metavar="N",
        help="roll back at once, not at the deadline, a candidate that is not ready while a "
        "container of its pods has restarted N times in a crash loop (default %(default)s), "
        "or whose image does not exist",
    )
    p.add_argument(
        "--promote-cleanup-delay",
        default="10m",
        metavar="DURATION",
        help="after a promotion, keep the old stable this long before releasing it",
    )
    p.add_argument(
        "--rollback-cleanup-delay",
        default="10m",
        metavar="DURATION",
        help="after a rollback, keep the candidate this long before releasing it",
    )
    p.add_argument("--tick", default="5s", metavar="DURATION", help="timers align to this grid")
    p.add_argument(
        "--api-port",
        "--metrics-port",
        dest="api_port",
        type=int,
        default=8080,
        metavar="PORT",
        help="port of the HTTP API, /metrics, /healthz and /readyz (0 disables them)",
    )
    p.add_argument(
        "--api-address",
        "--metrics-address",
        dest="api_address",
        default="0.0.0.0",
        metavar="ADDRESS",
        help="address the HTTP API listens on",
    )
    p.add_argument(
        "--api-token-file",
        metavar="FILE",
        help="a static bearer token that may do everything (local stack; a mounted Secret key)",
    )
    p.add_argument(
        "--api-token-review",
        choices=["on", "off"],
        default="on",
        help="check other bearer tokens with TokenReview and SubjectAccessReview",
    )
    p.add_argument(
        "--api-max-body",
        type=_body_bytes,
        default=None,
        metavar="BYTES",
        help="largest request body the API reads, in bytes (default 1 MiB; larger: 413)",
    )
    p.add_argument(
        "--api-auth-cache",
        default="10s",
        metavar="DURATION",
        help="how long token and access reviews are remembered",
    )
    p.add_argument(
        "--alert-canary-label",
        default="canary",
        metavar="LABEL",
        help="alert label naming the canary (Alertmanager receiver)",
    )
    p.add_argument(
        "--alert-namespace-label",
        default="namespace",
        metavar="LABEL",
        help="alert label naming the canary's namespace (Alertmanager receiver)",
    )
    p.add_argument(
        "--git-webhook-secret-file",
        metavar="FILE",
        help="GitHub webhook secret / GitLab token that push webhooks must carry",
    )
    p.add_argument(
        "--grafana-url",
        metavar="URL",
        help="Grafana base URL: alerts link to the rollout dashboard there",
    )
    p.add_argument(
        "--argo-server",
        metavar="URL",
        help="Argo Server that runs the specs' gates (spec.gates[].argoServer overrides it)",
    )
    p.add_argument(
        "--argo-token-file",
        default=SERVICE_ACCOUNT_TOKEN,
        metavar="FILE",
        help="bearer token for the Argo Server, re-read on every call (default: the pod's "
        "service-account token); sent only to --argo-server and --allow-argo-server",
    )
    p.add_argument(
        "--allow-prometheus",
        action="append",
        default=[],
        metavar="URL",
        help="a Prometheus a spec's analysis.prometheus may name: this URL or below its path "
        "(repeatable); --prometheus is always allowed, nothing else by default",
    )
    p.add_argument(
        "--allow-argo-server",
        action="append",
        default=[],
        metavar="URL",
        help="an Argo Server a spec's gates[].argoServer may name, which then gets the "
        "controller's token (repeatable); --argo-server is always allowed, nothing else by default",
    )
    p.add_argument(
        "--allow-alert-url",
        action="append",
        default=[],
        metavar="URL",
        help="a URL (or prefix) a spec's alerts[].webhook.url / alertmanager.url may name "
        "(repeatable); none by default",
    )
    from controlplane.gitops.options import add_arguments as add_git_arguments

    add_git_arguments(p)
    p.add_argument("--once", action="store_true", help="one pass over every canary, then exit")
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="INFO logs each rollout transition (step started, advanced, promoted, rolled back)",
    )


def endpoints_from(args: argparse.Namespace) -> Any:
    """The :class:`~controlplane.spec.endpoints.EndpointPolicy` of ``--allow-prometheus``,
    ``--allow-argo-server`` and ``--allow-alert-url`` (each a URL or a path prefix), with the
    controller's own ``--prometheus`` and ``--argo-server`` allowed exactly. A malformed entry
    (not http(s), credentials, a dot segment) is a :class:`UsageError`."""
    from controlplane.spec.endpoints import EndpointPolicy, entry_problem

    def allowed(flag: str, urls: Sequence[str] | None) -> tuple[str, ...]:
        for url in urls or ():
            problem = entry_problem(url)
            if problem is not None:
                raise UsageError(f"{flag} {url!r}: {problem}")
        return tuple(urls or ())

    return EndpointPolicy(
        prometheus=allowed("--allow-prometheus", args.allow_prometheus),
        argo=allowed("--allow-argo-server", args.allow_argo_server),
        alerts=allowed("--allow-alert-url", args.allow_alert_url),
        own_prometheus=args.prometheus or None,
        own_argo=args.argo_server or None,
    )


def _body_bytes(text: str) -> int:
    """``--api-max-body``: a whole number of bytes, at least 1 KiB."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of bytes: {text!r}") from None
    if value < 1024:
        raise argparse.ArgumentTypeError(f"at least 1024 bytes, not {value}")
    return value


def settings_from(args: argparse.Namespace) -> Any:
    """The reconciler :class:`~controlplane.controller.reconcile.Settings` of the flags."""
    from controlplane.controller.reconcile import Settings

    override = args.interval_override
    return Settings(
        progress_deadline_s=_seconds(args.progress_deadline, "--progress-deadline"),
        crash_loop_restarts=args.crash_loop_restarts,
        promote_cleanup_s=_seconds(args.promote_cleanup_delay, "--promote-cleanup-delay"),
        rollback_cleanup_s=_seconds(args.rollback_cleanup_delay, "--rollback-cleanup-delay"),
        interval_override_s=None if override is None else _seconds(override, "--interval-override"),
        default_prometheus=args.prometheus,
        endpoints=endpoints_from(args),
        pairer_image=args.pairer_image,
    )


class FanOut:
    """One :class:`~controlplane.controller.event_sink.Notifier` telling several, in order; one
    that fails is logged and does not keep the others from being told."""

    def __init__(self, notifiers: Sequence[Any]) -> None:
        self.notifiers = list(notifiers)

    def notify(self, obj: Any, canary: Any, state: Any, event: Any) -> None:
        for notifier in self.notifiers:
            try:
                notifier.notify(obj, canary, state, event)
            except Exception:
                logging.getLogger(__name__).exception("notifier %r failed", notifier)


def build(
    args: argparse.Namespace,
    kube: Any,
    clock: Any = time.time,
    *,
    metrics: Any = None,
    notifiers: Sequence[Any] = (),
) -> Any:
    """The :class:`~controlplane.controller.runner.Controller` of the flags, on ``kube``.

    ``metrics`` (a :class:`~controlplane.controller.metrics.ControllerMetrics`) observes the
    analysis, is told of every rollout event and is attached to the controller; ``notifiers``
    are told of every rollout event too (alerts).
    """
    from controlplane.controller.reconcile import Reconciler
    from controlplane.controller.runner import Controller
    from controlplane.kube.lease import LeaderElector
    from controlplane.profiles.catalog import load_catalog
    from controlplane.providers.prometheus import from_url
    from controlplane.providers.source import PrometheusSource

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
    told = [n for n in (metrics, *notifiers) if n is not None]
    notifier = FanOut(told) if told else None
    controller = Controller(
        kube,
        Reconciler(kube, load_catalog(), settings, notifier=notifier, gates=gates_from(args)),
        lambda url: PrometheusSource(from_url(url)),
        clock,
        namespaces=args.namespace or [None],
        elector=elector,
        grid_s=_seconds(args.tick, "--tick"),
        default_prometheus=args.prometheus,
        observer=metrics,
    )
    if metrics is not None:
        metrics.attach(controller)
    return controller


def _token_reader(path: str) -> Callable[[], str | None]:
    def read() -> str | None:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip() or None
        except OSError:
            return None

    return read


def gates_from(args: argparse.Namespace) -> Any:
    """The :class:`~controlplane.controller.argo_gates.ArgoGates` of ``--argo-server`` (a gate's own
    ``argoServer`` overrides it when ``--allow-argo-server`` allows it; with neither, that gated
    canary pauses and says why). The token goes to those servers only."""
    from controlplane.controller.argo_gates import ArgoGates

    return ArgoGates(
        args.argo_server or None,
        token=_token_reader(args.argo_token_file),
        endpoints=endpoints_from(args),
    )


def api_app(
    args: argparse.Namespace,
    kube: Any,
    controller: Any,
    metrics: Any,
    *,
    on_git_push: Callable[[], None] | None = None,
) -> Any:
    """The HTTP API (:func:`controlplane.api.app.create_app`) of the flags, for ``controller``."""
    from controlplane.api.alertmanager import AlertLabels
    from controlplane.api.app import create_app
    from controlplane.api.auth import Authenticator, read_token_file
    from controlplane.api.config import ApiConfig

    token = read_token_file(args.api_token_file) if args.api_token_file else None
    review = args.api_token_review == "on"
    if token is None and not review:
        raise UsageError("--api-token-review=off needs --api-token-file (or --api-port=0)")
    secret = read_token_file(args.git_webhook_secret_file) if args.git_webhook_secret_file else None
    auth = Authenticator(
        static_token=token,
        kube=kube if review else None,
        ttl_s=_seconds(args.api_auth_cache, "--api-auth-cache"),
    )
    return create_app(
        ApiConfig(
            kube=kube,
            auth=auth,
            wake=controller.wake,
            ready=controller.ready,
            metrics=metrics.exposition,
            on_git_push=on_git_push,
            git_secret=secret,
            alert_labels=AlertLabels(args.alert_canary_label, args.alert_namespace_label),
            namespaces=tuple(args.namespace) or None,
            **({} if args.api_max_body is None else {"max_body_bytes": args.api_max_body}),
        )
    )


def run(args: argparse.Namespace, kube: Any = None) -> int:
    """Run the controller until SIGTERM/SIGINT (or one pass with ``--once``) on ``kube``
    (default: the cluster of ``--kubeconfig``/``--context``, or the in-cluster config)."""
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet_http_loggers()  # httpx logs a Slack webhook's URL at INFO: a secret
    settings_from(args)  # flag errors before connecting
    _seconds(args.api_auth_cache, "--api-auth-cache")
    from controlplane.api.auth import read_token_file

    for path in (args.api_token_file, args.git_webhook_secret_file):
        if path and args.api_port:
            read_token_file(path)
    from controlplane.api.server import ApiServer
    from controlplane.controller.metrics import ControllerMetrics
    from controlplane.gitops.options import build as build_git
    from controlplane.kube.real import RealKube
    from controlplane.notify import AlertNotifier, NotifySettings

    if kube is None:
        kube = RealKube.connect(kubeconfig=args.kubeconfig, context=args.context)
    metrics = ControllerMetrics()
    alerts = AlertNotifier(
        kube, NotifySettings(grafana_url=args.grafana_url), registry=metrics.registry
    )
    git = build_git(args, kube)
    if git.source is not None and args.namespace:
        git.source.namespaces = tuple(args.namespace)  # a namespaced Role lists only these
    controller = build(args, kube, metrics=metrics, notifiers=[alerts, git.write_back])
    if args.once:
        try:
            for ns in controller.namespaces:  # a list, not a watch: nothing to wait for
                controller.sync(ns)
            controller.run_once()
        finally:
            alerts.close(10.0)
            git.close()
        return 0
    server = None
    if args.api_port:
        app = api_app(args, kube, controller, metrics, on_git_push=git.on_git_push)
        server = ApiServer(app, args.api_address, args.api_port).start()
        logging.getLogger(__name__).info("API, /metrics and health on %s", server.url)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    git.start(stop, args.namespace or [None])
    try:
        controller.run(stop)
    finally:
        if server is not None:
            server.stop()
        alerts.close(10.0)
        git.close()
    return 0
