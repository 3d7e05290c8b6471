"""Gates on Argo Workflows: submit a gate run's Workflow and poll its phase, through ``hera``.

Owns the controller's side of ``spec.gates`` (the decisions are the machine's, see
:mod:`controlplane.rollout.gate_runs`):

- :func:`workflow_body`: the Workflow a gate run submits: ``workflowTemplateRef`` to the gate's
  WorkflowTemplate / ClusterWorkflowTemplate, the parameters with their placeholders filled in,
  the deterministic name the machine chose, and labels naming the canary, gate and point.
- :func:`variant_endpoint`: the in-cluster base URL of a variant (``{{candidate.endpoint}}``),
  from the live serving object's ``status.address.url`` / ``status.url`` or else its predictor
  Service's DNS name.
- :class:`ArgoGates`: :meth:`~ArgoGates.submit` creates the Workflow through the Argo Server's
  REST API (hera's ``WorkflowsService``; an AlreadyExists is the same Workflow, submitted before
  a crash) and :meth:`~ArgoGates.poll` reads its phase (an absent phase is ``Pending``). Neither
  raises on a server problem: they answer a :class:`~controlplane.rollout.observations.
  GateObservation` with ``phase=None`` and the error (retried at the next poll, counted towards
  ``analysis.errorLimit``), or with phase ``Error`` when the Argo Server refused the Workflow
  (bad template reference or parameters: a failed gate). :meth:`~ArgoGates.stop` stops a
  Workflow the rollout no longer waits for (Argo's ``stop``: exit handlers still run).

Called by the reconciler's gate effects (:mod:`controlplane.controller.gate_effects`) with the
core's :func:`~controlplane.rollout.gate_runs.pending_runs`. See docs/gates.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import requests
import yaml
from hera.exceptions import (
    AlreadyExists,
    BadRequest,
    Forbidden,
    HeraException,
    Unauthorized,
)
from hera.exceptions import NotFound as HeraNotFound
from hera.workflows import Workflow, WorkflowsService
from hera.workflows.models import (
    WorkflowCreateRequest,
    WorkflowStopRequest,
    WorkflowTemplateRef,
)
from pydantic import ValidationError
from pydantic.warnings import PydanticDeprecatedSince20

from controlplane.rollout.gate_runs import FINAL_PHASES, GateRun, render_parameters
from controlplane.rollout.observations import ArgoPhase, GateObservation
from controlplane.serving.names import predictor_service, single_service_name
from controlplane.serving.render import isvc_name
from controlplane.spec.models import API_GROUP, LABEL_CANARY, ModelCanary


def _undo_hera_yaml_representer() -> None:
    """Importing hera re-registers PyYAML's ``str`` representer globally (block style for
    multi-line strings, for its own YAML output, which nothing here uses). Every other YAML this
    product writes (the CRD, rendered manifests, golden files) must not change with whether hera
    was imported, so PyYAML's own representer is put back."""
    default = yaml.representer.SafeRepresenter.represent_str
    yaml.representer.SafeRepresenter.add_representer(str, default)
    yaml.add_representer(str, default)


_undo_hera_yaml_representer()

LABEL_GATE = f"{API_GROUP}/gate"
LABEL_POINT = f"{API_GROUP}/gate-point"
ANNOTATION_SPEC_HASH = f"{API_GROUP}/spec-hash"
DEFAULT_POLL_S = 10.0
DEFAULT_REQUEST_TIMEOUT_S = 10.0
_PHASES: frozenset[str] = frozenset({"Pending", "Running", "Succeeded", "Failed", "Error"})

Obj = dict[str, Any]


class GateRunner(Protocol):
    """What the reconciler needs to run gates (:class:`ArgoGates`, or a test double)."""

    poll_interval_s: float

    def submit(
        self, canary: ModelCanary, run: GateRun, endpoints: Mapping[str, str], spec_hash: str
    ) -> GateObservation | None:
        """Create the run's Workflow. None when it exists now (created, or already there);
        else an observation: ``phase=None`` with the error when the Argo Server could not be
        asked (tried again at the next poll), ``Error`` when it refused the Workflow."""
        ...

    def poll(self, canary: ModelCanary, run: GateRun) -> GateObservation:
        """The Workflow's phase now."""
        ...

    def stop(self, canary: ModelCanary, run: GateRun, message: str) -> str | None:
        """Stop the run's Workflow if it is still running (the rollout no longer waits for
        it). None when nothing is left running (stopped now, already finished, or gone); else
        the error, to try again later."""
        ...


# --------------------------------------------------------------------------- pure parts


def variant_endpoint(canary: ModelCanary, role: str, live: Mapping[str, Any] | None) -> str:
    """The in-cluster base URL of the ``role`` variant (``candidate`` / ``stable``).

    Objects serving one variant (gateway-api, istio, llmisvc): the live object's
    ``status.address.url``, else ``status.url``, else ``http://<isvc>-predictor.<ns>.svc.
    cluster.local``. One InferenceService for both (``kserve``: the candidate is its
    ``spec.canary`` entry, served by ``<isvc>-<variant>-predictor``; ``kserve-knative``: the
    candidate is the latest revision, tagged ``latest``, the stable one ``prev``)."""
    namespace = canary.metadata.namespace
    status: Mapping[str, Any] = (live or {}).get("status") or {}
    router = canary.spec.traffic.router
    if router in ("kserve", "kserve-knative"):
        base = single_service_name(canary.spec.model.name)
        if router == "kserve-knative":
            tag = "latest" if role == "candidate" else "prev"
            predictor = (status.get("components") or {}).get("predictor") or {}
            for entry in predictor.get("traffic") or []:
                if isinstance(entry, Mapping) and entry.get("tag") == tag and entry.get("url"):
                    return str(entry["url"])
        elif role == "candidate":
            name = predictor_service(base, canary.spec.candidate.name)
            return f"http://{name}.{namespace}.svc.cluster.local"
        url = _status_url(status)
        return url or f"http://{predictor_service(base)}.{namespace}.svc.cluster.local"
    url = _status_url(status)
    if url:
        return url
    name = predictor_service(isvc_name(canary, "candidate" if role == "candidate" else "stable"))
    return f"http://{name}.{namespace}.svc.cluster.local"


def _status_url(status: Mapping[str, Any]) -> str:
    address = status.get("address") or {}
    if isinstance(address, Mapping) and address.get("url"):
        return str(address["url"])
    return str(status.get("url") or "")


def workflow_body(
    canary: ModelCanary, run: GateRun, endpoints: Mapping[str, str], spec_hash: str = ""
) -> Obj:
    """The Workflow the run submits (as the Argo Server receives it), built with hera."""
    body: Obj = _workflow(canary, run, endpoints, spec_hash).to_dict()
    return body


def _workflow(
    canary: ModelCanary, run: GateRun, endpoints: Mapping[str, str], spec_hash: str
) -> Workflow:
    template = run.gate.workflow_template
    labels = {
        LABEL_CANARY: canary.metadata.name,
        LABEL_GATE: run.gate.name,
        LABEL_POINT: run.point,
    }
    annotations = {ANNOTATION_SPEC_HASH: spec_hash} if spec_hash else None
    return Workflow(
        name=run.workflow,
        namespace=run.namespace,
        labels=labels,
        annotations=annotations,
        workflow_template_ref=WorkflowTemplateRef(
            name=template.name, cluster_scope=template.cluster_scope or None
        ),
        arguments=render_parameters(canary, run, endpoints) or None,
    )


def _time(value: Any) -> float | None:
    if not value:
        return None
    text = str(value)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def observation_of(run: GateRun, data: Mapping[str, Any]) -> GateObservation:
    """A Workflow as the Argo Server returns it -> the gate observation (absent or unknown
    phase: ``Pending``; ``status.message`` kept)."""
    status: Mapping[str, Any] = data.get("status") or {}
    raw = str(status.get("phase") or "")
    phase: ArgoPhase = raw if raw in _PHASES else "Pending"  # type: ignore[assignment]
    return GateObservation(
        key=run.key,
        workflow=run.workflow,
        phase=phase,
        message=str(status.get("message") or ""),
        started_at=_time(status.get("startedAt")),
        finished_at=_time(status.get("finishedAt")),
    )


# --------------------------------------------------------------------------- the Argo Server


class _TimeoutSession(requests.Session):
    """A requests session with a default timeout (hera passes none: a hung Argo Server must
    not hang the controller)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(method, url, **kwargs)  # type: ignore[arg-type]


class ArgoGates:
    """Runs gates against Argo Servers through hera's ``WorkflowsService``.

    ``server``: the default Argo Server URL (a gate's ``argoServer`` overrides it). ``token``: a
    bearer token, or a function returning one (re-read for every request: service-account tokens
    rotate). ``poll_interval_s``: how often the reconciler polls a running gate.
    """

    def __init__(
        self,
        server: str | None,
        token: str | Callable[[], str | None] | None = None,
        verify_ssl: bool = True,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        poll_interval_s: float = DEFAULT_POLL_S,
    ) -> None:
        self.server = server.rstrip("/") + "/" if server else None
        self.token = token
        self.verify_ssl = verify_ssl
        self.poll_interval_s = poll_interval_s
        self._session = _TimeoutSession(request_timeout_s)

    def _service(self, run: GateRun) -> WorkflowsService | str:
        server = run.gate.argo_server or self.server
        if not server:
            return (
                "no Argo Server URL: set spec.gates[].argoServer or run the controller with "
                "--argo-server"
            )
        token = self.token() if callable(self.token) else self.token
        return WorkflowsService(
            host=server.rstrip("/") + "/",
            token=token or None,
            verify_ssl=self.verify_ssl,
            namespace=run.namespace,
            session=self._session,
        )

    def submit(
        self, canary: ModelCanary, run: GateRun, endpoints: Mapping[str, str], spec_hash: str
    ) -> GateObservation | None:
        service = self._service(run)
        if isinstance(service, str):
            return GateObservation(run.key, run.workflow, None, error=service)
        workflow = _workflow(canary, run, endpoints, spec_hash)
        try:
            with warnings.catch_warnings():  # hera serializes with pydantic's deprecated .json()
                warnings.simplefilter("ignore", PydanticDeprecatedSince20)
                service.create_workflow(
                    WorkflowCreateRequest(workflow=workflow.build()),
                    namespace=run.namespace,
                )
        except AlreadyExists:
            return None  # submitted before a crash: the same Workflow, polled from now on
        except (BadRequest, HeraNotFound) as exc:
            message = f"the Argo Server refused workflow {run.namespace}/{run.workflow}: "
            return GateObservation(run.key, run.workflow, "Error", message + _short(exc))
        except (Unauthorized, Forbidden) as exc:
            return GateObservation(run.key, run.workflow, None, error=f"not allowed: {exc}")
        except (requests.RequestException, HeraException, ValidationError, ValueError) as exc:
            error = f"Argo Server at {service.host} unavailable: {_short(exc)}"
            return GateObservation(run.key, run.workflow, None, error=error)
        return None

    def poll(self, canary: ModelCanary, run: GateRun) -> GateObservation:
        service = self._service(run)
        if isinstance(service, str):
            return GateObservation(run.key, run.workflow, None, error=service)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PydanticDeprecatedSince20)
                found = service.get_workflow(run.workflow, namespace=run.namespace)
            data = found.model_dump(by_alias=True, exclude_none=True, mode="json")
        except HeraNotFound:
            return GateObservation(
                run.key,
                run.workflow,
                "Error",
                message=f"workflow {run.namespace}/{run.workflow} not found (deleted?)",
            )
        except (Unauthorized, Forbidden) as exc:
            return GateObservation(run.key, run.workflow, None, error=f"not allowed: {exc}")
        except (requests.RequestException, HeraException, ValidationError, ValueError) as exc:
            error = f"Argo Server at {service.host} unavailable: {_short(exc)}"
            return GateObservation(run.key, run.workflow, None, error=error)
        return observation_of(run, data)

    def stop(self, canary: ModelCanary, run: GateRun, message: str) -> str | None:
        """Argo's ``stop`` (exit handlers still run) on a Workflow that has not finished.

        Reads the Workflow first: Argo refuses to stop a completed one, and a finished or
        deleted Workflow needs nothing. Between the read and the stop the Workflow may finish;
        the refusal is then returned as an error and the next try reads it finished."""
        seen = self.poll(canary, run)
        if seen.phase is None:
            return seen.error or "the Argo Server did not answer"
        if seen.phase in FINAL_PHASES:
            return None  # finished by itself, or deleted (a NotFound reads as Error)
        service = self._service(run)
        if isinstance(service, str):
            return service
        request = WorkflowStopRequest(name=run.workflow, namespace=run.namespace, message=message)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PydanticDeprecatedSince20)
                service.stop_workflow(run.workflow, request, namespace=run.namespace)
        except HeraNotFound:
            return None
        except (Unauthorized, Forbidden) as exc:
            return f"not allowed to stop workflow {run.namespace}/{run.workflow}: {exc}"
        except (requests.RequestException, HeraException, ValidationError, ValueError) as exc:
            return f"could not stop workflow {run.namespace}/{run.workflow}: {_short(exc)}"
        return None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
