"""The one exception tree of the product.

Every error the product (and the test harness, ``harness/``) raises on purpose derives from
:class:`ControlPlaneError`, so a shell can catch one type and turn it into an exit code, a 4xx or
a status condition, never a traceback. Classes above the line are defined here, those below it in
the module named beside each; ``tests/test_error_tree.py`` holds every class to this drawing::

    ControlPlaneError
    ├── SpecError                 a canary.yml is invalid; carries every Problem found
    ├── ProfileError              the GPU / quantization catalogue is malformed or lacks an entry
    ├── ProviderError             a metric source failed
    │   ├── ProviderUnavailable   unreachable, timed out, 5xx: counts towards errorLimit
    │   ├── ProviderQueryError    the source rejected the query (bad PromQL): a spec problem
    │   └── NoData                the query ran but returned nothing usable (inconclusive)
    ├── RouterError               a router cannot apply or verify the requested weights
    │   └── RouterPending         one phase applied, the next waits for the cluster (not a failure)
    │       └── CapacityPending   the weights wait for a variant's planned replicas to be ready
    ├── KubeError                 the Kubernetes adapter failed
    │   ├── NotFound
    │   │   └── Unserved          the API server does not serve that apiVersion/kind (no CRD)
    │   ├── Forbidden             the credentials may not do this (403): the server's RBAC reason
    │   ├── Conflict              resourceVersion mismatch (409): re-read and retry
    │   ├── Expired               a watch's resourceVersion is too old (410 Gone): re-list
    │   └── InvalidName           a name or namespace that is no Kubernetes name, refused before
    │                             any request (spec.names; the API answers 422)
    ├── GitError                  a git repository or a git host's API could not be used
    │   └── WriteBackError        a rollback cannot be written back (file or canary not found, ...)
    ├── UsageError                bad command-line arguments (exit code 2)
    ├── AlertDeliveryError        an alert could not be delivered (kept inside notify/)
    │   ------------------------------------------------------------------------------------
    ├── UnsupportedSchema         spec.crd: the models' JSON Schema uses a keyword no CRD can
    │                             express (also a ValueError)
    ├── _Limit                    spec.load: input over a YAML limit (depth, nodes, aliases,
    │                             documents); becomes a SpecError before it leaves spec.load
    ├── UnknownEngineVersion      promql.contract: a vLLM version with no metric
    │                             contract (also a ValueError: the callers turn it into a Problem)
    ├── EndpointError             profiling.endpoint: an endpoint cannot be profiled
    ├── ForeignObject             routing.ownership: an object a canary would write exists and
    │                             is not the canary's; nothing is written (a KubeError)
    ├── TargetUnavailable         controller.adoption: the live service a canary adopts is
    │                             missing, held by another canary or unreadable as a stable
    ├── Unauthenticated           api.auth: no usable bearer token (the API answers 401)
    ├── BadSignature              api.git: a git webhook not from who it claims to be (401)
    ├── EngineError               local.engines.base: a local engine cannot run or failed
    ├── PrometheusSetupError      local.prometheus: the throwaway Prometheus could not start
    ├── LocalStackError           local.replicas: the local stack could not start or run
    ├── RequestError              local.openai_api: a request vLLM refuses, answered by the local
    │                             model server with vLLM's 400 / 404 (never leaves local/)
    └── KubeSetupError            harness.cluster.kubeapi (the test harness, not shipped): the
                                  loopback control plane could not be built
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


class Forbidden(KubeError):
    """The credentials may not do this (HTTP 403); the message is the server's RBAC reason."""


class Conflict(KubeError):
    """The object changed since it was read (resourceVersion mismatch, HTTP 409)."""


class InvalidName(KubeError, ValueError):
    """A name or namespace that is no valid Kubernetes name (DNS-1123), or that would change the
    meaning of a request path (``/``, ``..``, ``?``, ``#``, ``%``): refused before any request is
    made (:mod:`controlplane.spec.names`). The API answers 422, the CLI exits 2."""


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
