"""``error-rate``'s HTTP source follows the Gateway's implementation, through the controller.

The world is the controller's own (FakeKube, fake KServe, an injected clock:
:mod:`support.controller_world`), its Gateways of one GatewayClass; the metric source records
every query the analysis ticks send (and has no data: the checks stay inconclusive, the canary
stays in its first step). A Traefik GatewayClass makes the grouped ``error-rate`` query read
Traefik's per-service counters of the canary's Services (not Envoy's clusters); a class of an
implementation not known here, the engine alone; a spec naming the implementation is not read at
all; a Gateway the controller may not read (403) or that does not exist (404) leaves Envoy
Gateway's source in place and ONE Warning Event on the canary, however many ticks pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.controller_world import DAY, HOUR, NS, World, world_canary

from controlplane.controller.gateway_source import READ_EVERY_S, UNREADABLE_REASON
from controlplane.controller.reconcile import Reconciler
from controlplane.controller.runner import Controller
from controlplane.errors import Forbidden
from controlplane.kube.client import Obj, Ref
from harness.kube.fake import FakeKube

T0 = float(int(time.time()) // 3600 * 3600 - 30 * DAY)
PROMETHEUS = "http://prometheus.test:9090"
TRAEFIK = "traefik.io/gateway-controller"
GATEWAY_KINDS = ("Gateway", "GatewayClass")
# the canary "good" of model good-llm in ml-serving: its Services as Traefik names them
TRAEFIK_SERVICES = tuple(
    f"ml-serving-good-llm-{variant}-predictor-http-80@kubernetesgateway"
    for variant in ("bf16", "nf4")
)


class Recorded:
    """A metric source with no data that keeps every query it was asked."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def instant(self, query: str, at: float) -> float:
        self.queries.append(query)
        return float("nan")

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        self.queries.append(query)
        return []

    def vector(self, query: str, at: float) -> list[tuple[dict[str, str], float]]:
        self.queries.append(query)
        return []

    def error_rate(self) -> list[str]:
        """The queries of the error rate (the engine's error finishes are in each)."""
        return [q for q in self.queries if 'finished_reason=~"error"' in q]


class NoGateways:
    """The controller's client when its RBAC grants no Gateway API reads: get on a Gateway or a
    GatewayClass is 403 Forbidden (while ``forbid``), everything else is the fake's."""

    def __init__(self, kube: FakeKube) -> None:
        self._kube = kube
        self.forbid = True
        self.refused = 0

    def get(self, ref: Ref) -> Obj:
        if self.forbid and ref.kind in GATEWAY_KINDS:
            self.refused += 1
            raise Forbidden(
                f'403 Forbidden: {ref.kind.lower()}s.gateway.networking.k8s.io "{ref.name}" is '
                'forbidden: User "system:serviceaccount:canary-system:canary-controller" cannot '
                "get resource"
            )
        return self._kube.get(ref)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kube, name)


def world(
    controller: str | None = TRAEFIK, wrap: Any = None, **spec: Any
) -> tuple[World, Recorded]:
    """A world whose Gateways are of ``controller``'s class, canary ``good`` created, its
    analysis sent to a :class:`Recorded` source."""
    w = World(T0, PROMETHEUS, gateway_controller=controller, wrap=wrap)
    source = Recorded()
    client = wrap(w.kube) if wrap is not None else w.kube
    reconciler = Reconciler(client, w.catalog, w.settings)
    w.controller = Controller(client, reconciler, lambda url: source, w.clock, namespaces=[NS])
    w.create(world_canary("good", PROMETHEUS, **spec))
    return w, source


def run(w: World, source: Recorded, evaluations: int) -> None:
    """Drive ``w`` until its canary's error rate was asked ``evaluations`` times."""
    w.run_until(lambda _: len(source.error_rate()) >= evaluations, limit=3 * DAY)
    assert len(source.error_rate()) >= evaluations, w.history("good")


def unreadable(w: World) -> list[dict[str, Any]]:
    return [e for e in w.kube.list("v1", "Event", NS) if e["reason"] == UNREADABLE_REASON]


def gateway_reads(w: World) -> list[str]:
    return [c.target for c in w.kube.calls if c.method == "get" and "Gateway" in c.target]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="controlplane.controller.gateway_source"):
        yield caplog


def chosen(logs: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in logs.records if "error-rate reads" in r.getMessage()]


def test_a_traefik_gateway_class_makes_error_rate_read_traefik(
    logs: pytest.LogCaptureFixture,
) -> None:
    w, source = world(TRAEFIK)
    run(w, source, evaluations=3)
    for query in source.error_rate():
        assert "traefik_service_requests_total{service=~" in query
        assert all(service in query for service in TRAEFIK_SERVICES)
        assert 'code=~"5..|429"' in query
        assert "envoy_cluster" not in query
    assert unreadable(w) == []
    # the source is logged once, whatever the number of evaluations
    assert chosen(logs) == [
        f"{NS}/good: error-rate reads traefik (Gateway {NS}/gw is run by Traefik ({TRAEFIK}))"
    ]


def test_envoy_gateways_class_keeps_envoys_clusters() -> None:
    w, source = world("gateway.envoyproxy.io/gatewayclass-controller")
    run(w, source, evaluations=1)
    for query in source.error_rate():
        assert 'envoy_cluster_name=~"httproute/ml-serving/(good)/rule' in query
        assert "traefik_service" not in query


def test_an_unknown_implementation_leaves_the_engine_alone() -> None:
    w, source = world("example.com/some-gateway")
    run(w, source, evaluations=1)
    for query in source.error_rate():
        assert "envoy_cluster" not in query
        assert "traefik_service" not in query
        assert query.count("vllm:request_success_total{") == 2  # failed / all finishes
    assert unreadable(w) == []


def test_the_spec_names_the_implementation_and_nothing_is_read() -> None:
    traffic = {"router": "gateway-api", "gateway": {"name": "gw", "implementation": "traefik"}}
    w, source = world("gateway.envoyproxy.io/gatewayclass-controller", traffic=traffic)
    run(w, source, evaluations=2)
    assert all("traefik_service_requests_total{" in q for q in source.error_rate())
    assert gateway_reads(w) == []


def test_a_forbidden_gateway_is_one_event_and_envoys_source(
    logs: pytest.LogCaptureFixture,
) -> None:
    gate: list[NoGateways] = []

    def forbidden(kube: FakeKube) -> NoGateways:
        gate.append(NoGateways(kube))
        return gate[0]

    w, source = world(TRAEFIK, wrap=forbidden)
    # evaluations 2 h apart, each one past READ_EVERY_S: the Gateway is read at each, still
    # refused, still one Event
    assert 2 * HOUR > READ_EVERY_S
    run(w, source, evaluations=5)
    assert gate[0].refused >= 5
    for query in source.error_rate():
        assert "envoy_cluster_upstream_rq{" in query  # the router's default
        assert "traefik_service" not in query
    (told,) = unreadable(w)
    assert told["type"] == "Warning"
    assert told["count"] == 1
    assert told["involvedObject"]["name"] == "good"
    message = told["message"]
    assert message.startswith(f"cannot read Gateway {NS}/gw (403 Forbidden: ")
    assert "rbac.readGateways" in message
    assert "spec.traffic.gateway.implementation" in message
    assert "(envoy)" in message
    assert len(chosen(logs)) == 1
    # the controller may read it now: Traefik's counters from the next read on, no new Event
    gate[0].forbid = False
    w.clock.t += READ_EVERY_S
    before = len(source.error_rate())
    run(w, source, evaluations=before + 2)
    assert "traefik_service_requests_total{" in source.error_rate()[-1]
    assert len(unreadable(w)) == 1
    assert [m.split(" (")[0] for m in chosen(logs)] == [
        f"{NS}/good: error-rate reads envoy",
        f"{NS}/good: error-rate reads traefik",
    ]


def test_a_missing_gateway_is_one_event() -> None:
    w, source = world(None)  # no Gateway, no class
    run(w, source, evaluations=4)
    (told,) = unreadable(w)
    assert told["count"] == 1
    assert told["message"].startswith(f"cannot read Gateway {NS}/gw (404 NotFound")
    assert all("envoy_cluster_upstream_rq{" in q for q in source.error_rate())
