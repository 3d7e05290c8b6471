"""The one exception tree of the product.

Every error the product (and the test harness, ``harness/``) raises on purpose derives from
:class:`ControlPlaneError`, so a shell can catch one type and turn it into an exit code, a 4xx or
a status condition, never a traceback. The tree, with what each class means and where those not
defined here live, is drawn in docs/architecture.md, "The error tree";
``tests/test_error_tree.py`` holds every class to that drawing.
"""

from __future__ import annotations

from dataclasses import dataclass


class ControlPlaneError(Exception):
    """Base of every error the product raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One validation problem: where it is and what is wrong.

    ``path`` is the dotted field path (``spec.steps[1].weight``); ``line`` is the 1-based YAML
    line when known; ``file`` is the source file name when known.
    """

    path: str
    message: str
    line: int | None = None
    file: str | None = None

    def format(self) -> str:
        """Render as ``FILE:LINE: path: message`` (parts that are unknown are left out)."""
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        elif self.line is not None:
            where = f"line {self.line}: "
        path = f"{self.path}: " if self.path else ""
        return f"{where}{path}{self.message}"

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "path": self.path, "message": self.message}


class SpecError(ControlPlaneError):
    """A spec is invalid. ``problems`` lists every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.format() for p in problems) or "invalid spec")


class ProfileError(ControlPlaneError):
    """The GPU or quantization catalogue is malformed, or an entry is missing."""


class ProviderError(ControlPlaneError):
    """A metric provider failed to produce a value."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or answered with a server error (transient)."""


class ProviderQueryError(ProviderError):
    """The provider rejected the query itself (e.g. PromQL parse error)."""


class NoData(ProviderError):
    """The query ran but returned no usable value (empty, NaN, +Inf)."""


class RouterError(ControlPlaneError):
    """A router could not apply, read back or verify traffic weights."""


class RouterPending(RouterError):
    """A router applied one phase of a change whose next phase waits for the cluster (KServe
    rolling pods during a two-phase promotion): not a failure, the controller asks again."""


class CapacityPending(RouterPending):
    """The weights wait for capacity: a variant whose share rises is not running the replicas
    the capacity plan gives it yet (docs/capacity.md). Not a failure: asked again soon."""


class KubeError(ControlPlaneError):
    """The Kubernetes adapter failed."""


class NotFound(KubeError):
    """The object does not exist."""


class Unserved(NotFound):
    """The API server does not serve ``<apiVersion>/<kind>`` (its CRD is not installed).

    A :class:`NotFound`, so a get or delete of a kind the cluster lacks reads as "not there"
    (a finalizer that deletes an Istio VirtualService on a cluster without Istio completes)."""


class MissingPrerequisite(KubeError):
    """A kind the canary's objects need is not served by the cluster (the operator that brings
    its CRD is not installed: KEDA's ScaledObject for ``autoscaling.queue``). Nothing is
    applied, the canary is ``Stalled`` with the reason, and the runner asks again, so installing
    it lets the rollout go on."""


class Forbidden(KubeError):
    """The credentials may not do this (HTTP 403); the message is the server's RBAC reason."""


class Conflict(KubeError):
    """The object changed since it was read (resourceVersion mismatch, HTTP 409)."""


class InvalidName(KubeError, ValueError):
    """A name or namespace that is no valid Kubernetes name (DNS-1123), or that would change the
    meaning of a request path (``/``, ``..``, ``?``, ``#``, ``%``): refused before any request is
    made (:mod:`controlplane.spec.name_checks`). The API answers 422, the CLI exits 2."""


class Expired(KubeError):
    """A watch asked for a resourceVersion the server no longer has (HTTP 410 Gone)."""


class GitError(ControlPlaneError):
    """A git command or a git hosting API (GitHub, GitLab) failed; credentials never in the text."""


class WriteBackError(GitError):
    """A rollback cannot be written back to git: the file or the canary in it is not found, or
    the edit could not be made without touching the rest of the file."""


class UsageError(ControlPlaneError):
    """Bad command-line arguments."""


class AlertDeliveryError(ControlPlaneError):
    """An alert could not be delivered to a channel (missing Secret, refused, exhausted retries).

    Raised and caught inside :mod:`controlplane.notify`'s worker; never reaches reconciliation."""
