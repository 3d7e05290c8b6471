"""Gates on Argo Workflows: submit a gate run's Workflow and poll its phase, through ``hera``.

Owns the controller's side of ``spec.gates`` (the decisions are
:mod:`controlplane.rollout.gate_runs`'s): the Workflow body, a variant's in-cluster endpoint and
:class:`ArgoGates`, whose ``submit`` and ``poll`` never raise on a server problem but answer a
:class:`~controlplane.rollout.observations.GateObservation`. Answers are read bounded; only the
Argo Server's own error message, cut, reaches a status. Called by the gate effects. See
docs/gates.md, "In the controller" and "What an Argo Server's answer may put in a status".
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any, Protocol

import requests
import urllib3
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

from controlplane.providers.bounded import (
    MAX_ANSWER_BYTES,
    MAX_ANSWER_DEPTH,
    arriving,
    clip,
    declared_over,
    json_object,
    nesting_over,
    read_capped,
    size_text,
    without_bytes,
)
from controlplane.rollout.gate_runs import FINAL_PHASES, GateRun, render_parameters
from controlplane.rollout.observations import ArgoPhase, GateObservation
from controlplane.serving.object_names import predictor_service, single_service_name
from controlplane.serving.render import isvc_name
from controlplane.spec.endpoints import EndpointPolicy
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


MAX_OUTPUTS = 16
"""Output parameters kept of one Workflow (its first by name); each value cut to 200
characters: they go into the canary's status, which the tenant reads."""
REASON_OUTPUT = "reason"
"""The output parameter that says why, in a line (the shipped evaluation writes it): added to
the gate's message, so a rollback says why the evaluation failed, not only its exit code."""


def workflow_outputs(status: Mapping[str, Any]) -> dict[str, str]:
    """The output parameters of a Workflow's nodes by name (``status.nodes[*].outputs``, and
    the Workflow's own ``status.outputs``), bounded (pure)."""
    found: dict[str, str] = {}
    nodes = status.get("nodes")
    sources = [nodes[k] for k in sorted(nodes)] if isinstance(nodes, Mapping) else []
    for source in [*sources, status]:
        outputs = source.get("outputs") if isinstance(source, Mapping) else None
        params = outputs.get("parameters") if isinstance(outputs, Mapping) else None
        for param in params if isinstance(params, list) else []:
            if (
                isinstance(param, Mapping)
                and isinstance(param.get("name"), str)
                and "value" in param
            ):
                found[param["name"]] = clip(str(param["value"]), 200)
    return {name: found[name] for name in sorted(found)[:MAX_OUTPUTS]}


def observation_of(run: GateRun, data: Mapping[str, Any]) -> GateObservation:
    """A Workflow as the Argo Server returns it -> the gate observation (absent or unknown
    phase: ``Pending``; ``status.message`` kept, followed by the ``reason`` output when the
    Workflow has one; its output parameters)."""
    status: Mapping[str, Any] = data.get("status") or {}
    raw = str(status.get("phase") or "")
    phase: ArgoPhase = raw if raw in _PHASES else "Pending"  # type: ignore[assignment]
    outputs = workflow_outputs(status)
    message = str(status.get("message") or "")
    reason = outputs.get(REASON_OUTPUT, "")
    if reason:
        message = f"{message}: {reason}" if message else reason
    return GateObservation(
        key=run.key,
        workflow=run.workflow,
        phase=phase,
        message=clip(message, 300),
        started_at=_time(status.get("startedAt")),
        finished_at=_time(status.get("finishedAt")),
        outputs=outputs,
    )


# --------------------------------------------------------------------------- the Argo Server


class _TimeoutSession(requests.Session):
    """A requests session with a default timeout (hera passes none: a hung Argo Server must
    not hang the controller) that reads bounded answers: streamed, within the timeout in total,
    refused past :data:`~controlplane.providers.bounded.MAX_ANSWER_BYTES` or nested deeper than
    :data:`~controlplane.providers.bounded.MAX_ANSWER_DEPTH` (a ``RequestException``: the Argo
    Server is unavailable), redirects not followed, and an error answer's body replaced by Argo's
    own error message alone (``{"message": ...}``, cut), or nothing, before hera quotes it."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout_s)
        kwargs["stream"] = True
        kwargs["allow_redirects"] = False
        response = super().request(method, url, **kwargs)  # type: ignore[arg-type]
        deadline = time.monotonic() + self.timeout_s
        try:
            if declared_over(response.headers, MAX_ANSWER_BYTES):
                body: bytearray | str = f"over {size_text(MAX_ANSWER_BYTES)}"
            else:
                body = read_capped(arriving(response.raw), MAX_ANSWER_BYTES, deadline)
        except urllib3.exceptions.HTTPError as exc:
            raise requests.ConnectionError(f"the answer broke off: {exc}") from None
        finally:
            response.close()
        if response.is_redirect or 300 <= response.status_code < 400:
            said = f"HTTP {response.status_code} {clip(str(response.reason or ''), 60)}"
            raise requests.RequestException(f"{said.rstrip()}: a redirect, not followed")
        if response.ok:
            if isinstance(body, str):
                raise requests.RequestException(f"the answer is {body}: refused")
            if nesting_over(body, MAX_ANSWER_DEPTH):
                raise requests.RequestException(
                    f"the answer is nested deeper than {MAX_ANSWER_DEPTH}: refused"
                )
            response._content = bytes(body)
        else:
            message = None if isinstance(body, str) else _argo_message(body)
            response._content = json.dumps({"message": message or ""}).encode()
        return response


def _argo_message(body: bytearray) -> str | None:
    """Argo's own error message, cut, when ``body`` is its error JSON (``{"code": N, "message":
    "..."}``); else None."""
    data = json_object(body, 64 * 1024)
    if data is None or not isinstance(data.get("message"), str):
        return None
    if not isinstance(data.get("code"), int):
        return None
    return clip(data["message"])


class ArgoGates:
    """Runs gates against Argo Servers through hera's ``WorkflowsService``.

    ``token`` is a bearer token or a function returning one (re-read per request: tokens rotate);
    ``endpoints`` are the servers a gate may name besides ``server`` (``--allow-argo-server``). The
    token goes nowhere else, and Workflows live only in the canary's namespace (defence in depth).
    """

    def __init__(
        self,
        server: str | None,
        token: str | Callable[[], str | None] | None = None,
        verify_ssl: bool = True,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        poll_interval_s: float = DEFAULT_POLL_S,
        endpoints: EndpointPolicy | None = None,
    ) -> None:
        self.server = server.rstrip("/") + "/" if server else None
        self.endpoints = (endpoints or EndpointPolicy()).with_own(argo=server or None)
        self.token = token
        self.verify_ssl = verify_ssl
        self.poll_interval_s = poll_interval_s
        self._session = _TimeoutSession(request_timeout_s)

    def _service(self, canary: ModelCanary, run: GateRun) -> WorkflowsService | str:
        server = run.gate.argo_server or self.server
        if not server:
            return (
                "no Argo Server URL: set spec.gates[].argoServer or run the controller with "
                "--argo-server"
            )
        refused = _refusal(canary, run, server, self.endpoints)
        if refused is not None:
            return refused  # checked before the token is read: nothing is sent
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
        service = self._service(canary, run)
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
            return GateObservation(run.key, run.workflow, "Error", message + _describe(exc))
        except (Unauthorized, Forbidden) as exc:
            error = f"not allowed: {_describe(exc)}"
            return GateObservation(run.key, run.workflow, None, error=error)
        except _UNAVAILABLE as exc:
            error = f"Argo Server at {service.host} unavailable: {_describe(exc)}"
            return GateObservation(run.key, run.workflow, None, error=error)
        return None

    def poll(self, canary: ModelCanary, run: GateRun) -> GateObservation:
        service = self._service(canary, run)
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
            error = f"not allowed: {_describe(exc)}"
            return GateObservation(run.key, run.workflow, None, error=error)
        except _UNAVAILABLE as exc:
            error = f"Argo Server at {service.host} unavailable: {_describe(exc)}"
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
        service = self._service(canary, run)
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
            where = f"{run.namespace}/{run.workflow}"
            return f"not allowed to stop workflow {where}: {_describe(exc)}"
        except _UNAVAILABLE as exc:
            return f"could not stop workflow {run.namespace}/{run.workflow}: {_describe(exc)}"
        return None


def _refusal(
    canary: ModelCanary, run: GateRun, server: str, endpoints: EndpointPolicy
) -> str | None:
    """Why the run's request must not be sent: a namespace that is not the canary's (gates run
    there only), or an Argo Server the policy does not allow (the token would go to it)."""
    if run.namespace != canary.metadata.namespace:
        return (
            f"workflow {run.namespace}/{run.workflow} is not in the canary's namespace "
            f"{canary.metadata.namespace}: gates run there only, nothing was sent"
        )
    why = endpoints.refusal("argo", server.rstrip("/"))
    return None if why is None else f"the controller's token is not sent there: {why}"


_UNAVAILABLE = (
    requests.RequestException,
    HeraException,
    ValidationError,
    ValueError,
    KeyError,  # hera reads ``resp.json()["message"]`` of an error answer
    TypeError,  # hera's ``Workflow(**resp.json())`` of an answer that is no object
    RecursionError,
)
"""What a request to the Argo Server may raise when the server, not this code, is at fault."""
_HERA_STATUS = re.compile(r"status code (\d+) with message: `(.*)`$", re.DOTALL)


def _describe(exc: BaseException) -> str:
    """What a tenant may read of a failed Argo request: the status code and reason phrase and
    Argo's own (already cut) error message; a transport error's text without answer bytes; of
    anything else its type. Never an answer's body (hera quotes it; pydantic quotes values)."""
    if isinstance(exc, HeraException):
        match = _HERA_STATUS.search(str(exc))
        if match is None:
            return type(exc).__name__
        code = int(match.group(1))
        try:
            reason = HTTPStatus(code).phrase
        except ValueError:
            reason = ""
        said = f"HTTP {code} {reason}".rstrip()
        message = clip(match.group(2))
        return f"{said}: {message}" if message else said
    if isinstance(exc, json.JSONDecodeError):  # requests' is a RequestException too
        return f"the Argo Server's answer is not Argo API JSON ({exc.msg})"
    if isinstance(exc, requests.RequestException):
        return without_bytes(str(exc) or type(exc).__name__)
    if isinstance(exc, ValidationError):
        return "the Workflow or the Argo Server's answer is not what Argo's API takes"
    return f"the Argo Server's answer is not Argo API JSON ({type(exc).__name__})"
