"""The pairer's objects: the Deployment that runs ``python -m controlplane.pairing`` and its
Service, one port per variant (pure).

Owns how the quality judge's pairer (``spec.quality``) is deployed beside a canary: the product's
own image (the controller's), both variants' predictor Services as its upstreams, the spec's cap
per minute and session key, a port per variant that the route sends that variant's sampled share
to (:data:`PORTS`). Called by :mod:`controlplane.desired`; docs/judges.md, "Quality: paired
answers".
"""

from __future__ import annotations

from controlplane.serving import object_names
from controlplane.serving.render import Obj, Role, canary_labels, isvc_name
from controlplane.spec.constants import API_GROUP
from controlplane.spec.models import ModelCanary

PORTS = {"stable": 8081, "candidate": 8082}
"""The pairer's port for each variant: a request there is answered by that variant."""
COMPONENT = f"{API_GROUP}/component"


def of_pairer(obj: Obj) -> bool:
    """Whether ``obj`` is one of a pairer's objects (:func:`pairer_objects`)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(COMPONENT) == "pairer")


def is_pairer(obj: Obj) -> bool:
    """Whether ``obj`` is a pairer's Deployment, whose rollout its readiness is."""
    return obj.get("kind") == "Deployment" and of_pairer(obj)


def backend_positions(canary: ModelCanary, role: Role) -> tuple[int, ...]:
    """Where ``role``'s requests are among the backends of every rule of the ``gateway-api``
    router's HTTPRoute while the canary runs (pure): the stable's backend first, the
    candidate's second, then with ``spec.quality`` the pairer's port for each in the same
    order; a rule that does not serve a variant lists it with weight 0. Envoy Gateway names
    each backend's cluster by this position, and the error rate reads each variant's codes
    from it (docs/analysis.md, "Where errors come from")."""
    index = 0 if role == "stable" else 1
    return (index, index + 2) if canary.spec.quality is not None else (index,)


def pairer_name(canary: ModelCanary) -> str:
    """The pairer's Deployment and Service: ``<canary>-pairer``."""
    return object_names.dns_name(canary.metadata.name, "pairer")


def _upstream(canary: ModelCanary, role: Role) -> str:
    service = object_names.predictor_service(isvc_name(canary, role))
    return f"http://{service}.{canary.metadata.namespace}.svc:{object_names.PREDICTOR_PORT}"


def pairer_args(canary: ModelCanary) -> list[str]:
    """The pairer's command line for ``canary`` (which has ``spec.quality``)."""
    quality = canary.spec.quality
    if quality is None:
        raise ValueError(f"canary {canary.metadata.name!r} has no quality section")
    args = ["--stable", _upstream(canary, "stable"), "--candidate", _upstream(canary, "candidate")]
    args += [f"--stable-port={PORTS['stable']}", f"--candidate-port={PORTS['candidate']}"]
    args += [f"--per-minute={quality.per_minute}"]
    if quality.keep_prompts:
        args.append("--keep-prompts")
    session = canary.spec.traffic.session
    if session is not None and session.header is not None:
        args.append(f"--session-header={session.header}")
    elif session is not None and session.cookie is not None:
        args.append(f"--session-cookie={session.cookie}")
    return args


def pairer_objects(canary: ModelCanary, image: str) -> list[Obj]:
    """The pairer's Deployment (one replica of ``image``) and Service for ``canary``."""
    name, namespace = pairer_name(canary), canary.metadata.namespace
    labels = {**canary_labels(canary), COMPONENT: "pairer"}
    meta = {"name": name, "namespace": namespace, "labels": labels}
    ports = [{"name": role, "containerPort": port} for role, port in PORTS.items()]
    probe = {"httpGet": {"path": "/health", "port": PORTS["stable"]}, "periodSeconds": 5}
    container = {
        "name": "pairer",
        "image": image,
        "command": ["python", "-m", "controlplane.pairing"],
        "args": pairer_args(canary),
        "ports": ports,
        "readinessProbe": probe,
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    deployment: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
    service: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "selector": labels,
            "ports": [
                {"name": role, "port": port, "targetPort": port} for role, port in PORTS.items()
            ],
        },
    }
    return [deployment, service]
