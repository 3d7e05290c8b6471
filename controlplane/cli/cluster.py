"""How the cluster verbs of ``kubectl canary`` reach a cluster, and the seams tests replace.

Owns the shared connection flags, namespace resolution (the flag, the context's namespace, else
``default``), the user recorded with an intent, and :class:`Runtime` (client, clock, terminal,
environment), which tests replace with a FakeKube and a fake clock. The kubeconfig is read here
only for the namespace and user, merged as ``kubectl`` merges ``KUBECONFIG``; connecting is
:meth:`controlplane.kube.real.RealKube.connect`'s. See docs/cli.md, "Flags every cluster
verb takes".
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controlplane.errors import KubeError, UsageError
from controlplane.spec.units import parse_duration

if TYPE_CHECKING:  # imported where used: every verb builds a Runtime, few draw
    from rich.console import Console

    from controlplane.kube.client import KubeClient

COMPONENT = "kubectl-canary"


PIPE_WIDTH = 160
"""The width of a view printed to a pipe or a file (a terminal's own width otherwise): our own
choice, no upstream value; wide enough for ``get``'s object tree and Events on one line each
(``COLUMNS`` overrides it, as rich reads it)."""


@dataclass
class Runtime:
    """The outside world of a cluster verb.

    ``kube``: a client to use instead of connecting (tests pass a FakeKube). ``clock``: unix
    seconds now. ``poll_s``: the longest a watch waits before the view is redrawn and the deadline
    checked. ``console``: where the rich view goes (default: stdout, colour when a terminal).
    ``user``: who is recorded with an intent (default: the kubeconfig user, else the OS user).
    ``environ``: the environment (``KUBECONFIG``, ``HOME``).
    """

    kube: KubeClient | None = None
    clock: Callable[[], float] = time.time
    poll_s: float = 1.0
    console: Console | None = None
    user: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def terminal(self) -> Console:
        """The console the views are printed on. Piped or redirected (no terminal, no
        ``COLUMNS``), it is :data:`PIPE_WIDTH` wide rather than rich's 80, so that ``get > file``
        keeps the object tree's and the Events' columns on one line as ``kubectl`` does."""
        if self.console is None:
            from rich.console import Console

            console = Console()
            if not console.is_terminal and "COLUMNS" not in self.environ:
                console.width = PIPE_WIDTH
            self.console = console
        return self.console


def add_cluster_args(parser: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    """The connection flags every cluster verb takes."""
    group = parser.add_argument_group("cluster")
    group.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)",
    )
    group.add_argument("--context", metavar="NAME", help="kubeconfig context (default: current)")
    group.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        help="namespace (default: the context's namespace, else default)",
    )
    if all_namespaces:
        group.add_argument(
            "-A", "--all-namespaces", action="store_true", help="list across all namespaces"
        )


def runtime_of(args: argparse.Namespace) -> Runtime:
    """The runtime :func:`controlplane.cli.main.main` attached to ``args`` (a fresh one if none)."""
    found = getattr(args, "runtime", None)
    return found if isinstance(found, Runtime) else Runtime()


def _check_context(args: argparse.Namespace, runtime: Runtime) -> None:
    """``--context`` names a context of the kubeconfig (when one can be read)."""
    context = getattr(args, "context", None)
    if context:
        paths = kubeconfig_paths(getattr(args, "kubeconfig", None), runtime.environ)
        known = context_names(paths)
        if known is not None and context not in known:
            where = os.pathsep.join(str(p) for p in paths)
            raise KubeError(
                f"context {context!r} is not in the kubeconfig ({where}); "
                f"its contexts: {', '.join(sorted(known)) or 'none'}"
            )


def connect(args: argparse.Namespace) -> KubeClient:
    """The runtime's client, or a real one from ``--kubeconfig`` / ``--context``."""
    runtime = runtime_of(args)
    if runtime.kube is not None:
        return runtime.kube
    _check_context(args, runtime)
    from controlplane.kube.real import RealKube  # the kubernetes client loads only when needed
    from controlplane.providers.logsafety import quiet_http_loggers

    quiet_http_loggers()  # urllib3 logs each request's path at DEBUG (idempotent)

    return RealKube.connect(
        kubeconfig=args.kubeconfig, context=args.context, in_cluster=None, component=COMPONENT
    )


@dataclass(frozen=True)
class ContextInfo:
    """What the kubeconfig says about the context in use (all None when unknown)."""

    name: str | None = None
    namespace: str | None = None
    user: str | None = None


def kubeconfig_paths(explicit: str | None, environ: Mapping[str, str]) -> list[Path]:
    """``--kubeconfig``, else the ``KUBECONFIG`` list, else ``~/.kube/config``."""
    if explicit:
        return [Path(explicit)]
    listed = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return [Path(p) for p in listed]
    home = environ.get("HOME")
    return [Path(home) / ".kube" / "config"] if home else []


def _merged(paths: list[Path]) -> tuple[bool, str | None, dict[str, Mapping[str, Any]]]:
    """Whether any file was readable, the current context and the contexts by name, merged
    as kubectl merges them (the first file that sets a value wins).

    Unreadable or malformed files are skipped: connecting reports them properly.
    """
    readable = False
    current: str | None = None
    contexts: dict[str, Mapping[str, Any]] = {}
    for path in paths:
        data = _read_yaml(path)
        if not isinstance(data, Mapping):
            continue
        readable = True
        if current is None and isinstance(data.get("current-context"), str):
            current = data["current-context"] or None
        for entry in data.get("contexts") or []:
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                body = entry.get("context")
                contexts.setdefault(entry["name"], body if isinstance(body, Mapping) else {})
    return readable, current, contexts


def context_names(paths: list[Path]) -> set[str] | None:
    """The contexts the merged kubeconfig defines (None when no file could be read)."""
    readable, _current, contexts = _merged(paths)
    return set(contexts) if readable else None


def context_info(paths: list[Path], context: str | None) -> ContextInfo:
    """The context ``context`` (the current one when None) as the merged kubeconfig defines it."""
    _readable, current, contexts = _merged(paths)
    name = context or current
    if name is None:
        return ContextInfo()
    body = contexts.get(name, {})
    namespace, user = body.get("namespace"), body.get("user")
    return ContextInfo(
        name=name,
        namespace=namespace if isinstance(namespace, str) and namespace else None,
        user=user if isinstance(user, str) and user else None,
    )


def _read_yaml(path: Path) -> Any:
    """The kubeconfig at ``path`` as the Kubernetes client reads it (PyYAML's safe loader,
    ``kubernetes/config/kube_config.py``), or None when it cannot be read or parsed."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError:
        return None


def _context(args: argparse.Namespace) -> ContextInfo:
    runtime = runtime_of(args)
    paths = kubeconfig_paths(getattr(args, "kubeconfig", None), runtime.environ)
    return context_info(paths, getattr(args, "context", None))


def namespace_of(args: argparse.Namespace) -> str:
    """``-n``, else the context's namespace, else ``default``."""
    given = getattr(args, "namespace", None)
    if given:
        return str(given)
    return _context(args).namespace or "default"


def list_namespace(args: argparse.Namespace) -> str | None:
    """The namespace to list (None with ``-A``); ``-A`` and ``-n`` together are a usage error."""
    if getattr(args, "all_namespaces", False):
        if getattr(args, "namespace", None):
            raise UsageError("-A/--all-namespaces and -n/--namespace exclude each other")
        return None
    return namespace_of(args)


def user_of(args: argparse.Namespace) -> str:
    """Who records an intent: the runtime's user, the kubeconfig user, else the OS user."""
    runtime = runtime_of(args)
    if runtime.user is not None:
        return runtime.user
    found = _context(args).user
    if found:
        return found
    import getpass  # here: only an intent records a user

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


def parse_timeout(text: str | None) -> float | None:
    """``--timeout 30s`` / ``5m`` as seconds (None when not given); a usage error otherwise."""
    if text is None:
        return None
    try:
        seconds = parse_duration(text).seconds
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from None
    if seconds <= 0:
        raise UsageError("--timeout must be longer than 0 (e.g. 30s, 5m)")
    return seconds
