"""One canary of one tool on the real stack, with what it cost: the contest's shared part.

Owns :func:`peers_stack`, :func:`flagger_run` (Flagger v1.44.0's tutorial Canary on a Deployment
of the engine, the candidate's faults in its new arguments), :func:`rollouts_run` (Argo Rollouts
v1.10.2's background analysis), :func:`ours_run` (``canaryctl controller`` adopting a KServe
InferenceService of the engine, the candidate's faults in the ModelCanary's candidate, under
either judge), each on the contest's SLO and candidates (:mod:`harness.peers.contest`), and the
measures every run takes the same way (:class:`Outcome`): the stable's P95 and median under the
load (the candidate is made from them), the requests the candidate served until the tool's
verdict and how many of them in breach of the SLO, the seconds from the candidate's arrival to
that verdict, the requests that failed, and the Prometheus queries (Prometheus's own
``prometheus_http_requests_total`` of its query handlers, on its ``/metrics``) and API writes
(the API server's audit log, by the tool's ``User-Agent``) per minute meanwhile (ours: by the
chart's ServiceAccount, its user in the audit log). Called by
``tests/routing/test_real_peers.py``; ``bench/peers.py`` renders what it wrote.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from controlplane.kube.client import Ref
from controlplane.kube.real import RealKube
from controlplane.profiles.catalog import load_catalog
from controlplane.serving.object_names import variant_service_name
from harness.cluster.gateways import GATEWAY
from harness.cluster.kserve import start_kserve
from harness.cluster.kubeapi import applier, audit_events, start_cluster
from harness.cluster.monitoring import start_monitoring
from harness.cluster.traefik import start_traefik
from harness.cluster.upstream_crds import GATEWAY_API, PROMETHEUS_OPERATOR, all_crds
from harness.cluster.upstream_crds import crds as upstream
from harness.cluster.workloads import start_workloads
from harness.node.node import start_node
from harness.node.serving import MODELS_DIR, start_serving, write_model
from harness.peers.contest import (
    STABLE_INJECT,
    TRAEFIK_BUCKETS,
    ContestCandidate,
    Judge,
    breaching,
    contest_candidate,
    flagger_slo,
    ours_checks,
    p95,
    rollouts_slo,
)
from harness.peers.render import (
    CANDIDATE,
    ROLLOUTS_FAILURE_LIMIT,
    ROLLOUTS_INTERVAL_S,
    STABLE,
    Candidate,
    Pace,
    analysis_template,
    engine_args,
    engine_deployment,
    flagger_canary,
    flagger_traefik_service,
    ours_analysis,
    ours_controller_flags,
    ours_steps,
    pod_template,
    rollouts_objects,
    rollouts_traefik_service,
)
from harness.peers.run import USER_AGENTS
from support.adoption import adopting_canary, live_isvc
from support.prometheus import exposed_sum
from support.real_serving import GPU
from support.real_traffic import (
    RELEASE,
    RELEASE_NAMESPACE,
    Controller,
    Load,
    Stack,
    install_chart,
    pod_ready,
    prepare,
)
from support.realnode import until

MODEL = "llama-tiny"
APP = "engine"
OURS = "ours"
"""The tool name of ``canaryctl controller`` in the outcomes."""
OURS_TICK = "5s"
"""``canaryctl controller --tick``'s default (``controlplane/cli/controller.py``)."""
QUERY_HANDLERS = "/api/v1/query|/api/v1/query_range"
AFTER_S = 10.0
"""The load runs this long after the verdict (what users met once it was applied)."""


@dataclass
class Outcome:
    """One run of one tool on one candidate."""

    tool: str
    judge: str
    """Ours' judge (``threshold`` or ``sequential``); empty for a peer."""
    candidate: str
    expected: str | None
    """The verdict written down before the run (None: at the SLO's edge, not scored)."""
    verdict: str
    """``rolled back``, ``promoted`` or ``undecided`` (no verdict within the run's timeout)."""
    seconds: float
    candidate_requests: int
    breaching: int
    """Requests the candidate served in breach of the SLO before the verdict
    (:func:`harness.peers.contest.breaching`)."""
    requests: int
    failed: int
    queries_per_minute: float
    writes_per_minute: float
    base_latency_s: float
    """The stable's median latency at the gateway, under the load, before the candidate."""
    stable_p95_s: float
    detail: str = ""
    failures: list[dict[str, Any]] = field(default_factory=list)
    """Each failed request: ``at_s`` (sent, seconds after the candidate's arrival), ``code``
    (HTTP status, or the exception's name), ``variant`` (None: no answer said) and ``seconds``."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


OURS_GPUS = 4
"""The node's GPUs for ours: the live service's pod, the candidate's, and one each may surge to
(KServe rolls the live pods at a promotion)."""
OURS_USER = f"system:serviceaccount:{RELEASE_NAMESPACE}:{RELEASE}-controlplane"
"""Who our controller is in the audit log: the chart's ServiceAccount, whose token it runs on
(:func:`support.real_traffic.install_chart`). Its ``User-Agent`` is the Python client's, which
the harness's own requests share, so its writes are told by user."""


@contextmanager
def peers_stack(folder: Path, ours: bool = False) -> Iterator[Stack]:
    """What the peers need of :func:`support.real_traffic.real_stack`: the loopback control
    plane with the Gateway API and Prometheus Operator CRDs and an audit log of every write,
    kube-controller-manager and kube-scheduler, the real node with the engine image, Traefik
    (its CRD provider on, for Rollouts' router) and the Prometheus Operator's Prometheus;
    stopped after. With ``ours``, also what ours drives and runs on, as ``real_stack`` has it:
    every CRD (the ModelCanary's and KServe's), KServe v0.20.0 serving the engine image on the
    node's GPUs, and the chart installed (``Stack.controller_kubeconfig``: its
    ServiceAccount's token)."""
    crds = all_crds() if ours else [*upstream(GATEWAY_API), *upstream(PROMETHEUS_OPERATOR)]
    with start_cluster(folder, crds=crds, service_accounts=True, audit_writes=True) as cluster:
        start_workloads(cluster, nodes=[])
        if ours:
            start_kserve(cluster)
        real = start_node(cluster, cluster.workdir / "node")
        try:
            if ours:
                product = load_catalog().require_gpu(GPU).product_label
                start_serving(cluster, real, product, gpus=OURS_GPUS)
            gateway = start_traefik(cluster, crd=True, buckets=TRAEFIK_BUCKETS)
            prometheus = start_monitoring(cluster, gateway=gateway).url
            kube = RealKube.connect(kubeconfig=str(cluster.kubeconfig))
            token = install_chart(cluster) if ours else cluster.kubeconfig
            yield Stack(cluster, real, gateway, prometheus, kube, token)
        finally:
            real.stop()


def prometheus_queries(prometheus: str) -> float:
    """How many queries Prometheus has answered: its own ``prometheus_http_requests_total`` of
    the query handlers, read from its ``/metrics`` (it does not scrape itself here)."""
    with urllib.request.urlopen(f"{prometheus}/metrics", timeout=10) as response:
        text = response.read().decode()
    handlers = set(QUERY_HANDLERS.split("|"))
    return exposed_sum(
        text, "prometheus_http_requests_total", lambda labels: labels.get("handler") in handlers
    )


def writes(stack: Stack, tool: str, start: float, end: float) -> int:
    """The API writes of ``tool`` between ``start`` and ``end``: a peer's by its ``User-Agent``
    (:data:`harness.peers.run.USER_AGENTS`), ours by its user (:data:`OURS_USER`)."""
    count = 0
    for event in audit_events(stack.cluster):
        if tool == OURS:
            if (event.get("user") or {}).get("username") != OURS_USER:
                continue
        elif not str(event.get("userAgent", "")).startswith(USER_AGENTS[tool]):
            continue
        stamp = event.get("requestReceivedTimestamp", "")
        when = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        if start <= when <= end:
            count += 1
    return count


STABLE_ANSWERS = 100
"""Answers of the stable, under the load through the gateway, its P95 and median are taken
from before the candidate is made (docs/peers.md, "The candidates and their expected
verdicts")."""


def _run_load(load: Load) -> threading.Thread:
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    return thread


def stable_latency(load: Load, since: float, n: int = STABLE_ANSWERS) -> tuple[float, float]:
    """The P95 and median seconds of the first ``n`` answers the stable gave ``load`` (running)
    to requests sent from ``since``; the stable's deliberate errors are left out."""

    def seconds() -> list[float]:
        got = [
            a.seconds
            for a in list(load.answers)
            if a.sent >= since and a.code == 200 and a.variant == STABLE
        ]
        return sorted(got[:n]) if len(got) >= n else []

    seen = until(seconds, f"{n} answers of the stable through the gateway", 120)
    return p95(seen), statistics.median(seen)


def measure(
    stack: Stack,
    tool: str,
    judge: str,
    name: str,
    load: Load,
    trigger: Callable[[Candidate], None],
    verdict: Callable[[], str | None],
    timeout: float,
) -> Outcome:
    """Run ``load`` from now; once the stable's P95 and median under it are known
    (:func:`stable_latency`), make the contest's candidate ``name`` from them and ``trigger``
    it; wait for ``verdict()`` (a verdict string or None) up to ``timeout``, keep the load
    :data:`AFTER_S` more; the outcome."""
    thread = _run_load(load)
    stable_p95, median = stable_latency(load, time.time())
    chosen: ContestCandidate = contest_candidate(name, stable_p95, median)
    queries0 = prometheus_queries(stack.prometheus)
    start = time.time()
    trigger(chosen.candidate)
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
    until(load.answered, "every request answered", 60)  # the last answers in flight
    minutes = max(end - start, 1.0) / 60.0
    answers = [a for a in load.answers if a.sent >= start]
    served = [a.sent - start for a in answers if a.variant == CANDIDATE and a.sent <= end]
    return Outcome(
        tool=tool,
        judge=judge,
        candidate=name,
        expected=chosen.expected,
        verdict=got or "undecided",
        seconds=round(end - start, 1),
        candidate_requests=len(served),
        breaching=breaching(chosen, served),
        requests=len(answers),
        failed=sum(1 for a in answers if a.failed),
        queries_per_minute=round((queries1 - queries0) / minutes, 1),
        writes_per_minute=round(writes(stack, tool, start, end) / minutes, 1),
        base_latency_s=round(median, 3),
        stable_p95_s=round(stable_p95, 3),
        failures=[
            {
                "at_s": round(a.sent - start, 1),
                "code": a.code,
                "variant": a.variant,
                "seconds": round(a.seconds, 2),
            }
            for a in answers
            if a.failed
        ],
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
    """Flagger's canary of the contest's candidate ``name`` in ``namespace`` (host
    ``<namespace>.example.com``): the stable Deployment, the SLO's MetricTemplates on the
    canary and primary Services (:func:`harness.peers.contest.flagger_slo`) and the tutorial's
    Canary, then the Deployment's new arguments (the candidate), with the load on from before
    the change to after the verdict."""
    apply = applier(stack.cluster)
    write_model(MODEL)
    model_dir = str(MODELS_DIR / MODEL)
    image = stack.node.images["engine"]
    host = f"{namespace}.example.com"
    model = f"{namespace}-llm"
    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    templates, metrics = flagger_slo(
        namespace,
        stack.prometheus,
        flagger_traefik_service(namespace, APP, "canary"),
        flagger_traefik_service(namespace, APP, "primary"),
    )
    for template in templates:
        apply(template)

    def deployment(variant: str, inject: tuple[str, ...]) -> dict[str, Any]:
        args = engine_args(model, variant, inject)
        return engine_deployment(namespace, APP, image, model, model_dir, args)

    apply(deployment(STABLE, STABLE_INJECT))
    until(lambda: _available(stack, namespace, APP), f"{namespace}/{APP} available", 300)
    apply(flagger_canary(namespace, APP, host, GATEWAY, pace, metrics))
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
        "",
        name,
        load,
        lambda chosen: apply(deployment(CANDIDATE, chosen.inject)),
        verdict,
        timeout,
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
    """Argo Rollouts' canary of the contest's candidate ``name`` in ``namespace``: the SLO's
    AnalysisTemplate on the canary and stable Services
    (:func:`harness.peers.contest.rollouts_slo`, measured every paced 5m), the Services,
    TraefikService, HTTPRoute and Rollout of :func:`harness.peers.render.rollouts_objects` with
    the stable's pod template, then the Rollout's new template (the candidate). Promoted: the
    stable ReplicaSet is the candidate's; rolled back: the Rollout aborted (``status.abort``)."""
    apply = applier(stack.cluster)
    write_model(MODEL)
    model_dir = str(MODELS_DIR / MODEL)
    image = stack.node.images["engine"]
    host = f"{namespace}.example.com"
    model = f"{namespace}-llm"
    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})

    def template(variant: str, inject: tuple[str, ...]) -> dict[str, Any]:
        return pod_template(APP, image, model, model_dir, engine_args(model, variant, inject))

    objects = rollouts_objects(namespace, APP, host, GATEWAY, template(STABLE, STABLE_INJECT), pace)
    metrics = rollouts_slo(
        stack.prometheus,
        rollouts_traefik_service(namespace, APP, "canary"),
        rollouts_traefik_service(namespace, APP, "stable"),
        pace.duration(ROLLOUTS_INTERVAL_S),
        ROLLOUTS_FAILURE_LIMIT,
    )
    # Rollouts reconciles no Rollout whose AnalysisTemplate is missing ("AnalysisTemplate
    # 'engine' not found"), even before any analysis: it comes first
    apply(analysis_template(namespace, APP, metrics))
    for obj in objects:
        apply(obj)
    until(
        lambda: (_rollout(stack, namespace).get("status") or {}).get("phase") == "Healthy",
        f"Rollout {namespace}/{APP} Healthy",
        300,
    )
    load = Load(stack.gateway.url, host, model)
    until(lambda: load.one().code == 200, f"{host} answers through the gateway", 120)
    stable = (_rollout(stack, namespace).get("status") or {}).get("stableRS")

    def trigger(chosen: Candidate) -> None:
        changed = {**objects[-1]}
        changed["spec"] = {**changed["spec"], "template": template(CANDIDATE, chosen.inject)}
        apply(changed)

    def verdict() -> str | None:
        status = _rollout(stack, namespace).get("status") or {}
        if status.get("abort"):
            return "rolled back"
        if status.get("phase") == "Degraded":
            # past progressDeadlineSeconds Rollouts marks the Rollout Degraded and, with
            # progressDeadlineAbort false by default (docs/features/specification.md), does not
            # abort: it halts with the candidate's ReplicaSet still there
            return "halted"
        if status.get("stableRS") not in (None, stable) and status.get("phase") == "Healthy":
            return "promoted"
        return None

    outcome = measure(stack, "argo-rollouts", "", name, load, trigger, verdict, timeout)
    outcome.detail = str((_rollout(stack, namespace).get("status") or {}).get("message", ""))
    for path in (
        f"/apis/argoproj.io/v1alpha1/namespaces/{namespace}/rollouts/{APP}",
        f"/apis/networking.k8s.io/v1/namespaces/{namespace}/httproutes/{APP}",
    ):
        with contextlib.suppress(OSError):
            stack.cluster.request("DELETE", path)
    return outcome


MODEL_CANARY = ("canary.controlplane.dev/v1alpha1", "ModelCanary")
OURS_CANARY = "canary"
"""The ModelCanary's name in each run's namespace (not ``engine`` nor ``engine-*``: KServe's
and the candidate's names)."""


def _found(stack: Stack, path: str) -> Any:
    """The object at ``path``, or None where the API server answers 404."""
    try:
        return stack.cluster.request("GET", path)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _isvc_path(namespace: str, name: str) -> str:
    return f"/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}"


def _serving(stack: Stack, namespace: str) -> bool:
    """The live InferenceService is Ready on its pod."""
    isvc = stack.cluster.request("GET", _isvc_path(namespace, APP))
    conditions = (isvc.get("status") or {}).get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    pods = _live_pods(stack, namespace)
    return ready and len(pods) == 1 and pod_ready(pods[0])


def _live_pods(stack: Stack, namespace: str) -> list[dict[str, Any]]:
    path = (
        f"/api/v1/namespaces/{namespace}/pods"
        f"?labelSelector=serving.kserve.io%2Finferenceservice%3D{APP}"
    )
    items: list[dict[str, Any]] = stack.cluster.request("GET", path)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _canary_status(stack: Stack, namespace: str) -> dict[str, Any]:
    got = stack.kube.get(Ref(*MODEL_CANARY, namespace, OURS_CANARY))
    status: dict[str, Any] = got.get("status") or {}
    return status


def ours_run(
    stack: Stack, namespace: str, name: str, pace: Pace, judge: Judge, timeout: float = 1800
) -> Outcome:
    """Ours on the contest's candidate ``name`` in ``namespace`` under ``judge``, as a team
    adopts what it serves (docs/first-canary.md): the stable is an InferenceService of the
    engine on KServe's Hugging Face runtime, one replica, served on KServe's host through the
    same Gateway; the ModelCanary adopting it arrives with the sections of
    :func:`harness.peers.render.ours_analysis` and :func:`harness.peers.render.ours_steps` on
    the SLO's checks for ``judge`` (:func:`harness.peers.contest.ours_checks`), its candidate
    running the candidate's faults, driven by ``canaryctl controller`` (:func:`ours_controller`,
    already running for ``namespace``). Promoted / rolled back: the ModelCanary's
    ``status.phase``."""
    uri = write_model(MODEL)
    product = load_catalog().require_gpu(GPU).product_label
    model = APP  # the live service's --model_name: what clients send
    # --variant: what the engine answers in x-canary-variant, as the peers' pods are given it;
    # it also makes the A/A control a change (the controller promotes a candidate identical
    # to the stable at once: "nothing to roll out"), as the peers' is a new template
    stable_args = [f"--model_name={model}", "--max-model-len=8192", f"--variant={STABLE}"]
    args = [*stable_args, *(f"--inject={fault}" for fault in STABLE_INJECT)]
    live = live_isvc(namespace, APP, args=args, replicas=1, product=product, storage_uri=uri)
    stack.kube.apply(live, field_manager="argocd-controller")
    until(lambda: _serving(stack, namespace), f"{namespace}/{APP} Ready", 300)
    route_path = f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/{APP}"
    route = until(lambda: _found(stack, route_path), "KServe's HTTPRoute", 120)
    host = str(route["spec"]["hostnames"][0])
    load = Load(stack.gateway.url, host, model)
    until(lambda: load.one().code == 200, f"{host} answers through the gateway", 120)

    def trigger(chosen: Candidate) -> None:
        spec = adopting_canary(
            OURS_CANARY,
            namespace,
            target=APP,
            model={"name": model, "maxModelLen": 8192},
            stable={"name": STABLE, "targetRef": {"name": APP}},
            candidate={
                "name": CANDIDATE,
                "storageUri": uri,
                "gpu": GPU,
                "replicas": 1,
                "args": [f"--variant={CANDIDATE}", *(f"--inject={f}" for f in chosen.inject)],
            },
            traffic={"router": "gateway-api"},
            analysis=ours_analysis(pace),
            steps=ours_steps(pace, ours_checks(judge)),
            alerts=[],
        )
        stack.kube.apply(spec, field_manager="peers")

    def verdict() -> str | None:
        phase = _canary_status(stack, namespace).get("phase")
        return {"promoted": "promoted", "rolled_back": "rolled back"}.get(str(phase))

    outcome = measure(stack, OURS, judge, name, load, trigger, verdict, timeout)
    state = _canary_status(stack, namespace)
    outcome.detail = str((state.get("reason") or {}).get("message") or state.get("phase"))
    _clean_ours(stack, namespace)
    return outcome


@contextmanager
def ours_controller(stack: Stack, namespaces: tuple[str, ...], pace: Pace) -> Iterator[None]:
    """``canaryctl controller`` for ``namespaces`` (made first, with the node's model volume)
    on the chart's ServiceAccount, started once before every run of ours as the peers'
    controllers are: its defaults but for the paced timings of
    :func:`harness.peers.render.ours_controller_flags`; stopped after."""
    prepare(stack, namespaces)
    # the default tick (support.real_traffic.Controller gives the other tests 1 s)
    flags = (f"--tick={OURS_TICK}", *ours_controller_flags(pace))
    controller = Controller(stack, namespaces, extra=flags)
    controller.start()
    try:
        yield
    finally:
        controller.stop()


def _clean_ours(stack: Stack, namespace: str) -> None:
    """Delete the ModelCanary while the controller runs (it takes its own objects away), then
    both InferenceServices: no pod of a finished run keeps a core busy."""
    path = f"/apis/canary.controlplane.dev/v1alpha1/namespaces/{namespace}/modelcanaries/"
    with contextlib.suppress(OSError):
        stack.cluster.request("DELETE", path + OURS_CANARY)

    with contextlib.suppress(AssertionError):
        until(lambda: _found(stack, path + OURS_CANARY) is None, "the ModelCanary deleted", 60)
    for isvc in (APP, variant_service_name(APP, CANDIDATE)):
        with contextlib.suppress(OSError):
            stack.cluster.request("DELETE", _isvc_path(namespace, isvc))
