"""Which other HTTPRoutes take the requests a canary's HTTPRoute was meant to get. Pure.

Gateway API gives each request to one rule. Where rules of several routes on one parent match it
equally (the same hostnames, an identical match), the oldest route wins, then the first by
``namespace/name`` (``HTTPRouteRule.Matches`` in ``apis/v1/httproute_types.go``,
``sigs.k8s.io/gateway-api`` v1.5.1); Traefik v3.6.12 gives such routers one priority (computed
from the match and hostnames, ``buildMatchRule`` in
``pkg/provider/kubernetes/gateway/httproute.go``) and no fixed order among them. A canary's
route that loses every one of its matches that way gets no request at all, however its weights
are set, while it stays Accepted.

:func:`overlaps` finds such routes among those read on the cluster; :func:`no_traffic_causes`
names every cause of a starved route it can see (a route with precedence, no hostnames, a parent
that does not accept it). Called by ``canaryctl validate --cluster`` (before the route exists:
the one it would write) and by the controller when a candidate that the route sends traffic to
gets no request (:mod:`controlplane.controller.starved`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from controlplane.kube.client import Obj
from controlplane.routing._common import dig

DEFAULT_MATCH: Mapping[str, Any] = {"path": {"type": "PathPrefix", "value": "/"}}
"""What a rule without ``matches`` matches (the CRD's default, gateway-api v1.5.1)."""


def _parent(ref: Mapping[str, Any], namespace: str) -> tuple[str, str, str, str, str | None]:
    return (
        str(ref.get("group", "gateway.networking.k8s.io")),
        str(ref.get("kind", "Gateway")),
        str(ref.get("namespace") or namespace),
        str(ref.get("name", "")),
        ref.get("sectionName"),
    )


def _parents(route: Obj) -> set[tuple[str, str, str, str, str | None]]:
    namespace = str(dig(route, "metadata", "namespace") or "")
    return {_parent(r, namespace) for r in dig(route, "spec", "parentRefs") or []}


def _share_parent(a: Obj, b: Obj) -> str | None:
    """The Gateway both routes attach to (``namespace/name``), a section of one being the whole
    Gateway of the other too; None when they share none."""
    for pa in _parents(a):
        for pb in _parents(b):
            if pa[:4] == pb[:4] and (pa[4] is None or pb[4] is None or pa[4] == pb[4]):
                return f"{pa[2]}/{pa[3]}"
    return None


def _canonical(match: Mapping[str, Any]) -> tuple[Any, ...]:
    """A match as a comparable value (its path defaulted as the CRD does)."""
    path = match.get("path") or DEFAULT_MATCH["path"]
    headers = sorted(
        (str(h.get("type", "Exact")), str(h.get("name", "")).lower(), str(h.get("value", "")))
        for h in match.get("headers") or []
    )
    params = sorted(
        (str(q.get("type", "Exact")), str(q.get("name", "")), str(q.get("value", "")))
        for q in match.get("queryParams") or []
    )
    return (
        str(path.get("type", "PathPrefix")),
        str(path.get("value", "/")),
        match.get("method"),
        tuple(headers),
        tuple(params),
    )


def _matches(route: Obj) -> dict[tuple[Any, ...], Mapping[str, Any]]:
    out: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for rule in dig(route, "spec", "rules") or []:
        for match in rule.get("matches") or [DEFAULT_MATCH]:
            out.setdefault(_canonical(match), match)
    return out


def _hosts(route: Obj) -> frozenset[str]:
    return frozenset(str(h).lower() for h in dig(route, "spec", "hostnames") or [])


def _order(route: Obj) -> tuple[str, str]:
    """Gateway API's tie-break: the creation time (RFC 3339 in UTC sorts as text), then
    ``namespace/name``. A route not created yet sorts last: any existing one is older."""
    meta = route.get("metadata") or {}
    created = str(meta.get("creationTimestamp") or "~")
    return created, f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def name_of(route: Obj) -> str:
    meta = route.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _match_text(match: Mapping[str, Any]) -> str:
    path = match.get("path") or DEFAULT_MATCH["path"]
    text = f"{path.get('type', 'PathPrefix')} {path.get('value', '/')}"
    if match.get("headers"):
        text += " with headers " + ", ".join(
            f"{h.get('name')}={h.get('value')}" for h in match["headers"]
        )
    return text


def overlaps(route: Obj, others: Iterable[Obj]) -> list[str]:
    """Each route of ``others`` that matches every request ``route`` matches: on a shared
    parent, with the same hostnames (none: every host of the listener) and each of ``route``'s
    matches among its own. Only one of them gets those requests: under Gateway API the older
    (then the first by name), which each sentence names; Traefik v3.6.12 gives routers of equal
    priority no fixed order (``routes.Less`` in ``pkg/muxer/http/mux.go`` compares priorities
    alone, and ``sort.Sort`` is not stable), so either may."""
    mine = _matches(route)
    hosts = _hosts(route)
    found: list[str] = []
    for other in others:
        if name_of(other) == name_of(route):
            continue
        gateway = _share_parent(route, other)
        if gateway is None or _hosts(other) != hosts:
            continue
        theirs = _matches(other)
        if not mine or any(key not in theirs for key in mine):
            continue
        where = ", ".join(sorted(hosts)) if hosts else "every host, neither naming hostnames"
        matched = "; ".join(_match_text(m) for m in mine.values())
        older = other if _order(other) < _order(route) else route
        found.append(
            f"HTTPRoute {name_of(other)} on Gateway {gateway} matches the same requests "
            f"({where}; {matched}), and only one route gets them: Gateway API gives them to "
            f"the older, {name_of(older)} (Traefik v3.6.12 breaks such ties in no fixed order)"
        )
    return found


def refusals(route: Obj) -> list[str]:
    """What the parents that report on ``route`` say when they do not accept it."""
    out: list[str] = []
    for parent in dig(route, "status", "parents") or []:
        for cond in parent.get("conditions") or []:
            if cond.get("type") in ("Accepted", "ResolvedRefs") and cond.get("status") == "False":
                who = parent.get("controllerName") or "the Gateway's controller"
                out.append(
                    f"{who} reports {cond.get('type')} False: {cond.get('reason')}: "
                    f"{cond.get('message') or ''}".rstrip(": ")
                )
    return out


def no_traffic_causes(route: Obj, others: Sequence[Obj]) -> list[str]:
    """Every cause this can see of ``route`` getting no request: routes that take its requests
    (:func:`overlaps`), its parents refusing it, and no hostnames (it then competes for every
    host of the listener)."""
    causes = overlaps(route, others)
    causes += refusals(route)
    if not _hosts(route):
        causes.append(
            "the HTTPRoute names no hostnames, so it competes with every route on its listener "
            "(spec.traffic.hosts names them)"
        )
    return causes
