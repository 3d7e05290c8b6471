"""The one protocol every router implements, its value types and the capability table.

Owns what "a router" means to the controller (``set_weights`` / ``get_weights`` / ``verify`` /
``finalize``, Argo Rollouts' ``TrafficRoutingReconciler`` shape) and :data:`CAPABILITIES`, which
validation reads so a spec asking what its router cannot do is refused up front. Each router has
a pure ``build_*`` and a thin class applying it. See docs/routing.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from controlplane.errors import Problem, RouterError
from controlplane.promql import http_errors

if TYPE_CHECKING:
    from controlplane.spec.models import ModelCanary, RouterName

Outcome = Literal["promoted", "rolled_back"]


@dataclass(frozen=True)
class Weights:
    """Where user traffic goes: ``candidate`` percent to the candidate, the rest to stable.

    ``mirror`` is True while the candidate receives a mirrored copy of the traffic (shadow).
    """

    candidate: int
    mirror: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.candidate <= 100:
            raise RouterError(f"candidate weight must be within 0..100, got {self.candidate}")

    @property
    def stable(self) -> int:
        return 100 - self.candidate

    def __str__(self) -> str:
        mirror = ", mirrored" if self.mirror else ""
        return f"stable {self.stable}% / candidate {self.candidate}%{mirror}"


VARIANT_HEADER = "x-canary-variant"
"""The variant that answers a request: set on the request by a ``gateway-api`` backendRef, on
a pinned session's answers by the ``gateway-api`` and ``istio`` session rules, and by the local
stack's engines and router on every answer."""


@dataclass(frozen=True)
class Capabilities:
    """What a router can express: a cohort by header (``cohort``), a shadow copy (``mirror``, of a
    fraction with ``mirror_percent``), both variants in one InferenceService (``single_service``).
    """

    cohort: bool
    mirror: bool
    mirror_percent: bool
    single_service: bool = False
    requires: str = ""
    sessions: bool = False
    """Whether it keeps a session on one variant (``traffic.session``): header matches by
    regular expression, rendered (:mod:`controlplane.routing.sessions`)."""


CAPABILITIES: dict[RouterName, Capabilities] = {
    "gateway-api": Capabilities(
        cohort=True,
        mirror=True,
        mirror_percent=True,
        requires="Gateway API CRDs (v1.2+ for mirror percent) and a Gateway implementation",
        sessions=True,
    ),
    "istio": Capabilities(
        cohort=True,
        mirror=True,
        mirror_percent=True,
        requires="Istio (networking.istio.io/v1 VirtualService)",
        sessions=True,
    ),
    "kserve": Capabilities(
        cohort=False,
        mirror=False,
        mirror_percent=False,
        single_service=True,
        requires=(
            "KServe after 0.20.0 in Standard mode with Gateway API ingress (it weights "
            "spec.canary in its HTTPRoute; 0.20.0 does not)"
        ),
    ),
    "kserve-knative": Capabilities(
        cohort=False,
        mirror=False,
        mirror_percent=False,
        single_service=True,
        requires="KServe in Knative (Serverless) mode (canaryTrafficPercent)",
    ),
    "llmisvc": Capabilities(
        cohort=False,
        mirror=False,
        mirror_percent=False,
        requires="KServe LLMInferenceService (v1alpha2) with llm-d",
    ),
}


NO_MIRROR = {"traefik": "Traefik"}
"""Gateway implementations that cannot serve a shadow phase. Traefik v3.6.12 loads no
``RequestMirror`` filter (``loadMiddlewares`` in ``pkg/provider/kubernetes/gateway/
httproute.go``): the rule that carries one is served by an error service answering 500."""


def capability_problems(canary: ModelCanary) -> list[Problem]:
    """Every feature the spec asks of its router that the router cannot provide, a shadow phase
    on a Gateway implementation that cannot mirror (:data:`NO_MIRROR`), and a Gateway
    implementation named in vain (:mod:`controlplane.promql.http_errors`)."""
    traffic = canary.spec.traffic
    router = traffic.router
    caps = CAPABILITIES[router]
    problems = http_errors.implementation_problems(canary)
    gateway = traffic.gateway
    if traffic.session is not None and not caps.sessions:
        problems.append(
            Problem(
                "spec.traffic.session",
                f"router {router!r} cannot keep a session on one variant; use gateway-api "
                'or istio (docs/routing.md, "Sessions that stay on one variant")',
            )
        )
    if traffic.cohort is not None and not caps.cohort:
        problems.append(
            Problem(
                "spec.traffic.cohort",
                f"router {router!r} cannot route by header (cohort); use gateway-api or istio",
            )
        )
    if (
        canary.spec.shadow is not None
        and caps.mirror
        and gateway is not None
        and gateway.implementation in NO_MIRROR
    ):
        problems.append(
            Problem(
                "spec.shadow",
                f"the Gateway is {NO_MIRROR[gateway.implementation]} "
                "(spec.traffic.gateway.implementation), which does not load the HTTPRoute's "
                "RequestMirror filter: the shadow phase's rule would answer 500; drop "
                "spec.shadow or use a Gateway that mirrors (envoy-gateway, istio)",
            )
        )
    if canary.spec.shadow is not None and not caps.mirror:
        problems.append(
            Problem(
                "spec.shadow",
                f"router {router!r} cannot mirror traffic (shadow); use gateway-api or istio",
            )
        )
    return problems


def check_request(canary: ModelCanary, weights: Weights) -> None:
    """RouterError when ``weights`` asks the canary's router for what it cannot do."""
    router = canary.spec.traffic.router
    if weights.mirror and not CAPABILITIES[router].mirror:
        raise RouterError(f"router {router!r} cannot mirror traffic (spec.shadow)")


class Router(Protocol):
    """Moves user traffic between a canary's stable and candidate variants."""

    def set_weights(self, canary: ModelCanary, candidate_weight: int, mirror: bool) -> None:
        """Send ``candidate_weight`` percent to the candidate (only the cohort, if one is set),
        and mirror traffic to it when ``mirror``."""
        ...

    def get_weights(self, canary: ModelCanary) -> Weights:
        """The weights currently applied, read back from the cluster."""
        ...

    def verify(self, canary: ModelCanary, expected: Weights) -> None:
        """Raise RouterError unless the read-back weights are ``expected``."""
        ...

    def finalize(self, canary: ModelCanary, outcome: Outcome) -> None:
        """Leave traffic in its final state: all on the candidate, or all on stable."""
        ...


def verify_weights(router_name: str, actual: Weights, expected: Weights) -> None:
    """Shared ``verify``: RouterError naming both sides when they differ."""
    if actual != expected:
        raise RouterError(f"{router_name}: applied weights are {actual}, expected {expected}")
