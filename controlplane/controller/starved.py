"""A candidate its route sends traffic to that finished no request: say so, and why.

Owns the ``NoTraffic`` warning (``status.warnings``, set and cleared by evaluations alone) and
its Event, sent when the message changes. The causes are those the controller can check: for the
``gateway-api`` router, other HTTPRoutes on the same parent that take the route's requests, a
parent that does not accept it, and a route with no hostnames
(:func:`controlplane.routing.overlap.no_traffic_causes`; the routes of the canary's namespace and
of its Gateway's are read). Called by the reconciler with each evaluation's observations. See
docs/controller.md, "A candidate that gets no traffic".
"""

from __future__ import annotations

from controlplane.controller.context import Ctx, event
from controlplane.errors import KubeError
from controlplane.kube.client import KubeClient
from controlplane.rollout.observations import Observations, candidate_starved
from controlplane.routing import gateway_api, overlap
from controlplane.status import document as st


def causes(kube: KubeClient, ctx: Ctx) -> list[str]:
    """What the controller can see that keeps requests from the candidate's route."""
    if ctx.canary.spec.traffic.router != "gateway-api":
        return []
    try:
        route = kube.get(gateway_api.route_ref(ctx.canary))
    except KubeError:
        return []
    return overlap.no_traffic_causes(route, gateway_api.routes_beside(kube, ctx.canary))


def message(weight: int, mirror: bool, seen: list[str]) -> str:
    """The warning: what was seen, then the causes found (or that none was)."""
    sent = "a mirror of the traffic" if mirror else f"{weight}% of the traffic"
    head = f"the candidate finished no request at this evaluation while its route sends it {sent}"
    if not seen:
        return (
            f"{head}; no cause the controller can check was found (is traffic reaching the "
            "route at all?)"
        )
    return f"{head}; likely: {'; '.join(seen)}"


def assess(kube: KubeClient, ctx: Ctx, obs: Observations) -> None:
    """Set ``ctx.traffic`` from an evaluation's ``obs`` in the state it was made in, and send
    the ``NoTraffic`` Event when its message is new."""
    state = ctx.state
    if state.stage not in ("shadow", "steps"):
        return
    starved = candidate_starved(obs.checks)
    if starved is None:
        return  # nothing counted the candidate's requests: the last finding stands
    if not starved or (state.weight <= 0 and not state.mirror):
        ctx.traffic = {}
        return
    text = message(state.weight, state.mirror, causes(kube, ctx))
    ctx.traffic = {st.NO_TRAFFIC: text}
    current = (ctx.obj.get("status") or {}).get(st.WARNINGS_KEY) or []
    if not any(w.get("type") == st.NO_TRAFFIC and w.get("message") == text for w in current):
        event(kube, ctx.obj, st.NO_TRAFFIC, text, "Warning")
