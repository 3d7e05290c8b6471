"""Real traffic through the loopback cluster's gateway, and the pieces the tests share.

Owns what ``tests/routing/test_real_rollout.py`` and ``tests/routing/test_real_resilience.py``
stand on: the whole stack as one context (:func:`real_stack`: the loopback control plane with
KServe v0.20.0, a real node serving the engine image, Traefik v3.6.12 and the Prometheus
Operator's Prometheus), ``canaryctl controller`` as a process that can be killed and started
again (:class:`Controller`, on the token of the ServiceAccount the chart installs:
:func:`install_chart`) or as the chart runs it, a pod of the image built from the Dockerfile
on the real node (:class:`PodController`), OpenAI completions to a canary's host at a fixed
rate with every answer kept (:class:`Load`, :func:`run_loads`), what Traefik runs for each
canary's HTTPRoute, looked at all along (:class:`Splits`), and the per-phase report
(:func:`report`, counted by :mod:`support.traffic_report`; written as JSON for
``bench/real_rollout.py`` when ``CONTROLPLANE_TRAFFIC_REPORT`` names a folder).
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from controlplane.kube.client import Ref
from controlplane.kube.real import RealKube
from controlplane.local.ports import free_port
from controlplane.profiles.catalog import load_catalog
from controlplane.rollout.state import TERMINAL_STAGES
from controlplane.routing.base import VARIANT_HEADER
from controlplane.routing.gateway_api import PORT as ROUTE_PORT
from controlplane.serving.object_names import predictor_service, route_name, variant_service_name
from harness.cluster.kserve import start_kserve
from harness.cluster.kubeapi import LoopbackCluster, applier, start_cluster
from harness.cluster.monitoring import start_monitoring
from harness.cluster.traefik import Traefik, start_traefik, traefik_service
from harness.cluster.upstream_crds import serving_crds
from harness.cluster.workloads import start_workloads
from harness.node.controller_image import controller_image
from harness.node.node import NODE_IP, RUN_DIR, RealNode, start_node
from harness.node.serving import model_volume, start_serving
from support.chart import Helm, service_account_kubeconfig
from support.real_serving import GPU
from support.realnode import until
from support.shared_stack import shared
from support.traffic_report import Answer, Phase, Seen, in_effect, phases, tally
from support.traffic_summary import REPORT_ENV

RATE = 6.0
"""Requests per second per canary."""
API = ("canary.controlplane.dev/v1alpha1", "ModelCanary")
STABLE, CANDIDATE = "bf16", "fp8"
"""The variants of :func:`support.real_serving.traffic_canary`."""
GPUS = 16
"""Two per canary at once (four for each canary whose capacity follows traffic); the earlier
tests' canaries keep what they ended with."""
DEADLINE_S = 180
"""The controller's progress deadline."""
RELEASE, RELEASE_NAMESPACE = "canary", "controlplane-system"
"""The chart's release the controller's ServiceAccount comes from."""


@dataclass
class Load:
    """OpenAI completions to ``host`` through the gateway at :data:`RATE`, each answer kept;
    ``sent`` counts the requests :meth:`run` sent (each must come back answered). Each asks
    for 8 tokens after the next of ``prompts`` (``hello`` when None) and gives up after
    ``timeout_s``."""

    url: str
    host: str
    model: str
    prompts: Iterator[str] | None = None
    timeout_s: float = 30.0
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prompt(self) -> str:
        with self._lock:  # a generator runs in one thread at a time
            return "hello" if self.prompts is None else next(self.prompts)

    def one(self) -> Answer:
        sent = time.time()
        body = json.dumps({"model": self.model, "prompt": self.prompt(), "max_tokens": 8})
        request = urllib.request.Request(
            f"{self.url}/v1/completions",
            data=body.encode(),
            headers={"Content-Type": "application/json", "Host": self.host},
        )
        code: int | str
        variant = None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
                code, variant = int(response.status), response.headers.get(VARIANT_HEADER)
        except urllib.error.HTTPError as exc:
            code, variant = exc.code, exc.headers.get(VARIANT_HEADER)
            exc.close()  # its answer's socket, else unclosed when collected (a ResourceWarning)
        except OSError as exc:
            code = type(exc).__name__
        return Answer(sent, time.time() - sent, code, variant)

    def _keep(self) -> None:
        with self._lock:
            self.sent += 1
        self.answers.append(self.one())

    def run(self) -> None:
        started, n = time.monotonic(), 0
        while not self.stop.is_set():
            n += 1
            threading.Thread(target=self._keep, daemon=True).start()
            self.stop.wait(max(0.0, started + n / RATE - time.monotonic()))

    def answered(self) -> bool:
        """Every request sent has its answer (each gives up after its own ``timeout_s``)."""
        return len(self.answers) >= self.sent


@dataclass(frozen=True)
class Route:
    """A canary's HTTPRoute (``namespace``/``name``) and the Traefik services of the stable's
    and the candidate's backendRefs (:func:`harness.cluster.traefik.traefik_service`)."""

    namespace: str
    name: str
    stable: str
    candidate: str

    @classmethod
    def of(cls, canary: str, stable_service: str, candidate_service: str) -> Route:
        """The route of canary ``canary`` (in its own namespace, as :func:`prepare` makes it)
        to the predictor Services ``stable_service`` and ``candidate_service``."""
        return cls(
            canary,
            route_name(canary),
            traefik_service(canary, stable_service, ROUTE_PORT),
            traefik_service(canary, candidate_service, ROUTE_PORT),
        )

    @classmethod
    def of_model(cls, canary: str, model: str) -> Route:
        """The route of a :func:`support.real_serving.traffic_canary` (model ``model``)."""
        stable, candidate = (
            predictor_service(variant_service_name(model, role)) for role in (STABLE, CANDIDATE)
        )
        return cls.of(canary, stable, candidate)


def route_share(services: Sequence[Mapping[str, Any]], route: Route) -> int | None:
    """The candidate's share (%) of the split Traefik runs for ``route``'s first rule, from its
    API's ``/api/http/services``: Traefik v3.6.12 builds a weighted service per match of a
    rule (``loadWRRService``, ``pkg/provider/kubernetes/gateway/httproute.go``), named
    ``httproute-<ns>-<route>-gw-<gw ns>-<gw>-ep-<entry point>-<rule index>-<hash>-wrr``, the hash
    the first 10 bytes of the rule's sha256 in hex (``provider.Normalize`` and ``makeRouterName``'s
    ``%.10x``; seen on the real Traefik: ``...-ep-web-0-c06f0779389314e56c49-wrr``), over services
    named as
    :func:`~harness.cluster.traefik.traefik_service` does. None when it runs none for the
    route (or its matches disagree)."""
    own = re.compile(
        rf"^httproute-{re.escape(route.namespace)}-{re.escape(route.name)}-gw-.+-0-[0-9a-f]{{20}}-wrr$"
    )
    shares = set()
    for service in services:
        if not own.match(str(service.get("name", "")).split("@", 1)[0]):
            continue
        backends = (service.get("weighted") or {}).get("services") or []
        weights = {str(b["name"]).split("@", 1)[0]: int(b.get("weight", 1)) for b in backends}
        stable, candidate = weights.get(route.stable, 0), weights.get(route.candidate, 0)
        if stable + candidate:
            shares.add(round(100 * candidate / (stable + candidate)))
    return shares.pop() if len(shares) == 1 else None


def traefik_services(gateway: Traefik) -> list[dict[str, Any]]:
    """Every HTTP service in the configuration Traefik runs now (its API)."""
    url = f"http://127.0.0.1:{gateway.metrics_port}/api/http/services?per_page=1000"
    with urllib.request.urlopen(url, timeout=5) as response:
        got: list[dict[str, Any]] = json.loads(response.read())
    return got


LOOK_S = 0.2
"""How often :class:`Splits` looks at Traefik."""


@dataclass
class Splits:
    """What Traefik runs for each canary's route (:func:`route_share`), looked at every
    :data:`LOOK_S` in a thread (:meth:`run`) until ``stop`` is set: ``seen[name]`` holds every
    look (:class:`~support.traffic_report.Seen`; share None while Traefik runs no split for the
    route or does not answer). What a phase's split is counted from (:meth:`in_effect`): the
    gateway seen running it, not seconds allowed after the status changed."""

    gateway: Traefik
    routes: Mapping[str, Route]
    seen: dict[str, list[Seen]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def look(self) -> None:
        start = time.time()
        try:
            services: list[dict[str, Any]] | None = traefik_services(self.gateway)
        except (urllib.error.URLError, OSError, ValueError):
            services = None  # down (a restart): it runs nothing anyone can reach
        end = time.time()
        for name, route in self.routes.items():
            share = None if services is None else route_share(services, route)
            self.seen.setdefault(name, []).append(Seen(start, end, share))

    def run(self) -> None:
        while not self.stop.is_set():
            self.look()
            self.stop.wait(LOOK_S)

    def in_effect(self, name: str) -> Callable[[Phase], list[tuple[float, float]]]:
        """For :func:`~support.traffic_report.tally`: when each phase of ``name`` was in effect."""
        seen = list(self.seen.get(name, ()))
        return lambda phase: in_effect(seen, phase)

    @contextmanager
    def looking(self) -> Iterator[Splits]:
        """Look in a thread for the length of the block."""
        thread = threading.Thread(target=self.run, name="splits", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join(timeout=30)


@dataclass
class Stack:
    """The running stack; ``controller_kubeconfig`` authenticates as the chart's
    ServiceAccount (:func:`install_chart`), which the controller runs as."""

    cluster: LoopbackCluster
    node: RealNode
    gateway: Traefik
    prometheus: str
    kube: RealKube
    controller_kubeconfig: Path
    controller_image: str | None = None
    """The controller image imported into the node (:class:`PodController`), if any."""


@contextmanager
def real_stack(
    folder: Path,
    gpus: int = GPUS,
    controller_pod: bool = False,
    cluster_network: bool = False,
    engine: str = "simulated",
) -> Iterator[Stack]:
    """The whole stack under ``folder``, its node advertising ``gpus`` GPUs (with
    ``controller_pod``, the controller's image built and imported for :class:`PodController`;
    with ``cluster_network``, kube-proxy and CoreDNS on the node; ``engine``: what KServe's pods
    run, :func:`harness.node.serving.start_serving`); stopped after. Pods get their
    ServiceAccount's token, as in any cluster."""
    with start_cluster(folder, crds=serving_crds(), service_accounts=True) as cluster:
        start_workloads(cluster, nodes=[])
        start_kserve(cluster)
        real = start_node(cluster, cluster.workdir / "node", cluster_network=cluster_network)
        try:
            product = load_catalog().require_gpu(GPU).product_label
            start_serving(cluster, real, product, gpus=gpus, engine=engine)
            gateway = start_traefik(cluster)
            prometheus = start_monitoring(cluster, gateway=gateway).url
            kube = RealKube.connect(kubeconfig=str(cluster.kubeconfig))
            token = install_chart(cluster)
            image = real.import_image(controller_image()) if controller_pod else None
            yield Stack(cluster, real, gateway, prometheus, kube, token, image)
        finally:
            real.stop()


SERVING = "serving"
"""The kind of the shared stack (:mod:`support.shared_stack`) the traffic modules run on."""


@contextmanager
def serving_stack(
    factory: pytest.TempPathFactory,
    gpus: int = GPUS,
    engine: str = "simulated",
    controller_pod: bool = False,
) -> Iterator[Stack]:
    """:func:`real_stack` with its cluster network (a Service's name resolves and routes in a
    pod: the quality judge's pairer reaches the variants so), shared by the modules marked
    ``shared_stack(SERVING)``: the node made a node of ``gpus`` GPUs whose KServe pods run
    ``engine`` for this module (what :func:`real_stack` sets up, set again), the controller's
    image imported with ``controller_pod`` (the pairer's image too); the module's namespaces
    deleted after it."""
    with shared(SERVING, factory, lambda f: real_stack(f, cluster_network=True)) as stack:
        product = load_catalog().require_gpu(GPU).product_label
        start_serving(stack.cluster, stack.node, product, gpus=gpus, engine=engine)
        if controller_pod:
            stack = replace(stack, controller_image=stack.node.import_image(controller_image()))
        yield stack


CHART_VALUES: dict[str, Any] = {
    "replicas": 0,
    "podMonitor": {"enabled": False},
    "serviceMonitor": {"enabled": False},
}


def install_chart(cluster: LoopbackCluster) -> Path:
    """``helm install`` the chart as an administrator would, with no controller pod (its image
    is not built here: ``replicas: 0``) and without the PodMonitor
    (:func:`harness.cluster.monitoring.start_monitoring` applies the same one); returns a
    kubeconfig with the token of the chart's ServiceAccount, on which the controller runs out of
    cluster with exactly the chart's RBAC."""
    helm = Helm(cluster.kubeconfig, cluster.workdir / "helm")
    helm.install(RELEASE, RELEASE_NAMESPACE, CHART_VALUES)
    return service_account_kubeconfig(
        cluster,
        RELEASE_NAMESPACE,
        f"{RELEASE}-controlplane",
        cluster.workdir / "controller-kubeconfig",
    )


@dataclass
class Controller:
    """``canaryctl controller`` as a process on the stack, for ``namespaces``."""

    stack: Stack
    namespaces: tuple[str, ...]
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.stack.cluster.workdir / "controller.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("canaryctl")),
                "controller",
                f"--kubeconfig={self.stack.controller_kubeconfig}",
                f"--prometheus={self.stack.prometheus}",
                *(f"--namespace={ns}" for ns in self.namespaces),
                "--tick=1s",
                f"--progress-deadline={DEADLINE_S}s",
                "--promote-cleanup-delay=20s",
                "--rollback-cleanup-delay=20s",
                "--api-port=0",
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL: no chance to finish what it was doing."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines the controllers of this stack wrote, and whether this one
        still runs: what explains a canary that never ended."""
        log = self.stack.cluster.workdir / "controller.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        alive = self.proc is not None and self.proc.poll() is None
        return "\n".join([f"controller running: {alive}", *text.splitlines()[-lines:]])


def status(stack: Stack, name: str) -> dict[str, Any]:
    got: dict[str, Any] = stack.kube.get(Ref(*API, name, name)).get("status") or {}
    return got


def finished(stack: Stack, names: Sequence[str]) -> bool:
    """Every canary of ``names`` promoted or rolled back: what a run waits for, so that a canary
    that ended the other way fails at once with its history (:func:`assert_ended`) rather than
    at the run's timeout with none."""
    return all(status(stack, name).get("phase") in TERMINAL_STAGES for name in names)


def assert_ended(stack: Stack, ends: Mapping[str, str]) -> None:
    """Each canary of ``ends`` in its phase there; the message, each other one's history."""
    wrong = {
        name: got.get("history")
        for name, phase in ends.items()
        if (got := status(stack, name)).get("phase") != phase
    }
    assert not wrong, f"canaries that did not end as expected: {wrong}"


def created(stack: Stack, name: str) -> float:
    """When the ModelCanary was created (seconds since the epoch)."""
    stamp = stack.kube.get(Ref(*API, name, name))["metadata"]["creationTimestamp"]
    return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


def prepare(stack: Stack, names: tuple[str, ...]) -> None:
    apply = applier(stack.cluster)
    for name in names:
        apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        for obj in model_volume(name):
            apply(obj)


def events(stack: Stack, namespace: str, reason: str) -> list[str]:
    items = stack.cluster.request("GET", f"/api/v1/namespaces/{namespace}/events")["items"]
    return [str(e["message"]) for e in items if e["reason"] == reason]


def run_loads(
    stack: Stack, loads: Mapping[str, Load], done: Callable[[], Any], timeout: float
) -> None:
    """Each load from the moment its stable answers through the gateway (not counted) until
    ``done()`` holds and 25 s more (past the cleanup delays: the losers released under load),
    then until every request sent has its answer. ``timeout`` bounds a hang of each wait: for
    the stables' first answers (a real vLLM took over 300 s to answer while two engines started
    beside a full ``make test``) and for ``done()``."""
    threads: list[threading.Thread] = []
    pending = dict(loads)
    try:
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for name, load in list(pending.items()):
                if load.one().code == 200:
                    thread = threading.Thread(target=load.run, daemon=True)
                    thread.start()
                    threads.append(thread)
                    del pending[name]
            time.sleep(0.5)
        assert not pending, f"{sorted(pending)} never answered through the gateway"
        until(done, "every canary finished", timeout)
        time.sleep(25)
    finally:
        for load in loads.values():
            load.stop.set()
        for thread in threads:
            thread.join(timeout=5)
    for load in loads.values():  # the last answers in flight
        until(load.answered, "every request answered", load.timeout_s + 30)


def report(stack: Stack, loads: Mapping[str, Load], splits: Splits | None = None) -> dict[str, Any]:
    """Each canary's phases, what their requests met, and its history; a phase's split counts
    the answers sent while Traefik was seen running it (``splits``), the others are
    ``settling``. Without ``splits`` (a router whose steps are no split of the gateway's, such
    as ``kserve``) every answer counts in its phase's split."""
    out: dict[str, Any] = {}
    end = time.time()
    for name, load in loads.items():
        history = status(stack, name)["history"]
        start = min(a.sent for a in load.answers)
        spans = phases(history, start, end)
        out[name] = {
            "history": [(h["type"], h.get("weight"), h.get("message", "")) for h in history],
            "phases": [
                t.as_dict()
                for t in tally(load.answers, spans, splits.in_effect(name) if splits else 0.0)
            ],
        }
    return out


def write_report(test: str, data: Mapping[str, Any]) -> None:
    folder = os.environ.get(REPORT_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{test}.json").write_text(json.dumps(data, indent=1))


@dataclass
class PodController:
    """The controller as the chart runs it: ``helm upgrade`` to one replica of the image built
    from the Dockerfile (:mod:`harness.node.controller_image`) on the real node, with the
    timings of :class:`Controller` and ``extra`` flags through ``controller.extraArgs``.

    The loopback API server and Prometheus listen on 127.0.0.1, which no pod on the pod
    network reaches (kube-proxy's rules for the ``kubernetes`` Service lead there too), so the
    pod takes the node's network (the chart's ``hostNetwork``) and its Kubernetes client is
    pointed at the API server with ``KUBERNETES_SERVICE_HOST`` / ``KUBERNETES_SERVICE_PORT``
    (``controller.extraEnv``), as Cilium's chart does without kube-proxy; everything else is
    the chart's: its ServiceAccount's token mounted by the kubelet, its security context,
    probes and arguments. :meth:`stop` keeps the pod's log in
    the cluster's ``controller.log`` (where :class:`Controller` writes) and scales to zero."""

    stack: Stack
    namespaces: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()

    @property
    def helm(self) -> Helm:
        return Helm(self.stack.cluster.kubeconfig, self.stack.cluster.workdir / "helm")

    def values(self, replicas: int) -> dict[str, Any]:
        image = self.stack.controller_image
        assert image is not None, "real_stack(controller_pod=True) builds the image"
        repository, tag = image.rsplit(":", 1)
        return {
            **CHART_VALUES,
            "replicas": replicas,
            "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
            "hostNetwork": True,
            "api": {"port": self.port},
            "controller": {
                "prometheusUrl": self.stack.prometheus,
                "tick": "1s",
                "progressDeadline": f"{DEADLINE_S}s",
                "promoteCleanupDelay": "20s",
                "rollbackCleanupDelay": "20s",
                "logLevel": "INFO",
                "extraArgs": [f"--api-address={NODE_IP}", *self.extra],
                "extraEnv": [
                    {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                    {"name": "KUBERNETES_SERVICE_PORT", "value": str(self.stack.cluster.port)},
                ],
            },
        }

    def __post_init__(self) -> None:
        self.port = free_port()

    def pods(self) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{RELEASE_NAMESPACE}/pods"
        items: list[dict[str, Any]] = self.stack.cluster.request("GET", path)["items"]
        return items

    def ready(self) -> bool:
        return any(pod_ready(pod) for pod in self.pods())

    def start(self) -> None:
        self.helm.upgrade(RELEASE, RELEASE_NAMESPACE, self.values(1))
        try:
            until(self.ready, "the controller's pod Ready", 180)
        except AssertionError as exc:
            statuses = [pod.get("status") for pod in self.pods()]
            raise AssertionError(
                f"{exc}\n{statuses}\n{self.log()[-3000:]}\n{self.stack.node.log_tail()}"
            ) from None

    def log(self) -> str:
        """What the pods' controller containers wrote (kubelet's log files)."""
        text = []
        for pod in self.pods():
            meta = pod["metadata"]
            pattern = (
                f"{RUN_DIR}/pod-logs/{RELEASE_NAMESPACE}_{meta['name']}_{meta['uid']}"
                "/controller/*.log"
            )
            for path in sorted(glob.glob(pattern)):
                text.append(Path(path).read_text(encoding="utf-8", errors="replace"))
        return "".join(text)

    def stop(self) -> None:
        with (self.stack.cluster.workdir / "controller.log").open("a") as out:
            out.write(self.log())
        self.helm.upgrade(RELEASE, RELEASE_NAMESPACE, CHART_VALUES)
        until(lambda: not self.pods(), "the controller's pod gone", 120)


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's ``Ready`` condition is True."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
