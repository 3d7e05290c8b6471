"""The ``istio`` router: one VirtualService splitting traffic between the predictor Services.

Owns the canary's VirtualService: weighted destinations, a cohort route that is the only way to
the candidate, routes that keep each session on one variant, ``mirror`` for shadow, and the
winner alone after an outcome (Istio's analysis reports a missing destination host as IST0101,
``pkg/config/analysis``). For an adopted stable it is on the live predictor Service's host.
:func:`build_virtualservice` is pure. See docs/routing.md.
"""

from __future__ import annotations

from controlplane.errors import RouterError
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.routing import sessions
from controlplane.routing._common import (
    ObjectRouter,
    dig,
    percent,
    route_object,
    route_object_ref,
    target_weights,
)
from controlplane.routing.base import VARIANT_HEADER, Outcome, Weights, check_request
from controlplane.serving import adopt, object_names
from controlplane.serving.render import Role, canary_labels, isvc_name
from controlplane.spec.models import ModelCanary, SessionSpec

API_VERSION = "networking.istio.io/v1"
KIND = "VirtualService"
PORT = 80
ROUTER = "istio"


def _host(canary: ModelCanary, role: Role) -> str:
    if role == "stable" and canary.spec.adopted:
        service = adopt.stable_service(canary)
    else:
        service = object_names.predictor_service(isvc_name(canary, role))
    return f"{service}.{canary.metadata.namespace}.svc.cluster.local"


def _hosts(canary: ModelCanary) -> tuple[str, str]:
    return _host(canary, "stable"), _host(canary, "candidate")


def model_host(canary: ModelCanary) -> str:
    """The model's own host: ``<model>.<namespace>.svc.cluster.local``, the name the
    single-InferenceService routers give the model's InferenceService too, so clients address
    the model the same way whichever variant serves it."""
    name = object_names.single_service_name(canary.spec.model.name)
    return f"{name}.{canary.metadata.namespace}.svc.cluster.local"


def hosts(canary: ModelCanary) -> list[str]:
    """``spec.traffic.hosts``, or else the model's own host (:func:`model_host`); for an adopted
    stable, the live predictor Service's host, the one in-cluster clients call today."""
    if canary.spec.traffic.hosts:
        return list(canary.spec.traffic.hosts)
    if canary.spec.adopted:
        return [_host(canary, "stable")]
    return [model_host(canary)]


def model_service(canary: ModelCanary) -> Obj | None:
    """The Service behind :func:`model_host` when ``spec.traffic.hosts`` is not given (pure).

    Without a selector (no endpoints of its own): it gives the host a cluster IP and DNS name,
    and puts it in Istio's service registry, so the sidecar of a client calling it applies the
    VirtualService, which sends the request to the variants' predictor Services."""
    if canary.spec.traffic.hosts or canary.spec.adopted:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": object_names.single_service_name(canary.spec.model.name),
            "namespace": canary.metadata.namespace,
            "labels": canary_labels(canary),
        },
        "spec": {"ports": [{"name": "http", "port": PORT, "protocol": "TCP"}]},
    }


def _destination(host: str, weight: int) -> Obj:
    return {"destination": {"host": host, "port": {"number": PORT}}, "weight": weight}


def build_virtualservice(
    canary: ModelCanary, weight: int, mirror: bool, outcome: Outcome | None = None
) -> Obj:
    """The whole VirtualService at a rollout point (pure)."""
    target = target_weights(weight, mirror, outcome)
    check_request(canary, target)
    traffic = canary.spec.traffic
    stable, candidate = _hosts(canary)
    route = [_destination(stable, target.stable), _destination(candidate, target.candidate)]
    if outcome is not None:  # the loser's Service is released: Istio's analysis reports a
        route = [route[1] if outcome == "promoted" else route[0]]  # host it cannot find
    split: Obj = {"route": route}
    if target.mirror:
        split["mirror"] = {"host": candidate, "port": {"number": PORT}}
        split["mirrorPercentage"] = {"value": 100.0}
    http: list[Obj]
    if traffic.session is not None and outcome is None:
        http = [*_session_routes(canary, traffic.session, target.candidate, split)]
        http.append({"name": "split", **split})
    elif traffic.cohort is None or outcome is not None:
        http = [{"name": "split", **split}]
    else:
        match = [{"headers": {traffic.cohort.header: {"exact": v}}} for v in traffic.cohort.values]
        http = [
            {"name": "cohort", "match": match, **split},
            {"name": "default", "route": [_destination(stable, 100)]},
        ]
    spec: Obj = {"hosts": hosts(canary)}
    if traffic.gateway is not None:
        gw = traffic.gateway
        spec["gateways"] = [f"{gw.namespace}/{gw.name}" if gw.namespace else gw.name]
    spec["http"] = http
    return route_object(API_VERSION, KIND, canary, spec)


def _session_routes(
    canary: ModelCanary, session: SessionSpec, weight: int, split: Obj
) -> list[Obj]:
    """The routes that keep each session on its variant at ``weight``, before the split
    (:func:`controlplane.routing.sessions.key_matches`): the candidate's sessions to the
    candidate alone, the others to the stable alone, with the split's mirror. Istio uses the
    first route that matches, takes header names in lower case and reads ``regex`` as RE2
    (``VirtualService.http`` and ``HTTPMatchRequest.headers`` in
    ``networking/v1alpha3/virtual_service.proto``, istio/api v1.30.3); the expressions are
    anchored, so a full match and a search agree."""
    ours, theirs = sessions.key_matches(session, weight)
    stable, candidate = _hosts(canary)
    out: list[Obj] = []
    for match, host, name in (
        (ours, candidate, "session-candidate"),
        (theirs, stable, "session-stable"),
    ):
        if match is None:
            continue
        variant = canary.spec.candidate.name if host == candidate else canary.spec.stable.name
        route: Obj = {
            "name": name,
            "match": [{"headers": {match["name"]: {"regex": match["value"]}}}],
            "route": [_destination(host, 100)],
            "headers": {"response": {"set": {VARIANT_HEADER: variant}}},
        }
        if host == stable and "mirror" in split:
            route["mirror"] = split["mirror"]
            route["mirrorPercentage"] = split["mirrorPercentage"]
        out.append(route)
    return out


def weights_of(canary: ModelCanary, vs: Obj) -> Weights:
    """The weights a VirtualService expresses (pure): those of the route that splits between
    both variants, else of the route reaching the candidate (a session route sends all of its
    sessions to one variant and says nothing of the weights)."""
    stable, candidate = _hosts(canary)
    routes = dig(vs, "spec", "http") or []
    both = [
        r
        for r in routes
        if {stable, candidate} <= {dig(d, "destination", "host") for d in r.get("route") or []}
    ]
    for route in [*both, *routes]:
        dests = {
            dig(d, "destination", "host"): d.get("weight", 100) for d in route.get("route") or []
        }
        mirror = dig(route, "mirror", "host") == candidate
        if candidate in dests or mirror:
            total = dests.get(stable, 0) + dests.get(candidate, 0)
            return Weights(percent(dests.get(candidate, 0), total), mirror)
    if any(stable in {dig(d, "destination", "host") for d in r.get("route") or []} for r in routes):
        return Weights(0)
    raise RouterError(f"{ROUTER}: VirtualService routes to neither {stable} nor {candidate}")


def route_ref(canary: ModelCanary) -> Ref:
    """The VirtualService of ``canary``."""
    return route_object_ref(API_VERSION, KIND, canary)


def router(kube: KubeClient) -> ObjectRouter:
    """Applies :func:`build_virtualservice` through the Kubernetes adapter and reads it back."""
    return ObjectRouter(ROUTER, kube, route_ref, build_virtualservice, weights_of)
