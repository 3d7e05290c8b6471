"""A real Gateway API data plane on the loopback cluster: Traefik v3, built from its Go module.

Owns :func:`start_traefik`: Traefik's ``kubernetesGateway`` provider reads the cluster's
GatewayClasses, Gateways, HTTPRoutes, Services and EndpointSlices (out of cluster: the API
server's address, the admin token and the cluster's CA), writes their status as a Gateway
controller does, and proxies each request to a pod address the EndpointSlices list (no
kube-proxy in the way), weighted by the HTTPRoute's ``backendRefs``. It listens on loopback:
the ``web`` entry point takes the requests (``GATEWAY_URL``), the ``traefik`` one serves
``/metrics`` (Prometheus format), ``/ping`` and the API whose ``/api/http/services`` shows the
weights in effect (:meth:`Traefik.weights`).

Why Traefik (issue #35): Envoy, which Envoy Gateway and Istio need, is in no registry reached
here; Traefik is one Go program on the module proxy. v3.6.12 is the newest that builds: v3.7.x
replace ``github.com/abbot/go-http-auth`` by a ``containous/go-http-auth`` pseudo-version the
proxy refuses ("403 Forbidden: This module version is not available").

Upstream facts relied on (Traefik v3.6.12, ``pkg/provider/kubernetes/gateway/``):

- a Gateway listener binds to the entry point whose address ends in ``:<listener port>``
  (``entryPointName`` in ``kubernetes.go``): the Gateway is created with the web entry point's
  port;
- the controller name is ``traefik.io/gateway-controller`` (``kubernetes.go``);
- each Service backendRef is a load balancer of its own, ``<namespace>-<name>-http-<port>``
  (:func:`traefik_service`), inside a weighted round robin ``<router>-wrr`` with the backendRef's
  weight (``loadWRRService`` / ``loadService`` in ``httproute.go``), whose servers are the ready
  addresses of the Service's EndpointSlices. So ``traefik_service_requests_total{service=...}``
  counts each variant apart;
- backendRef filters are not loaded (``loadService`` reads none): the router's per-backend
  ``RequestHeaderModifier`` (``x-canary-variant``) is ignored, harmlessly; route-rule filters
  are, but ``RequestMirror`` is not among them (``loadMiddlewares``): a shadow phase cannot be
  served by Traefik, and the route reports the filter unsupported.

Its servers transport closes a backend connection idle for :data:`IDLE_CONN_TIMEOUT_S`, not
Traefik's 90 s (``pkg/server/service/transport.go``): an engine that closes an idle keep-alive
connection first races a request Traefik sends on it, which Go's transport does not resend for a
POST and Traefik answers 502 (docs/serving.md, "Keep-alive").

:func:`restart_traefik` crashes it (SIGKILL) and starts it again on the same ports, for the
resilience test: it is back once ``/ping`` answers and it serves again the routers it served.

Called by the test fixtures and ``make kube-up NODE=1`` (:mod:`harness.cli`).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from controlplane.local.ports import free_port
from harness.cluster.gateways import GATEWAY, gateway_objects
from harness.cluster.kubeapi import KubeSetupError, LoopbackCluster, applier, binary, install_crds
from harness.cluster.upstream_crds import TRAEFIK_CRD, crds

TRAEFIK_VERSION = "v3.6.12"
CONTROLLER = "traefik.io/gateway-controller"
GATEWAY_CLASS = "traefik"
TOKEN_FILE = "traefik.token"
IDLE_CONN_TIMEOUT_S = 30
"""How long Traefik keeps an idle connection to a pod: below every engine's keep-alive here
(KServe's server, and vLLM as the real node runs it, 65 s:
:data:`controlplane.local.vllm_engine.KSERVE_KEEP_ALIVE_S`; the model engine's, aiohttp 3.14's
3,630 s, ``web_protocol.RequestHandler``), so that the gateway, not the engine, closes it."""


def transport_flags(idle_s: float = IDLE_CONN_TIMEOUT_S) -> list[str]:
    """Traefik's default servers transport, as static flags (pure): idle connections to a
    backend closed after ``idle_s``."""
    return [f"--serversTransport.forwardingTimeouts.idleConnTimeout={idle_s * 1000:.0f}ms"]


@dataclass(frozen=True)
class Traefik:
    """Where a running Traefik answers."""

    port: int
    metrics_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def routers(self) -> set[str]:
        """The names of the HTTP routers in the configuration Traefik runs now (its API)."""
        url = f"http://127.0.0.1:{self.metrics_port}/api/http/routers?per_page=1000"
        with urllib.request.urlopen(url, timeout=5) as response:
            return {str(router["name"]) for router in json.loads(response.read())}

    def weights(self) -> dict[str, int]:
        """The weight of every backend of every weighted service in the configuration Traefik
        runs now (its API, ``/api/http/services``): backend service name -> weight. What the
        router's HTTPRoute asked for is in effect once it is here."""
        url = f"http://127.0.0.1:{self.metrics_port}/api/http/services?per_page=1000"
        with urllib.request.urlopen(url, timeout=5) as response:
            services = json.loads(response.read())
        found: dict[str, int] = {}
        for service in services:
            for backend in (service.get("weighted") or {}).get("services") or []:
                found[str(backend["name"])] = int(backend.get("weight", 1))
        return found


def traefik_service(namespace: str, name: str, port: int) -> str:
    """The name Traefik v3.6.12 gives the load balancer of a Service backendRef (pure): what its
    API lists in a weighted service, and, with ``@kubernetesgateway``, the ``service`` label of
    its request counters."""
    return f"{namespace}-{name}-http-{port}"


def arguments(
    cluster: LoopbackCluster,
    port: int,
    metrics_port: int,
    crd: bool = False,
    buckets: tuple[float, ...] = (),
) -> list[str]:
    """Traefik's static configuration, as flags (pure but for the token file's path); with
    ``crd``, its ``kubernetesCRD`` provider too, and with ``buckets`` its latency histograms'
    upper bounds (seconds) instead of its default ones (:func:`start_traefik`)."""
    crd_provider = [
        "--providers.kubernetesCRD=true",
        f"--providers.kubernetesCRD.endpoint={cluster.server}",
        f"--providers.kubernetesCRD.token={cluster.workdir / TOKEN_FILE}",
        f"--providers.kubernetesCRD.certAuthFilePath={cluster.ca}",
        "--providers.kubernetesCRD.throttleDuration=0s",
    ]
    return [
        *(crd_provider if crd else []),
        f"--entryPoints.web.address=127.0.0.1:{port}",
        f"--entryPoints.traefik.address=127.0.0.1:{metrics_port}",
        *transport_flags(),
        "--providers.kubernetesGateway=true",
        f"--providers.kubernetesGateway.endpoint={cluster.server}",
        f"--providers.kubernetesGateway.token={cluster.workdir / TOKEN_FILE}",
        f"--providers.kubernetesGateway.certAuthFilePath={cluster.ca}",
        "--providers.kubernetesGateway.throttleDuration=0s",
        "--metrics.prometheus=true",
        "--metrics.prometheus.entryPoint=traefik",
        "--metrics.prometheus.addServicesLabels=true",
        "--metrics.prometheus.addRoutersLabels=true",
        *(
            [f"--metrics.prometheus.buckets={','.join(f'{b:g}' for b in buckets)}"]
            if buckets
            else []
        ),
        "--api=true",
        "--api.insecure=true",  # the API on the traefik entry point, loopback only
        "--api.dashboard=false",
        "--ping=true",
        "--ping.entryPoint=traefik",
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        "--log.level=INFO",
    ]


def _ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _gateway_programmed(cluster: LoopbackCluster, namespace: str, name: str) -> bool:
    path = f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/gateways/{name}"
    try:
        gateway = cluster.request("GET", path)
    except OSError:
        return False
    conditions = (gateway.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Programmed" and c["status"] == "True" for c in conditions)


def start_traefik(
    cluster: LoopbackCluster,
    *,
    gateway: tuple[str, str] = GATEWAY,
    detach: bool = False,
    timeout: float = 60.0,
    crd: bool = False,
    buckets: tuple[float, ...] = (),
) -> Traefik:
    """Start Traefik against ``cluster`` with its GatewayClass and the Gateway ``gateway``
    (namespace, name; created with its namespace); returns once the Gateway is Programmed.

    ``crd`` also turns on its ``kubernetesCRD`` provider, with the module's CRDs
    (``docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml``):
    Argo Rollouts' Traefik router sets the weights of a ``TraefikService``, which an HTTPRoute
    may name as its backendRef (``loadHTTPBackendRef`` in
    ``pkg/provider/kubernetes/gateway/httproute.go``). ``buckets``: the upper bounds of its
    request duration histograms (``--metrics.prometheus.buckets``, the ``Buckets`` option of
    ``pkg/observability/types/metrics.go``; its default 0.1, 0.3, 1.2, 5 s unless given)."""
    program = binary("traefik")
    port, metrics_port = free_port(), free_port()
    token = cluster.workdir / TOKEN_FILE
    token.write_text(cluster.token)
    token.chmod(0o600)
    namespace, name = gateway
    apply = applier(cluster)
    if crd:
        install_crds(cluster, crds(TRAEFIK_CRD))
    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for obj in gateway_objects(GATEWAY_CLASS, CONTROLLER, port, gateway=gateway):
        apply(obj)
    proc = cluster.spawn(
        "traefik",
        [str(program), *arguments(cluster, port, metrics_port, crd, buckets)],
        detach=detach,
    )
    running = Traefik(port, metrics_port)
    deadline = time.monotonic() + timeout
    while not (
        _ping(f"http://127.0.0.1:{metrics_port}/ping")
        and _gateway_programmed(cluster, namespace, name)
    ):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise KubeSetupError(
                f"Traefik {TRAEFIK_VERSION} did not program the Gateway {namespace}/{name}:\n"
                + cluster.log_tail(names=("traefik",))
            )
        time.sleep(0.2)
    return running


def restart_traefik(
    cluster: LoopbackCluster, gateway: Traefik, *, down_s: float = 0.0, timeout: float = 60.0
) -> None:
    """Crash the running Traefik (SIGKILL), leave it down ``down_s`` seconds and start it again
    with the same flags, so on the same ports; returns once ``/ping`` answers and it serves
    every router it served before (its Gateway provider has read the routes again)."""
    try:
        served = gateway.routers()
    except (urllib.error.URLError, OSError):
        served = set()  # down already: back means answering /ping
    ping = f"http://127.0.0.1:{gateway.metrics_port}/ping"

    def back() -> bool:
        if not _ping(ping):
            return False
        try:
            return served <= gateway.routers()
        except (urllib.error.URLError, OSError, ValueError):
            return False

    try:
        cluster.restart("traefik", down_s=down_s, ready=back, timeout=timeout)
    except KubeSetupError as exc:
        raise KubeSetupError(f"Traefik {TRAEFIK_VERSION}: {exc}") from exc
