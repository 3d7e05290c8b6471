"""The ``gateway-api`` router: one HTTPRoute splitting traffic between the predictor Services.

Owns the canary's HTTPRoute: weighted backendRefs, a cohort rule that is the only way to the
candidate, rules that keep each session on one variant (:mod:`~controlplane.routing.sessions`),
a ``RequestMirror`` for shadow, the winner alone after an outcome (Traefik v3.6.12
reports a gone backend ``BackendNotFound`` even at weight 0), and the live service's hosts for an
adopted stable. Weights count as verified once every Gateway controller took up the route's
generation (:func:`taken_up`). :func:`build_httproute` is pure. See docs/routing.md.
"""

from __future__ import annotations

from controlplane.errors import KubeError, RouterError, RouterPending
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
from controlplane.serving import adopt, object_names, pairer
from controlplane.serving.render import isvc_name
from controlplane.spec.models import DEFAULT_GATEWAY, ModelCanary, SessionSpec

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "HTTPRoute"
PORT = object_names.PREDICTOR_PORT
ROUTER = "gateway-api"


def _backend(
    name: str, weight: int | None = None, variant: str | None = None, port: int = PORT
) -> Obj:
    """A Service backendRef. With ``variant`` it carries a filter of its own (setting
    :data:`VARIANT_HEADER`): Envoy Gateway then gives the backend an Envoy cluster of its own
    (one cluster per rule otherwise, in which stable and candidate share response-code stats;
    docs/analysis.md, "Where errors come from"), so the error rate sees each variant's codes."""
    ref: Obj = {"group": "", "kind": "Service", "name": name, "port": port}
    if weight is not None:
        ref["weight"] = weight
    if variant is not None:
        ref["filters"] = [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": VARIANT_HEADER, "value": variant}]},
            }
        ]
    return ref


SAMPLED = 100
"""Each percent of a split is this many route weight units, so a quality sample of a step's
weight keeps its share (weights are integers; Gateway API v1.5.1 allows up to 1,000,000)."""


def _through_pairer(
    canary: ModelCanary, refs: list[Obj], candidate: int, mirror: bool = False
) -> list[Obj]:
    """``refs`` (each variant's backend with its percent weight) with the quality judge's
    sample of each variant's share sent to the pairer's port for it (``spec.quality``), the
    rest left as it was; unchanged without a quality section or while the candidate has no
    share outside the shadow phase (``candidate`` percent is 0 and no ``mirror``: before the
    rollout starts the pairer may not be ready, and a pair needs the candidate's answer, which
    the readiness the shadow phase and step 1 begin on waits for). In the shadow phase the
    stable takes every request, so its sample is what is paired. The pairer's backends follow
    the variants' in the same order, so a variant's own backend keeps its position
    (:func:`~controlplane.serving.pairer.backend_positions`)."""
    quality = canary.spec.quality
    if quality is None or (candidate == 0 and not mirror):
        return refs
    share = quality.sample.value
    roles = {
        _services(canary)[0]: ("stable", canary.spec.stable.name),
        _services(canary)[1]: ("candidate", canary.spec.candidate.name),
    }
    own: list[Obj] = []
    paired: list[Obj] = []
    for ref in refs:
        role, variant = roles[ref["name"]]
        units = int(ref.get("weight", 1)) * SAMPLED
        sampled = round(units * share)
        own.append({**ref, "weight": units - sampled})
        paired.append(_backend(pairer.pairer_name(canary), sampled, variant, pairer.PORTS[role]))
    return own + paired


def _services(canary: ModelCanary) -> tuple[str, str]:
    stable = (
        adopt.stable_service(canary)
        if canary.spec.adopted
        else object_names.predictor_service(isvc_name(canary, "stable"))
    )
    return stable, object_names.predictor_service(isvc_name(canary, "candidate"))


def _paths() -> list[Obj]:
    """The matches of an adopted stable's split: an Exact match on each inference path."""
    return [{"path": {"type": "Exact", "value": path}} for path in adopt.INFERENCE_PATHS]


def _hostnames(canary: ModelCanary) -> list[str]:
    """``spec.traffic.hosts``, and for an adopted stable the hosts KServe serves it on (where
    its clients send their requests today)."""
    found = adopt.adoption(canary)
    adopted = list(found.hosts) if found is not None else []
    return [*canary.spec.traffic.hosts, *(h for h in adopted if h not in canary.spec.traffic.hosts)]


def _parent_refs(canary: ModelCanary) -> list[Obj]:
    gateway = canary.spec.traffic.gateway or DEFAULT_GATEWAY
    ref: Obj = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.name}
    if gateway.namespace is not None:
        ref["namespace"] = gateway.namespace
    if gateway.section_name is not None:
        ref["sectionName"] = gateway.section_name
    return [ref]


def build_httproute(
    canary: ModelCanary, weight: int, mirror: bool, outcome: Outcome | None = None
) -> Obj:
    """The whole HTTPRoute at a rollout point (pure)."""
    target = target_weights(weight, mirror, outcome)
    check_request(canary, target)
    stable, candidate = _services(canary)
    stable_name, candidate_name = canary.spec.stable.name, canary.spec.candidate.name
    split = [
        _backend(stable, target.stable, stable_name),
        _backend(candidate, target.candidate, candidate_name),
    ]
    if outcome is not None:  # the loser's Service is released: a ref to it would be unresolved
        split = [split[1] if outcome == "promoted" else split[0]]
    else:
        split = _through_pairer(canary, split, target.candidate, target.mirror)
    filters: list[Obj] = []
    if target.mirror:
        filters.append(
            {
                "type": "RequestMirror",
                "requestMirror": {"backendRef": _backend(candidate), "percent": 100},
            }
        )
    cohort = canary.spec.traffic.cohort
    # an adopted stable's host has KServe's own route too: the split takes the inference paths
    paths = _paths() if canary.spec.adopted else [{}]
    everything: Obj = {"matches": [p for p in paths if p]} if canary.spec.adopted else {}
    rules: list[Obj]
    if cohort is None or outcome is not None:
        rule: Obj = {**everything, "backendRefs": split}
        if filters:
            rule["filters"] = filters
        rules = [rule]
        session = canary.spec.traffic.session
        if session is not None and outcome is None:
            rules = _session_rules(session, target.candidate, paths, canary, filters) + rules
    else:
        matches = [
            {**path, "headers": [{"type": "Exact", "name": cohort.header, "value": value}]}
            for value in cohort.values
            for path in paths
        ]
        cohort_rule: Obj = {"matches": matches, "backendRefs": split}
        if filters:
            cohort_rule["filters"] = filters
        rules = [cohort_rule, {**everything, "backendRefs": [_backend(stable, 100, stable_name)]}]
    spec: Obj = {"parentRefs": _parent_refs(canary)}
    hostnames = _hostnames(canary)
    if hostnames:
        spec["hostnames"] = hostnames
    spec["rules"] = rules
    return route_object(API_VERSION, KIND, canary, spec)


def _session_rules(
    session: SessionSpec, weight: int, paths: list[Obj], canary: ModelCanary, filters: list[Obj]
) -> list[Obj]:
    """The rules that keep each session on its variant at ``weight``
    (:func:`controlplane.routing.sessions.key_matches`): the candidate's sessions to the
    candidate alone, the others to the stable alone (with the shadow's mirror, like the split),
    each answer telling the client its session's variant in :data:`VARIANT_HEADER` (a rule's
    ``ResponseHeaderModifier``, which Traefik v3.6.12 loads where it ignores a backend's filters:
    ``loadMiddlewares`` in ``pkg/provider/kubernetes/gateway/httproute.go``);
    a request without a key matches neither and takes the split rule after them (more header
    matches come first: ``HTTPRouteRule`` precedence in Gateway API v1.5.1,
    ``apis/v1/httproute_types.go``)."""
    stable, candidate = _services(canary)
    ours, theirs = sessions.key_matches(session, weight)
    out: list[Obj] = []
    for match, name, variant in (
        (ours, candidate, canary.spec.candidate.name),
        (theirs, stable, canary.spec.stable.name),
    ):
        if match is None:
            continue
        told: Obj = {
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {"set": [{"name": VARIANT_HEADER, "value": variant}]},
        }
        # both variants, in the split's order, the other one at weight 0: each keeps its
        # position in every rule (pairer.backend_positions)
        refs = [
            _backend(stable, int(name == stable), canary.spec.stable.name),
            _backend(candidate, int(name == candidate), canary.spec.candidate.name),
        ]
        rule: Obj = {
            "matches": [{**path, "headers": [dict(match)]} for path in paths],
            "filters": [*(filters if name == stable else []), told],
            "backendRefs": _through_pairer(canary, refs, weight, bool(filters)),
        }
        out.append(rule)
    return out


def weights_of(canary: ModelCanary, route: Obj) -> Weights:
    """The weights an HTTPRoute expresses (pure): those of the rule that splits between both
    variants, else of the rule that reaches the candidate (a session rule sends all of its
    sessions to one variant and says nothing of the weights)."""
    stable, candidate = _services(canary)
    rules = dig(route, "spec", "rules") or []
    both = [
        r
        for r in rules
        if {stable, candidate} <= {ref.get("name") for ref in r.get("backendRefs") or []}
        and not _session_rule(r)
    ]
    for rule in [*both, *rules]:
        refs = _variant_weights(canary, rule.get("backendRefs") or [])
        mirror = any(
            f.get("type") == "RequestMirror"
            and dig(f, "requestMirror", "backendRef", "name") == candidate
            for f in rule.get("filters") or []
        )
        if candidate in refs or mirror:
            total = refs.get(stable, 0) + refs.get(candidate, 0)
            return Weights(percent(refs.get(candidate, 0), total), mirror)
    if any(stable in {r.get("name") for r in rule.get("backendRefs") or []} for rule in rules):
        return Weights(0)
    raise RouterError(f"{ROUTER}: HTTPRoute routes to neither {stable} nor {candidate}")


def _session_rule(rule: Obj) -> bool:
    """Whether ``rule`` is one of :func:`_session_rules`' (it tells the client its variant)."""
    return any(
        f.get("type") == "ResponseHeaderModifier"
        and any(
            h.get("name") == VARIANT_HEADER for h in dig(f, "responseHeaderModifier", "set") or []
        )
        for f in rule.get("filters") or []
    )


def _variant_weights(canary: ModelCanary, refs: list[Obj]) -> dict[str, int]:
    """The weight each variant's predictor Service gets from a rule's ``refs``, the pairer's
    port for it counted as the variant (:func:`_through_pairer`)."""
    stable, candidate = _services(canary)
    by_port = {port: (stable, candidate)[i] for i, port in enumerate(pairer.PORTS.values())}
    out: dict[str, int] = {}
    for ref in refs:
        name = str(ref.get("name"))
        if name == pairer.pairer_name(canary) and ref.get("port") in by_port:
            name = by_port[ref["port"]]
        out[name] = out.get(name, 0) + int(ref.get("weight", 1))
    return out


def _same_parent(canary: ModelCanary, ref: Obj) -> bool:
    """Whether a ``parentRef`` (as a controller echoes it in the route's status) names the
    canary's Gateway: name, namespace (the route's when unset) and section."""
    want = _parent_refs(canary)[0]
    namespace = canary.metadata.namespace
    return (
        ref.get("kind", "Gateway") == "Gateway"
        and ref.get("group", "gateway.networking.k8s.io") == "gateway.networking.k8s.io"
        and ref.get("name") == want["name"]
        and (ref.get("namespace") or namespace) == want.get("namespace", namespace)
        and ref.get("sectionName") == want.get("sectionName")
    )


def taken_up(canary: ModelCanary, route: Obj) -> None:
    """Whether the Gateway's controllers have taken up ``route`` as stored (pure).

    Gateway API has each implementation write, per parent it serves, an ``Accepted`` condition
    whose ``observedGeneration`` is the route generation it built its configuration from
    (``RouteParentStatus`` in ``apis/v1/shared_types.go``, ``sigs.k8s.io/gateway-api`` v1.5.1).
    Traefik v3.6.12 writes it in the pass that builds the routers and weighted services, then
    applies that configuration within its ``providersThrottleDuration`` (2 s); after an API
    server outage its informers can lag tens of seconds (docs/routing.md, "When weights count
    as verified"). So the weights read back count as in effect only once every controller
    reporting on the canary's parent reports the current generation: :class:`RouterPending`
    while one reports an older one, :class:`RouterError` when one reports it not accepted. A
    route no controller reports on (an implementation that writes no status, or none running)
    is taken as before this check: the read-back alone."""
    generation = int(dig(route, "metadata", "generation") or 0)
    for parent in dig(route, "status", "parents") or []:
        if not isinstance(parent, dict) or not _same_parent(canary, parent.get("parentRef") or {}):
            continue
        who = parent.get("controllerName") or "the Gateway's controller"
        accepted = next(
            (c for c in parent.get("conditions") or [] if c.get("type") == "Accepted"), None
        )
        seen = int((accepted or {}).get("observedGeneration") or 0)
        if accepted is None or seen < generation:
            raise RouterPending(
                f"{ROUTER}: {who} has not taken up generation {generation} of the HTTPRoute "
                f"yet (it reports {seen or 'none'})"
            )
        if accepted.get("status") != "True":
            raise RouterError(
                f"{ROUTER}: {who} does not accept the HTTPRoute: {accepted.get('reason')}: "
                f"{accepted.get('message') or ''}".rstrip(": ")
            )


def routes_beside(kube: KubeClient, canary: ModelCanary) -> list[Obj]:
    """The HTTPRoutes of ``canary``'s namespace and of its Gateway's, its own among them: where
    a route that matches the same requests on the same parent can be (a namespace that cannot
    be listed is left out; a route of a third namespace allowed on the listener is not seen)."""
    gateway = canary.spec.traffic.gateway or DEFAULT_GATEWAY
    namespaces = {canary.metadata.namespace, gateway.namespace or canary.metadata.namespace}
    found: list[Obj] = []
    for namespace in sorted(namespaces):
        try:
            found += kube.list(API_VERSION, KIND, namespace)
        except KubeError:
            continue
    return found


def route_ref(canary: ModelCanary) -> Ref:
    """The HTTPRoute of ``canary``."""
    return route_object_ref(API_VERSION, KIND, canary)


def router(kube: KubeClient) -> ObjectRouter:
    """Applies :func:`build_httproute` through the Kubernetes adapter and reads it back; the
    weights are verified once the Gateway's controllers have taken them up (:func:`taken_up`)."""
    return ObjectRouter(ROUTER, kube, route_ref, build_httproute, weights_of, taken_up)
