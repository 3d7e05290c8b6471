"""What the controller process gives its HTTP API.

Owns :class:`ApiConfig`, the one argument of :func:`controlplane.api.app.create_app`. Built by
``canaryctl controller`` (:mod:`controlplane.cli.controller`) and by the API tests; read by every
route group of :mod:`controlplane.api`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from controlplane.api import alertmanager
from controlplane.api.auth import Authenticator
from controlplane.api.intake import DEFAULT_MAX_BODY_BYTES
from controlplane.kube.client import KubeClient


@dataclass
class ApiConfig:
    """What the API needs from the controller process.

    ``wake(namespace, name)``: reconcile that canary now (after an intent is recorded).
    ``ready()``: (ready?, why not). ``metrics()``: the Prometheus exposition (bytes, content
    type); None serves no ``/metrics``. ``on_git_push()``: tell the git source to fetch now (None:
    the git webhook answers 404). ``git_secret``: the GitHub HMAC secret / GitLab token.
    ``namespaces``: the namespaces the controller watches (None: all of them).
    ``max_body_bytes``: the largest request body the API reads (1 MiB; larger: 413 before it is
    parsed, :mod:`controlplane.api.intake`).
    """

    kube: KubeClient
    auth: Authenticator
    wake: Callable[[str, str], None] | None = None
    ready: Callable[[], tuple[bool, str]] = lambda: (True, "")
    metrics: Callable[[], tuple[bytes, str]] | None = None
    on_git_push: Callable[[], None] | None = None
    git_secret: str | None = None
    alert_labels: alertmanager.AlertLabels = field(default_factory=alertmanager.AlertLabels)
    namespaces: tuple[str, ...] | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
