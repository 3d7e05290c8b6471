"""``kubectl canary dashboard [-n NS | -A] [--address A] [--port P] [--no-browser]``.

Owns the ``dashboard`` verb: the controller's HTTP API and pages served in this process with the
user's own kubeconfig, so the API server's RBAC decides what the user sees and may do, guarded by
a random token in the URL's fragment. :func:`start` serves without waiting (tests). See
docs/cli.md, "``dashboard``".
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from controlplane.cli import cluster
from controlplane.errors import KubeError, UsageError

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 3100
"""The port ``kubectl argo rollouts dashboard`` serves on, too."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "dashboard",
        help="serve the dashboard on this machine with your kubeconfig",
        description="Serve the canary dashboard (and the controller's HTTP API) on this "
        "machine, reading and acting with your own kubeconfig: what you see and may do is what "
        "your RBAC allows. Prints the URL (with a one-time token) and opens a browser.",
    )
    cluster.add_cluster_args(parser, all_namespaces=True)
    parser.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        metavar="ADDR",
        help=f"address to listen on (default {DEFAULT_ADDRESS}: this machine only)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        metavar="PORT",
        help=f"port to listen on (default {DEFAULT_PORT}; 0: any free port)",
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="print the URL only; do not open a browser"
    )


@dataclass
class Served:
    """A dashboard being served: its server and the URL to open (with the token)."""

    server: Any
    url: str
    user: str

    def stop(self) -> None:
        self.server.stop()


def page_url(base: str, token: str) -> str:
    """The dashboard's address with the token in the fragment."""
    return f"{base}/dashboard/#token={token}"


def whoami(kube: Any, fallback: str) -> str:
    """The user the API server says the kubeconfig's credentials are (SelfSubjectReview), else
    ``fallback``."""
    try:
        answer = kube.create(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
    except KubeError:
        return fallback
    user = ((answer.get("status") or {}).get("userInfo") or {}).get("username")
    return user if isinstance(user, str) and user else fallback


def start(args: argparse.Namespace) -> Served:
    """Serve the dashboard of ``args`` (returns once it listens)."""
    from controlplane.api.app import create_app
    from controlplane.api.auth import Authenticator
    from controlplane.api.config import ApiConfig
    from controlplane.api.server import ApiServer

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be within 0..65535, got {args.port}")
    namespace = cluster.list_namespace(args)
    kube = cluster.connect(args)
    user = whoami(kube, cluster.user_of(args))
    token = secrets.token_urlsafe(32)
    app = create_app(
        ApiConfig(
            kube=kube,
            auth=Authenticator(static_token=token, static_user=user),
            mode="kubeconfig",
            namespaces=None if namespace is None else (namespace,),
        )
    )
    server = ApiServer(app, args.address, args.port).start()
    return Served(server, page_url(server.url, token), user)


def run(args: argparse.Namespace) -> int:
    served = start(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    namespace = cluster.list_namespace(args)
    where = "every namespace" if namespace is None else f"namespace {namespace!r}"
    print(f"Dashboard of {where} as {served.user}: {served.url}", flush=True)
    print("(the token in the URL is this run's; Ctrl-C to stop)", file=sys.stderr, flush=True)
    if not args.no_browser:
        import webbrowser

        with contextlib.suppress(webbrowser.Error):  # no browser here: the URL is printed
            webbrowser.open(served.url)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        served.stop()
    return 0
