"""The replicas of a local run: start one, put it in service, retire it, and the scrape file.

Owns :class:`ReplicaPool`; called by :class:`controlplane.local.stack.LocalStack`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter as Tally
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from controlplane.capacity import plan
from controlplane.local.engines import EngineKind, make_engine
from controlplane.local.inject import Faults
from controlplane.local.prometheus import PrometheusServer, last_scrape
from controlplane.local.replicas import (
    InProcess,
    LocalStackError,
    ReplicaServer,
    ServerProcess,
    serve_command,
)
from controlplane.local.router import Endpoint, LocalRouter
from controlplane.local.server import HOST, Identity, ModelServer
from controlplane.profiles.catalog import Catalog
from controlplane.spec.models import ModelCanary, VariantSpec

ROLES = ("stable", "candidate")
TARGETS_TIMEOUT_S = 20.0
DRAIN_TIMEOUT_S = 60.0
"""The longest a retired replica's requests in flight may take before it is stopped anyway
(what is still running then fails): Kubernetes gives a terminating pod 30 s by default
(``terminationGracePeriodSeconds``); a generation may take longer."""
POLL_S = 0.1
"""How often a wait for a replica (its health, its scrapes) asks again."""


@dataclass(eq=False)
class Replica:
    """One replica of a variant: its server (a process of its own, or for the ``vllm`` engine a
    server in this one) and pod name; ``in_service`` while the router sends it requests, through
    ``endpoint`` (which counts them)."""

    role: str
    variant: str
    index: int
    pod: str
    server: ReplicaServer
    in_service: bool = False
    endpoint: Endpoint | None = None

    @property
    def requests(self) -> int:
        """Requests the router sent it."""
        return 0 if self.endpoint is None else self.endpoint.served

    @property
    def instance(self) -> str:
        """Its Prometheus ``instance``: the address it is scraped at."""
        return f"{HOST}:{self.server.port}"


def pod_name(model: str, variant: str, index: int) -> str:
    """``<model>-<variant>-<i>``: a replica's name in its ``pod`` label and in reports."""
    return f"{model}-{variant}-{index}"


def replica_targets(canary: ModelCanary, replicas: list[Replica]) -> list[dict[str, Any]]:
    """The ``file_sd_configs`` content for ``replicas``: one target each, labelled with the
    contract's ``namespace`` / ``canary`` / ``variant`` and its ``pod``."""
    return [
        {
            "targets": [r.instance],
            "labels": {
                "namespace": canary.metadata.namespace,
                "canary": canary.metadata.name,
                "variant": r.variant,
                "pod": r.pod,
            },
        }
        for r in replicas
    ]


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one rename, so that Prometheus never reads half a file."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text)
    os.replace(partial, path)


class ReplicaPool:
    """Every replica of a run started and not yet stopped (in service, or being retired), behind
    ``router``; ``files`` holds the scrape file and the replicas' files; ``changed`` is called
    whenever a replica starts, enters or leaves service, or stops. ``seed``: the first
    replica's (each replica's differs)."""

    def __init__(
        self,
        canary: ModelCanary,
        faults: Mapping[str, Faults],
        engine: EngineKind,
        scrape_interval: float,
        catalog: Catalog,
        router: LocalRouter,
        files: Path,
        seed: int,
        changed: Callable[[], None],
    ) -> None:
        self.canary = canary
        self.faults = faults
        self.engine = engine
        self.scrape_interval = scrape_interval
        self.catalog = catalog
        self.router = router
        self.files = files
        self.changed = changed
        self.prometheus: PrometheusServer | None = None
        self.replicas: dict[str, list[Replica]] = {role: [] for role in ROLES}
        self.closing = False
        self.targets_file = files / "replicas.json"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        self._next_index = dict.fromkeys(ROLES, 0)
        self._retiring: set[asyncio.Task[None]] = set()
        self._retired: Tally[str] = Tally()
        self._seed = seed

    def in_service(self) -> plan.Replicas:
        """Each variant's replicas in the router."""
        stable = sum(1 for r in self.replicas["stable"] if r.in_service)
        return plan.Replicas(stable, sum(1 for r in self.replicas["candidate"] if r.in_service))

    def held(self) -> plan.Replicas:
        """Each variant's replicas that hold their GPUs (started, not yet stopped)."""
        return plan.Replicas(len(self.replicas["stable"]), len(self.replicas["candidate"]))

    def by_replica(self) -> dict[str, int]:
        """Requests each replica received (by pod name), the retired ones included."""
        counts = Tally(self._retired)
        for role in ROLES:
            for replica in self.replicas[role]:
                counts[replica.pod] = replica.requests
        return dict(counts)

    def rescrape(self) -> None:
        """Write the scrape file: every replica that runs (retiring ones until they stop)."""
        if self.closing:
            return
        every = [r for role in ROLES for r in self.replicas[role]]
        _write_atomically(self.targets_file, json.dumps(replica_targets(self.canary, every)))

    def _server(self, role: str, variant: VariantSpec, seed: int, pod: str) -> ReplicaServer:
        """The server of one replica: a process running the pod's command
        (:func:`~controlplane.local.replicas.serve_command`), or for the ``vllm`` engine one in
        this process."""
        canary = self.canary
        faults = self.faults.get(role, Faults())
        if self.engine == "vllm":
            from controlplane.local.engines.vllm_engine import model_location

            engine = make_engine(self.engine, canary.spec.model, variant, self.catalog, seed=seed)
            who = Identity(
                model=canary.spec.model.name,
                namespace=canary.metadata.namespace,
                canary=canary.metadata.name,
                variant=variant.name,
                system_prompt=variant.system_prompt,
                max_model_len=canary.spec.model.max_model_len,
                root=model_location(variant.storage_uri),  # what vLLM's --model is given
            )
            return InProcess(ModelServer(who, engine, faults, seed=seed))
        argv = serve_command(
            canary,
            variant,
            self.catalog,
            engine=self.engine,
            faults=faults,
            seed=seed,
            files=self.files,
        )
        return ServerProcess(argv, pod)

    async def launch(self, role: str) -> Replica:
        """Start one replica of ``role`` (its GPUs held from here) and list it for scraping; not
        in service yet (:meth:`enter`)."""
        canary = self.canary
        variant = self.canary.spec.variant(role)
        index = self._next_index[role]
        self._next_index[role] += 1
        # the first replica of each variant keeps the seed a variant's one server had
        seed = self._seed + ROLES.index(role) + 2 * index
        pod = pod_name(canary.spec.model.name, variant.name, index)
        server = self._server(role, variant, seed, pod)
        replica = Replica(role, variant.name, index, pod, server)
        self.replicas[role].append(replica)
        try:
            await server.start()
        except BaseException:
            self.replicas[role].remove(replica)
            raise
        self.rescrape()
        self.changed()
        return replica

    async def enter(self, replica: Replica) -> None:
        """Put ``replica`` in service once it serves: ``/health`` answers and Prometheus has
        scraped it."""
        await self._until_serving(replica)
        replica.endpoint = self.router.add_endpoint(replica.variant, replica.server.url)
        replica.in_service = True
        self.changed()

    async def _healthy(self, replica: Replica) -> bool:
        try:
            async with self._session.get(replica.server.url + "/health") as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _until_serving(self, replica: Replica) -> None:
        assert self.prometheus is not None
        url = self.prometheus.url
        deadline = time.monotonic() + TARGETS_TIMEOUT_S
        while time.monotonic() < deadline:
            healthy = await self._healthy(replica)
            if healthy and await asyncio.to_thread(last_scrape, url, replica.instance) is not None:
                return
            await asyncio.sleep(POLL_S)
        raise LocalStackError(
            f"replica {replica.pod} did not answer /health and get scraped within "
            f"{TARGETS_TIMEOUT_S:g}s; Prometheus' log ends with:\n{self.prometheus.log_tail()}"
        )

    async def settle(self) -> None:
        """Wait for the retirements under way: their GPUs are free once they have stopped."""
        while self._retiring:
            await asyncio.gather(*set(self._retiring), return_exceptions=True)

    async def scale_up(self, want: plan.Replicas) -> None:
        """Start what ``want`` asks beyond the replicas in service (never stop one), once the
        retirements under way have ended; return when every new replica is in service."""
        await self.settle()
        have = self.in_service()
        launched = [
            await self.launch(role)
            for role, more in (
                ("stable", want.stable - have.stable),
                ("candidate", want.candidate - have.candidate),
            )
            for _ in range(max(0, more))
        ]
        if launched:
            await asyncio.gather(*(self.enter(replica) for replica in launched))

    def scale_down(self, want: plan.Replicas) -> None:
        """Retire the replicas in service beyond ``want``, newest first (a ReplicaSet deletes
        the pods ready for the shortest time first): out of the router at once, drained and
        stopped in the background (:meth:`_retire`)."""
        for role, keep in (("stable", want.stable), ("candidate", want.candidate)):
            serving = [r for r in self.replicas[role] if r.in_service]
            for replica in sorted(serving, key=lambda r: r.index)[max(0, keep) :]:
                replica.in_service = False
                endpoint = self.router.remove_endpoint(replica.variant, replica.server.url)
                task = asyncio.get_running_loop().create_task(self._retire(replica, endpoint))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
        self.changed()

    async def _retire(self, replica: Replica, endpoint: Endpoint | None) -> None:
        """Drain it (its requests in flight finish), let Prometheus scrape its last counts,
        take it out of the scrape file, stop it."""
        assert self.prometheus is not None
        if endpoint is not None:
            await self.router.drain(endpoint, DRAIN_TIMEOUT_S)
        drained_at = time.time()
        url = self.prometheus.url
        deadline = time.monotonic() + max(4 * self.scrape_interval, 2.0)
        while not self.closing and time.monotonic() < deadline:
            seen = await asyncio.to_thread(last_scrape, url, replica.instance)
            if seen is not None and seen > drained_at:
                break
            await asyncio.sleep(POLL_S)
        self.replicas[replica.role].remove(replica)
        self.rescrape()  # out of the scrape file before it stops
        try:
            await replica.server.stop()
        finally:
            self._retired[replica.pod] = replica.requests
            self.changed()

    async def close(self) -> None:
        """Stop every replica, newest first, once the retirements under way have ended (the
        router has stopped: the drains end with its requests in flight)."""
        self.closing = True
        if self._retiring:
            _, late = await asyncio.wait(set(self._retiring), timeout=DRAIN_TIMEOUT_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for role in reversed(ROLES):
            for replica in reversed(self.replicas[role]):
                await replica.server.stop()
        await self._session.close()
