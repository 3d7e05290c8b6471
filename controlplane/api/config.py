"""What the process serving the HTTP API gives it.

Owns :class:`ApiConfig`, the one argument of :func:`controlplane.api.app.create_app`. Built by
``canaryctl controller`` (:mod:`controlplane.cli.controller`), ``kubectl canary dashboard``
(:mod:`controlplane.cli.dashboard`), ``canaryctl up --dashboard`` (:mod:`controlplane.cli.up`)
and by the API tests; read by every route group of :mod:`controlplane.api`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.api import alertmanager
from controlplane.api.auth import Authenticator
from controlplane.api.intake import DEFAULT_MAX_BODY_BYTES
from controlplane.api.models import Mode
from controlplane.api.sources import CanarySource
from controlplane.kube.client import KubeClient
from controlplane.profiles.measured import Loaded

KEEPALIVE_S = 15.0
"""How often a quiet watch stream sends a ``: keepalive`` comment (and checks its caller may
still list)."""


@dataclass
class ApiConfig:
    """What the API needs from the process that serves it.

    ``kube``: the cluster (None for ``canaryctl up``: no webhooks then). ``source``: where the
    canary routes read and act (default: ``kube`` through :mod:`controlplane.operations`,
    :class:`~controlplane.api.sources.KubeSource`). ``mode``: who serves (``whoami``; under
    ``kubeconfig`` a refusal of the API server is the caller's, 403, not the API's own 502).
    ``wake(namespace, name)``: reconcile that canary now (after an intent is recorded).
    ``ready()``: (ready?, why not). ``metrics()``: the Prometheus exposition (bytes, content
    type); None serves no ``/metrics``. ``on_git_push()``: tell the git source to fetch now (None:
    the git webhook answers 404). ``git_secret``: the GitHub HMAC secret / GitLab token.
    ``namespaces``: the namespaces the controller watches (None: all of them).
    ``max_body_bytes``: the largest request body the API reads (1 MiB; larger: 413 before it is
    parsed, :mod:`controlplane.api.intake`). ``dashboard_dir``: the built dashboard (default:
    the package's ``dashboard_assets``). ``keepalive_s``, ``watch_queue``: the live watch's
    keepalive period and how many events a subscriber may fall behind before it is dropped.
    ``measured``: the measured profile entries a canary's variants are paired with for the
    expected change (None: those beside the packaged catalogue).
    """

    kube: KubeClient | None
    auth: Authenticator
    source: CanarySource | None = None
    mode: Mode = "controller"
    wake: Callable[[str, str], None] | None = None
    ready: Callable[[], tuple[bool, str]] = lambda: (True, "")
    metrics: Callable[[], tuple[bytes, str]] | None = None
    on_git_push: Callable[[], None] | None = None
    git_secret: str | None = None
    alert_labels: alertmanager.AlertLabels = field(default_factory=alertmanager.AlertLabels)
    namespaces: tuple[str, ...] | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    dashboard_dir: Path | None = None
    keepalive_s: float = KEEPALIVE_S
    watch_queue: int = 256
    measured: tuple[Loaded, ...] | None = None
