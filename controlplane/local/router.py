"""The local router: an HTTP proxy splitting requests between two model servers by live weights.

Owns request routing of the local stack: the weighted split read per request, the cohort, shadow
mirroring, least-outstanding replicas (Envoy Gateway's default) with endpoints added and drained
live, and at ``/metrics`` what Envoy Gateway exports per backendRef, so the ``gateway-api`` error
terms read it as a cluster's. See docs/local.md, "What runs".
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter as Tally
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from controlplane.local.server import HOST
from controlplane.proxying import answer_from, bind_socket, end_to_end, relay
from controlplane.routing import sessions
from controlplane.routing.base import VARIANT_HEADER, Weights
from controlplane.serving import object_names
from controlplane.spec.models import CohortSpec, SessionSpec

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def envoy_cluster(namespace: str, canary: str, rule: int, backend: int) -> str:
    """The Envoy cluster Envoy Gateway (v1.8.1) builds for one backendRef of the canary's
    HTTPRoute when it makes a cluster per backend (``irRouteDestinationName`` +
    ``irDestinationSettingName``, internal/gatewayapi/helpers.go)."""
    return f"httproute/{namespace}/{object_names.route_name(canary)}/rule/{rule}/backend/{backend}"


class EnvoyClusterStats:
    """Envoy's per-cluster upstream request counters, exposed in Envoy's Prometheus format
    (counters without a ``_total`` suffix where Envoy has none: prometheus_client cannot)."""

    def __init__(self) -> None:
        self.by_code: Tally[tuple[str, int]] = Tally()
        self.total: Tally[str] = Tally()

    def sent(self, cluster: str) -> None:
        """A request went to an upstream connection (``upstream_rq_total``)."""
        self.total[cluster] += 1

    def charge(self, cluster: str, code: int) -> None:
        """``upstream_rq_<code>`` (and with it ``upstream_rq_<class>xx``)."""
        self.by_code[(cluster, code)] += 1

    def exposition(self) -> bytes:
        lines = ["# TYPE envoy_cluster_upstream_rq counter"]
        for (cluster, code), n in sorted(self.by_code.items()):
            labels = f'envoy_response_code="{code}",envoy_cluster_name="{cluster}"'
            lines.append(f"envoy_cluster_upstream_rq{{{labels}}} {n}")
        classes: Tally[tuple[str, int]] = Tally()
        for (cluster, code), n in self.by_code.items():
            classes[(cluster, code // 100)] += n
        lines.append("# TYPE envoy_cluster_upstream_rq_xx counter")
        for (cluster, cls), n in sorted(classes.items()):
            labels = f'envoy_response_code_class="{cls}",envoy_cluster_name="{cluster}"'
            lines.append(f"envoy_cluster_upstream_rq_xx{{{labels}}} {n}")
        lines.append("# TYPE envoy_cluster_upstream_rq_total counter")
        for cluster, n in sorted(self.total.items()):
            lines.append(f'envoy_cluster_upstream_rq_total{{envoy_cluster_name="{cluster}"}} {n}')
        return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class Backend:
    """A variant behind the router: its name and the base URL of its first endpoint (None: no
    endpoint yet; :meth:`LocalRouter.add_endpoint` adds them)."""

    name: str
    url: str | None = None


class Endpoint:
    """One replica of a variant as the router sees it: its base URL and the requests it has
    outstanding through the router (answers still streaming included)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outstanding = 0
        self.served = 0
        self.in_rotation = True
        self._idle = asyncio.Event()
        self._idle.set()

    def begin(self) -> None:
        self.outstanding += 1
        self.served += 1
        self._idle.clear()

    def end(self) -> None:
        self.outstanding -= 1
        if self.outstanding <= 0:
            self.outstanding = 0
            self._idle.set()

    async def drained(self) -> None:
        """Return once nothing is outstanding."""
        await self._idle.wait()


class LocalRouter:
    """Stable/candidate split with cohort and mirror. ``start()`` binds; ``url`` is then known."""

    def __init__(
        self,
        canary: str,
        namespace: str,
        stable: Backend,
        candidate: Backend,
        weights: Callable[[], Weights],
        cohort: CohortSpec | None = None,
        seed: int | None = None,
        session: SessionSpec | None = None,
        upstream_timeout_s: float = 300.0,
    ) -> None:
        self.stable = stable
        self.candidate = candidate
        self.pools: dict[str, list[Endpoint]] = {
            b.name: [Endpoint(b.url)] if b.url is not None else [] for b in (stable, candidate)
        }
        """Each variant's endpoints in rotation."""
        self.weights = weights
        self.cohort = cohort
        self.session = session
        self._rng = random.Random(seed)
        self._timeout = aiohttp.ClientTimeout(total=upstream_timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._mirrors: set[asyncio.Task[None]] = set()
        self.port = 0
        self.served: Tally[str] = Tally()
        self.mirrored: Tally[int] = Tally()
        r = self.registry = CollectorRegistry()
        labels = {"namespace": namespace, "canary": canary}
        self._labels = labels
        self.envoy = EnvoyClusterStats()
        self._clusters = {
            (rule, b.name): envoy_cluster(namespace, canary, rule, i)
            for rule in (0, 1)
            for i, b in enumerate((stable, candidate))
        }
        self._requests = Counter(
            "controlplane_router_requests",
            "Requests the local router answered, by variant and status code",
            [*labels, "variant", "code", "mirrored"],
            registry=r,
        )
        self._duration = Histogram(
            "controlplane_router_request_duration_seconds",
            "Time from receiving a request to the end of its response",
            [*labels, "variant"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._weight = Gauge(
            "controlplane_router_candidate_weight", "Candidate weight (%)", [*labels], registry=r
        )
        self._mirror = Gauge(
            "controlplane_router_mirror",
            "1 while mirroring to the candidate",
            [*labels],
            registry=r,
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        app.router.add_route("*", "/v1/{tail:.*}", self._proxy)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = bind_socket()
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (aiohttp's graceful shutdown), then
        cancel the mirrored copies still running."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in list(self._mirrors):
            task.cancel()
        if self._mirrors:
            await asyncio.gather(*self._mirrors, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ----------------------------------------------------------------- endpoints

    def add_endpoint(self, variant: str, url: str) -> Endpoint:
        """Put a ready replica of ``variant`` in rotation; the next request may go to it."""
        endpoint = Endpoint(url)
        self.pools[variant].append(endpoint)
        return endpoint

    def endpoints(self, variant: str) -> list[str]:
        """The URLs of ``variant``'s endpoints in rotation."""
        return [e.url for e in self.pools[variant]]

    def remove_endpoint(self, variant: str, url: str) -> Endpoint | None:
        """Take ``url`` out of ``variant``'s rotation at once: no request goes to it from now on
        (those in flight go on: :meth:`drain`). None when it was not in rotation."""
        pool = self.pools[variant]
        for endpoint in pool:
            if endpoint.url == url:
                pool.remove(endpoint)
                endpoint.in_rotation = False
                return endpoint
        return None

    async def drain(self, endpoint: Endpoint, timeout_s: float | None = None) -> bool:
        """Wait until ``endpoint``'s requests in flight have finished (at most ``timeout_s``):
        True when they have, False on the timeout (what is left is the caller's to cut)."""
        try:
            await asyncio.wait_for(endpoint.drained(), timeout=timeout_s)
        except TimeoutError:
            return False
        return True

    def pick(self, variant: str) -> Endpoint | None:
        """The endpoint of ``variant`` with the fewest requests outstanding (ties at random);
        None when it has none (module docstring)."""
        pool = self.pools[variant]
        if not pool:
            return None
        least = min(e.outstanding for e in pool)
        fewest = [e for e in pool if e.outstanding == least]
        return fewest[0] if len(fewest) == 1 else self._rng.choice(fewest)

    # ----------------------------------------------------------------- decisions

    def eligible(self, headers: Mapping[str, str]) -> bool:
        """May this request reach the candidate (the cohort rule)?"""
        return self.cohort is None or headers.get(self.cohort.header) in self.cohort.values

    def choose(
        self, weights: Weights, eligible: bool, headers: Mapping[str, str] | None = None
    ) -> Backend:
        """The backend of one request under ``weights``: its session's variant when the spec
        keeps sessions and the request has a key (:func:`controlplane.routing.sessions.pinned`,
        what the gateway-api router's rules express), else drawn by the weights."""
        if self.session is not None and headers is not None:
            mine = sessions.pinned(self.session, weights.candidate, headers)
            if mine is not None:
                return self.candidate if mine else self.stable
        if eligible and self._rng.random() * 100 < weights.candidate:
            return self.candidate
        return self.stable

    # ----------------------------------------------------------------- endpoints

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _metrics(self, request: web.Request) -> web.Response:
        weights = self.weights()
        self._weight.labels(**self._labels).set(weights.candidate)
        self._mirror.labels(**self._labels).set(1 if weights.mirror else 0)
        body = generate_latest(self.registry) + self.envoy.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        weights = self.weights()
        eligible = self.eligible(request.headers)
        backend = self.choose(weights, eligible, request.headers)
        body = await request.read()
        headers = end_to_end(request.headers.items())
        if weights.mirror and eligible and backend is self.stable:
            self._spawn_mirror(request.method, request.path_qs, headers, body)
        assert self._session is not None
        # The cohort's HTTPRoute sends the rest to stable by a second rule (routing/gateway_api).
        cluster = self._clusters[(0 if eligible or self.cohort is None else 1, backend.name)]
        code = 502
        envoy_code: int | None = None
        response: web.StreamResponse | None = None
        endpoint = self.pick(backend.name)  # no await between the pick and begin(): drains see it
        if endpoint is not None:
            endpoint.begin()
        try:
            if endpoint is None:
                raise aiohttp.ClientConnectionError("no healthy upstream")
            async with self._session.request(
                request.method, endpoint.url + request.path_qs, headers=headers, data=body
            ) as upstream:
                code = upstream.status
                envoy_code = upstream.status
                self.envoy.sent(cluster)
                response = await answer_from(request, upstream, {VARIANT_HEADER: backend.name})
                await relay(upstream, response)
                return response
        except ConnectionResetError:
            code = 499  # the client went away (nginx's code for it); nothing left to answer
            return response if response is not None else web.Response(status=499)
        except (aiohttp.ClientError, TimeoutError) as exc:
            if response is not None:  # the upstream broke mid-answer: the client sees a cut
                code = 502
                return response
            # Envoy answers an unreachable upstream 503 and a timed-out one 504, and charges it.
            code = envoy_code = 504 if isinstance(exc, TimeoutError) else 503
            return web.json_response(
                {"error": {"message": f"{backend.name} is unreachable: {exc}", "code": code}},
                status=code,
                headers={VARIANT_HEADER: backend.name},
            )
        finally:
            if endpoint is not None:
                endpoint.end()
            if envoy_code is not None:
                self.envoy.charge(cluster, envoy_code)
            self.served[backend.name] += 1
            self._requests.labels(
                **self._labels, variant=backend.name, code=str(code), mirrored="false"
            ).inc()
            self._duration.labels(**self._labels, variant=backend.name).observe(
                time.monotonic() - started
            )

    def _spawn_mirror(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._mirror_one(method, path, headers, body))
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    async def _mirror_one(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> None:
        assert self._session is not None
        code = 502
        endpoint = self.pick(self.candidate.name)
        if endpoint is not None:
            endpoint.begin()
        try:
            if endpoint is None:
                raise aiohttp.ClientConnectionError("no healthy upstream")
            async with self._session.request(
                method, endpoint.url + path, headers=headers, data=body
            ) as upstream:
                code = upstream.status
                async for _ in upstream.content.iter_any():
                    pass  # the shadow's answer is discarded
        except (aiohttp.ClientError, TimeoutError):
            code = 502
        finally:
            if endpoint is not None:
                endpoint.end()
            self.mirrored[code] += 1
            self._requests.labels(
                **self._labels, variant=self.candidate.name, code=str(code), mirrored="true"
            ).inc()
