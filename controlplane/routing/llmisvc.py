"""The ``llmisvc`` router: proportional weights between two LLMInferenceServices (llm-d).

Owns ``spec.router.route`` of the two LLMInferenceServices: a weighted member names the canary's
route group; a member at weight 0 has no route (its own paths would bypass the split); weights
are read from KServe's routes in effect. No cohorts, no mirroring. What KServe v0.20.0 does:
docs/routing.md, "LLMInferenceService as observed".
"""

from __future__ import annotations

from controlplane.errors import NotFound, RouterError
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.profiles.catalog import Catalog
from controlplane.routing._common import dig, percent, read, target_weights
from controlplane.routing.base import Outcome, Weights, check_request
from controlplane.routing.ownership import Claimant, ForeignObject, foreign_line, refusal
from controlplane.serving import object_names
from controlplane.serving.render import (
    LLMISVC_API_VERSION,
    Role,
    isvc_name,
    llm_inference_service,
)
from controlplane.spec.models import ModelCanary

KIND = "LLMInferenceService"
ROUTER = "llmisvc"
ROLES: tuple[Role, Role] = ("stable", "candidate")
ROUTE_API_VERSION = "gateway.networking.k8s.io/v1"
ROUTE_SUFFIX = "-kserve-route"
"""KServe names a member's HTTPRoute ``kmeta.ChildName(<member>, "-kserve-route")``."""
WORKLOAD_SUFFIX = "-kserve-workload-svc"
POOL_SUFFIX = "-inference-pool"


def route_group(canary: ModelCanary) -> str:
    return object_names.route_name(canary.metadata.name)


def _weight(weights: Weights, role: Role) -> int:
    return weights.candidate if role == "candidate" else weights.stable


def build_route_patch(canary: ModelCanary, role: Role, weights: Weights) -> Obj:
    """The merge patch putting ``role`` in the canary's route group with its weight, or, at
    weight 0, removing its route altogether (no group, no HTTPRoute) (pure)."""
    weight = _weight(weights, role)
    if weight == 0:
        return {"spec": {"router": {"route": None}}}
    return {"spec": {"router": {"route": {"group": route_group(canary), "weight": weight}}}}


def build_llminferenceservices(
    canary: ModelCanary,
    catalog: Catalog,
    weight: int,
    mirror: bool,
    outcome: Outcome | None = None,
    replicas: dict[Role, int] | None = None,
) -> list[Obj]:
    """Both LLMInferenceServices, routes included, at a rollout point (pure): a member at
    weight 0 has no ``spec.router``; ``replicas``: the capacity plan's counts."""
    target = target_weights(weight, mirror, outcome)
    check_request(canary, target)
    objs = []
    for role in ROLES:
        count = None if replicas is None else replicas[role]
        obj = llm_inference_service(canary, role, catalog, count)
        router = build_route_patch(canary, role, target)["spec"]["router"]
        if router["route"] is not None:
            obj["spec"]["router"] = router
        objs.append(obj)
    return objs


def weights_of(canary: ModelCanary, stable: Obj, candidate: Obj) -> Weights:
    """The weights the two objects' routes ask for (pure): what KServe is told, not what
    routes. A member without a route in the canary's group asks for 0."""
    group = route_group(canary)
    got = []
    for obj in (stable, candidate):
        route = dig(obj, "spec", "router", "route") or {}
        got.append(int(route.get("weight", 0)) if route.get("group") == group else 0)
    return Weights(percent(got[1], got[0] + got[1]))


def route_name(member: str) -> str:
    return object_names.child_name(member, ROUTE_SUFFIX)


def _per_participant(rule: Obj, prefix: str) -> bool:
    """KServe's ``isPerParticipantRule``: a match whose path is ``prefix`` or under it."""
    for match in rule.get("matches") or []:
        path = dig(match, "path", "value")
        if isinstance(path, str) and (path == prefix or path.startswith(prefix + "/")):
            return True
    return False


def route_split(canary: ModelCanary, role: Role, route: Obj) -> dict[Role, int]:
    """The weights the HTTPRoute of ``role``'s member gives each variant on its shared (group)
    rules, the ones that are not its per-participant ``/{namespace}/{member}`` rules (pure).
    A backend is a member's workload Service or InferencePool; a route whose shared rules
    disagree, or that routes to anything else, is a RouterError."""
    namespace = canary.metadata.namespace
    member = dig(route, "metadata", "name") or ""
    owner = isvc_name(canary, role)
    backends: dict[str, Role] = {}
    for each in ROLES:
        name = isvc_name(canary, each)
        backends[object_names.child_name(name, WORKLOAD_SUFFIX)] = each
        backends[object_names.child_name(name, POOL_SUFFIX)] = each
    split: dict[Role, int] | None = None
    for rule in dig(route, "spec", "rules") or []:
        if _per_participant(rule, f"/{namespace}/{owner}"):
            continue
        got: dict[Role, int] = {"stable": 0, "candidate": 0}
        for backend in rule.get("backendRefs") or []:
            to = backends.get(str(backend.get("name")))
            if to is None:
                raise RouterError(
                    f"{ROUTER}: HTTPRoute {member} routes to {backend.get('name')!r}, "
                    "neither variant's workload"
                )
            got[to] += int(backend.get("weight", 1))
        if split is not None and got != split:
            raise RouterError(
                f"{ROUTER}: HTTPRoute {member} splits its rules differently ({split} and {got})"
            )
        split = got
    if split is None:
        raise RouterError(f"{ROUTER}: HTTPRoute {member} has no shared rule")
    return split


def routes_in_effect(routes: dict[Role, Obj]) -> list[Role]:
    """The members whose routes exist, in Gateway API's precedence for identical matches (pure):
    oldest ``creationTimestamp`` first, then ``{namespace}/{name}`` alphabetically
    (``HTTPRouteRule``, ``apis/v1/httproute_types.go``, Gateway API v1.5.1). The first one's
    shared rules carry the split in effect."""
    return sorted(
        routes,
        key=lambda role: (
            str(dig(routes[role], "metadata", "creationTimestamp") or ""),
            f"{dig(routes[role], 'metadata', 'namespace')}/{dig(routes[role], 'metadata', 'name')}",
        ),
    )


def split_weights(split: dict[Role, int]) -> Weights:
    return Weights(percent(split["candidate"], split["stable"] + split["candidate"]))


class LLMISvcRouter:
    """Merge-patches the routes of the two LLMInferenceServices; reads the split from KServe's
    HTTPRoutes."""

    name = ROUTER

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    def _ref(self, canary: ModelCanary, role: Role) -> Ref:
        return Ref(LLMISVC_API_VERSION, KIND, canary.metadata.namespace, isvc_name(canary, role))

    def _write(self, canary: ModelCanary, weights: Weights) -> None:
        check_request(canary, weights)
        claimant = Claimant.of_canary(canary)
        live = [read(self.kube, self._ref(canary, role), ROUTER) for role in ROLES]
        foreign = [line for obj in live if (line := foreign_line(obj, claimant)) is not None]
        if foreign:  # patch neither
            raise ForeignObject(refusal(claimant, foreign))
        for role in ROLES:
            self.kube.patch(self._ref(canary, role), build_route_patch(canary, role, weights))

    def _routes(self, canary: ModelCanary) -> dict[Role, Obj]:
        """KServe's HTTPRoute of each member that has one."""
        found: dict[Role, Obj] = {}
        for role in ROLES:
            ref = Ref(
                ROUTE_API_VERSION,
                "HTTPRoute",
                canary.metadata.namespace,
                route_name(isvc_name(canary, role)),
            )
            try:
                found[role] = self.kube.get(ref)
            except NotFound:
                continue
        return found

    def set_weights(self, canary: ModelCanary, candidate_weight: int, mirror: bool) -> None:
        self._write(canary, Weights(candidate_weight, mirror))

    def get_weights(self, canary: ModelCanary) -> Weights:
        """The split in effect: the shared rules of the member route that takes precedence."""
        routes = self._routes(canary)
        if not routes:
            raise RouterError(
                f"{ROUTER}: KServe has not written an HTTPRoute for {isvc_name(canary, 'stable')} "
                f"or {isvc_name(canary, 'candidate')} (it does once a member has a route)"
            )
        first = routes_in_effect(routes)[0]
        return split_weights(route_split(canary, first, routes[first]))

    def verify(self, canary: ModelCanary, expected: Weights) -> None:
        """The split in effect is ``expected``, every member route agrees, and a member at
        weight 0 has no route (its per-participant paths would reach it)."""
        actual = self.get_weights(canary)
        routes = self._routes(canary)
        problems = []
        if actual != expected:
            asked = weights_of(
                canary, *(read(self.kube, self._ref(canary, r), ROUTER) for r in ROLES)
            )
            hint = ""
            if asked == expected:
                hint = (
                    " (KServe splits only towards Ready members, and each member's route "
                    "converges in turn)"
                )
            problems.append(f"KServe's HTTPRoutes route {actual}, expected {expected}{hint}")
        for role in ROLES:
            route = routes.get(role)
            if route is None:
                continue
            name = route["metadata"]["name"]
            if _weight(expected, role) == 0:
                problems.append(f"HTTPRoute {name} still routes to the {role} at weight 0")
            elif actual == expected and split_weights(route_split(canary, role, route)) != expected:
                got = split_weights(route_split(canary, role, route))
                problems.append(f"HTTPRoute {name} routes {got}, not yet {expected}")
        if problems:
            raise RouterError(f"{ROUTER}: " + "; ".join(problems))

    def finalize(self, canary: ModelCanary, outcome: Outcome) -> None:
        self._write(canary, target_weights(0, False, outcome))
