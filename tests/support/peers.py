"""One canary of one tool on the real stack, with what it cost: the side-by-side runs' shared part.

Owns :func:`flagger_run` (Flagger v1.44.0's tutorial Canary on a Deployment of the engine, the
candidate's faults in its new arguments) and the measures every run takes the same way
(:class:`Outcome`): the requests the candidate served until the tool's verdict, the seconds from
the candidate's arrival to that verdict, the requests that failed, and the Prometheus queries
(Prometheus's own ``prometheus_http_requests_total`` of its query handlers, on its
``/metrics``) and API writes (the API server's audit log, by the tool's ``User-Agent``) per
minute meanwhile. Called by
``tests/routing/test_real_peers.py``; ``bench/peers.py`` renders what it wrote.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from controlplane.kube.real import RealKube
from harness.cluster.gateways import GATEWAY
from harness.cluster.kubeapi import applier, audit_events, start_cluster
from harness.cluster.monitoring import start_monitoring
from harness.cluster.traefik import start_traefik
from harness.cluster.upstream_crds import GATEWAY_API, PROMETHEUS_OPERATOR
from harness.cluster.upstream_crds import crds as upstream
from harness.cluster.workloads import start_workloads
from harness.node.node import start_node
from harness.node.serving import MODELS_DIR, write_model
from harness.peers.render import (
    CANDIDATE,
    STABLE,
    Candidate,
    Pace,
    analysis_template,
    candidate,
    engine_args,
    engine_deployment,
    flagger_canary,
    flagger_metric_templates,
    latency_bound,
    pod_template,
    rollouts_objects,
)
from harness.peers.run import USER_AGENTS
from support.real_traffic import Load, Stack
from support.realnode import until

MODEL = "llama-tiny"
APP = "engine"
QUERY_HANDLERS = "/api/v1/query|/api/v1/query_range"
AFTER_S = 10.0
"""The load runs this long after the verdict (what users met once it was applied)."""


@dataclass
class Outcome:
    """One run of one tool on one candidate."""

    tool: str
    candidate: str
    bad: bool
    verdict: str
    """``rolled back``, ``promoted`` or ``undecided`` (no verdict within the run's timeout)."""
    seconds: float
    candidate_requests: int
    requests: int
    failed: int
    queries_per_minute: float
    writes_per_minute: float
    base_latency_s: float
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def peers_stack(folder: Path) -> Iterator[Stack]:
    """What the peers need of :func:`support.real_traffic.real_stack`, and no KServe: the
    loopback control plane with the Gateway API and Prometheus Operator CRDs and an audit log of
    every write, kube-controller-manager and kube-scheduler, the real node with the engine image,
    Traefik (its CRD provider on, for Rollouts' router) and the Prometheus Operator's
    Prometheus; stopped after."""
    crds = [*upstream(GATEWAY_API), *upstream(PROMETHEUS_OPERATOR)]
    with start_cluster(folder, crds=crds, service_accounts=True, audit_writes=True) as cluster:
        start_workloads(cluster, nodes=[])
        real = start_node(cluster, cluster.workdir / "node")
        try:
            gateway = start_traefik(cluster, crd=True)
            prometheus = start_monitoring(cluster, gateway=gateway).url
            kube = RealKube.connect(kubeconfig=str(cluster.kubeconfig))
            yield Stack(cluster, real, gateway, prometheus, kube, cluster.kubeconfig)
        finally:
            real.stop()


def prometheus_queries(prometheus: str) -> float:
    """How many queries Prometheus has answered: its own ``prometheus_http_requests_total`` of
    the query handlers, read from its ``/metrics`` (it does not scrape itself here)."""
    with urllib.request.urlopen(f"{prometheus}/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and any(
            f'handler="{h}"' in line for h in QUERY_HANDLERS.split("|")
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def writes(stack: Stack, agent: str, start: float, end: float) -> int:
    """The API writes whose ``User-Agent`` begins with ``agent`` between ``start`` and ``end``."""
    count = 0
    for event in audit_events(stack.cluster):
        if not str(event.get("userAgent", "")).startswith(agent):
            continue
        stamp = event.get("requestReceivedTimestamp", "")
        when = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        if start <= when <= end:
            count += 1
    return count


def latencies(load: Load, n: int = 20) -> list[float]:
    """The seconds of ``n`` answered requests one after the other (a stable that fails 1 % of
    its requests on purpose fails some: they are sent again, up to ``n`` more)."""
    seconds: list[float] = []
    for _ in range(2 * n):
        answer = load.one()
        if answer.code == 200:
            seconds.append(answer.seconds)
        if len(seconds) == n:
            return seconds
    raise AssertionError(f"{load.url}: fewer than {n} of {2 * n} requests answered")


def _run_load(load: Load) -> threading.Thread:
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    return thread


def measure(
    stack: Stack,
    tool: str,
    chosen: Candidate,
    load: Load,
    trigger: Any,
    verdict: Any,
    timeout: float,
    base: float,
) -> Outcome:
    """Run ``load`` from now, ``trigger()`` the candidate ``chosen``, wait for ``verdict()`` (a
    verdict string or None) up to ``timeout``, keep the load :data:`AFTER_S` more; the
    outcome."""
    thread = _run_load(load)
    queries0 = prometheus_queries(stack.prometheus)
    start = time.time()
    trigger()
    got = None
    deadline = time.monotonic() + timeout
    while got is None and time.monotonic() < deadline:
        got = verdict()
        if got is None:
            time.sleep(1.0)
    end = time.time()
    queries1 = prometheus_queries(stack.prometheus)
    time.sleep(AFTER_S)
    load.stop.set()
    thread.join(timeout=5)
    time.sleep(3)  # the last answers in flight
    minutes = max(end - start, 1.0) / 60.0
    answers = [a for a in load.answers if a.sent >= start]
    return Outcome(
        tool=tool,
        candidate=chosen.name,
        bad=chosen.bad,
        verdict=got or "undecided",
        seconds=round(end - start, 1),
        candidate_requests=sum(1 for a in answers if a.variant == CANDIDATE and a.sent <= end),
        requests=len(answers),
        failed=sum(1 for a in answers if a.failed),
        queries_per_minute=round((queries1 - queries0) / minutes, 1),
        writes_per_minute=round(writes(stack, USER_AGENTS[tool], start, end) / minutes, 1),
        base_latency_s=round(base, 3),
    )


def _canary_phase(stack: Stack, namespace: str) -> str:
    path = f"/apis/flagger.app/v1beta1/namespaces/{namespace}/canaries/{APP}"
    return str((stack.cluster.request("GET", path).get("status") or {}).get("phase", ""))


def _available(stack: Stack, namespace: str, name: str) -> bool:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    status = stack.cluster.request("GET", path).get("status") or {}
    return int(status.get("availableReplicas") or 0) >= 1


def flagger_run(
    stack: Stack, namespace: str, name: str, pace: Pace, timeout: float = 900
) -> Outcome:
    """Flagger's canary of the candidate ``name`` (:func:`harness.peers.render.candidate`) in
    ``namespace`` (host ``<namespace>.example.com``):
    the stable Deployment, the tutorial's MetricTemplates and Canary, then the Deployment's new
    arguments (the candidate), with the load on from before the change to after the verdict.

    The tutorial's latency bound, 0.5 s, is podinfo's P99; the engine is slower, so the bound
    is :func:`harness.peers.render.latency_bound` of the slowest of 20 requests to the stable's
    pod before the Canary exists (a platform team sets it above what its stable shows)."""
    apply = applier(stack.cluster)
    write_model(MODEL)
    model_dir = str(MODELS_DIR / MODEL)
    image = stack.node.images["engine"]
    host = f"{namespace}.example.com"
    model = f"{namespace}-llm"
    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for template in flagger_metric_templates(namespace, stack.prometheus):
        apply(template)

    def deployment(variant: str, inject: tuple[str, ...]) -> dict[str, Any]:
        args = engine_args(model, variant, inject)
        return engine_deployment(namespace, APP, image, model, model_dir, args)

    apply(deployment(STABLE, candidate(name, 1.0).stable_inject))
    until(lambda: _available(stack, namespace, APP), f"{namespace}/{APP} available", 300)
    pod = stack.cluster.request(
        "GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3D{APP}"
    )["items"][0]
    seen = latencies(Load(f"http://{pod['status']['podIP']}:8080", host, model))
    base = statistics.median(seen)
    chosen = candidate(name, base)
    apply(flagger_canary(namespace, APP, host, GATEWAY, pace, latency_bound(max(seen))))
    until(
        lambda: _canary_phase(stack, namespace) == "Initialized",
        f"Flagger initialized {namespace}/{APP}",
        300,
    )
    load = Load(stack.gateway.url, host, model)
    until(lambda: load.one().code == 200, f"{host} answers through the gateway", 120)

    def verdict() -> str | None:
        phase = _canary_phase(stack, namespace)
        return {"Succeeded": "promoted", "Failed": "rolled back"}.get(phase)

    outcome = measure(
        stack,
        "flagger",
        chosen,
        load,
        lambda: apply(deployment(CANDIDATE, chosen.inject)),
        verdict,
        timeout,
        base,
    )
    outcome.detail = _canary_phase(stack, namespace)
    _clean(stack, namespace)
    return outcome


def _clean(stack: Stack, namespace: str) -> None:
    """Delete the Canary, then its Deployments: no pod of a finished run keeps a core busy."""
    for path in (
        f"/apis/flagger.app/v1beta1/namespaces/{namespace}/canaries/{APP}",
        f"/apis/apps/v1/namespaces/{namespace}/deployments/{APP}",
        f"/apis/apps/v1/namespaces/{namespace}/deployments/{APP}-primary",
    ):
        with contextlib.suppress(OSError):
            stack.cluster.request("DELETE", path)


def _rollout(stack: Stack, namespace: str) -> dict[str, Any]:
    path = f"/apis/argoproj.io/v1alpha1/namespaces/{namespace}/rollouts/{APP}"
    got: dict[str, Any] = stack.cluster.request("GET", path)
    return got


def rollouts_run(
    stack: Stack, namespace: str, name: str, pace: Pace, timeout: float = 1800
) -> Outcome:
    """Argo Rollouts' canary of the candidate ``name`` in ``namespace``: the Services,
    TraefikService, HTTPRoute and Rollout of :func:`harness.peers.render.rollouts_objects` with
    the stable's pod template, the AnalysisTemplate once the stable's latency is known (the same
    bound as Flagger's), then the Rollout's new template (the candidate). Promoted: the stable
    ReplicaSet is the candidate's; rolled back: the Rollout aborted (``status.abort``)."""
    apply = applier(stack.cluster)
    write_model(MODEL)
    model_dir = str(MODELS_DIR / MODEL)
    image = stack.node.images["engine"]
    host = f"{namespace}.example.com"
    model = f"{namespace}-llm"
    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})

    def template(variant: str, inject: tuple[str, ...]) -> dict[str, Any]:
        return pod_template(APP, image, model, model_dir, engine_args(model, variant, inject))

    objects = rollouts_objects(
        namespace, APP, host, GATEWAY, template(STABLE, candidate(name, 1.0).stable_inject), pace
    )
    # Rollouts reconciles no Rollout whose AnalysisTemplate is missing ("AnalysisTemplate
    # 'engine' not found"), even before any analysis: one is there from the start, its latency
    # bound set once the stable's latency is known (before the candidate arrives)
    apply(analysis_template(namespace, APP, stack.prometheus, pace, latency_bound(60.0)))
    for obj in objects:
        apply(obj)
    until(
        lambda: (_rollout(stack, namespace).get("status") or {}).get("phase") == "Healthy",
        f"Rollout {namespace}/{APP} Healthy",
        300,
    )
    pod = stack.cluster.request(
        "GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3D{APP}"
    )["items"][0]
    seen = latencies(Load(f"http://{pod['status']['podIP']}:8080", host, model))
    base = statistics.median(seen)
    chosen = candidate(name, base)
    apply(analysis_template(namespace, APP, stack.prometheus, pace, latency_bound(max(seen))))
    load = Load(stack.gateway.url, host, model)
    until(lambda: load.one().code == 200, f"{host} answers through the gateway", 120)
    stable = (_rollout(stack, namespace).get("status") or {}).get("stableRS")
    changed = {**objects[-1]}
    changed["spec"] = {**changed["spec"], "template": template(CANDIDATE, chosen.inject)}

    def verdict() -> str | None:
        status = _rollout(stack, namespace).get("status") or {}
        if status.get("abort"):
            return "rolled back"
        if status.get("stableRS") not in (None, stable) and status.get("phase") == "Healthy":
            return "promoted"
        return None

    outcome = measure(
        stack,
        "argo-rollouts",
        chosen,
        load,
        lambda: apply(changed),
        verdict,
        timeout,
        base,
    )
    outcome.detail = str((_rollout(stack, namespace).get("status") or {}).get("message", ""))
    for path in (
        f"/apis/argoproj.io/v1alpha1/namespaces/{namespace}/rollouts/{APP}",
        f"/apis/networking.k8s.io/v1/namespaces/{namespace}/httproutes/{APP}",
    ):
        with contextlib.suppress(OSError):
            stack.cluster.request("DELETE", path)
    return outcome
