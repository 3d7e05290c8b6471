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
    """What the API needs from the process that serves it (docs/api.md).

    ``kube`` is None under ``canaryctl up`` (no webhooks); under ``mode`` ``kubeconfig`` an API
    server refusal is the caller's 403, not a 502; None for ``metrics`` or ``on_git_push`` turns
    that route off; ``max_body_bytes`` is refused (413) before parsing.
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
