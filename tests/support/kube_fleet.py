"""Many ModelCanaries under one controller, on FakeKube or on the real API server, with every
API request the controller makes counted per tick.

Shared by tests/controller/test_controller_quiet_ticks.py (20 canaries: what a quiet tick may do)
and bench/kube_scale.py (1,000 and 10,000: what each tick costs). :class:`CountingKube` wraps the
controller's client and counts calls by method (``replace_status`` of ModelCanaries separately:
status writes). :class:`Fleet` builds the controller as ``canaryctl controller`` does, lists the
canaries once (what the production loop does before it watches; the watch stream itself is one
long request, not a per-tick cost) and :meth:`Fleet.tick` runs one loop pass at the clock's time,
returning what it cost. KServe is :class:`~harness.kube.fake_kserve.FakeKServe` on the fake
and :class:`~harness.kube.isvc_standin.IsvcStandin` on the real server, on their own clients.

The canaries have no Prometheus (``analysis.prometheus`` unset, no default): an analysis tick
asks nothing of a metrics server, records the unavailable provider in the status (a change, so a
write) and the benchmark measures the Kubernetes side alone.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from controlplane.controller.reconcile import Reconciler, Settings
from controlplane.controller.runner import Controller
from controlplane.kube.client import Obj
from controlplane.kube.real import RealKube
from controlplane.profiles.catalog import load_catalog
from controlplane.spec.models import KIND
from harness.kube.fake import FakeKube
from harness.kube.fake_kserve import FakeKServe
from harness.kube.isvc_standin import IsvcStandin
from support.canaries import EXAMPLE, canary_dict
from support.controller_world import Clock
from support.real_world import ensure_namespace

METHODS = frozenset(
    {"get", "list", "list_with_version", "create", "replace", "patch", "apply", "replace_status"}
    | {"delete", "event"}
)
FLEET_NS = "fleet"


class CountingKube:
    """Counts the calls made through it (each one HTTP request on the real server)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in METHODS:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name == "replace_status" and args and args[0].get("kind") == KIND:
                self.calls["status:ModelCanary"] += 1
            return attr(*args, **kwargs)

        return call

    def take(self) -> Counter[str]:
        """The calls since the last take."""
        calls, self.calls = self.calls, Counter()
        return calls


# The fleet's canaries (each its own model): the contract example's variants, two steps (7 days
# at 10 %, then 100 %) checking the error rate every 2 hours, no shadow, no budget, no Prometheus.
# Their Gateway's implementation is named, so its class is not read: that read is per Gateway
# and every few minutes (controller/gateway_source.py), not per canary, and would be one more
# request in the first evaluation of any fleet.
FLEET = canary_dict(
    stable={"name": "bf16", "storageUri": "hf://m/x", "gpu": "nvidia-l40s"},
    traffic={
        "router": "gateway-api",
        "gateway": {"name": "gw", "implementation": "envoy-gateway"},
    },
    analysis={
        "interval": "2h",
        "window": "2h",
        "metrics": [{"name": "errors", "builtin": "error-rate"}],
    },
    steps=[
        {"weight": 10, "duration": "7d", "rollbackOn": [{"metric": "errors", "above": "1%"}]},
        {"weight": 100},
    ],
    shadow=None,
    budget=None,
)


def fleet_canary(i: int, namespace: str = FLEET_NS, capacity: Obj | None = None) -> Obj:
    """:data:`FLEET` as canary ``c<i>`` (five digits) of model ``c<i>-llm``; ``capacity``
    its ``spec.capacity`` (None: none, the capacity plan by default)."""
    name = f"c{i:05d}"
    model = {"name": f"{name}-llm", "maxModelLen": 8192}
    if capacity is None:
        return canary_dict(name, namespace, base=FLEET, model=model)
    return canary_dict(name, namespace, base=FLEET, model=model, capacity=capacity)


@dataclass
class Tick:
    """What one loop pass cost the controller."""

    at: float
    calls: Counter[str]
    reconciles: int
    cpu_s: float = 0.0
    """Process CPU time of the controller's pass (KServe's writes before it excluded)."""
    wall_s: float = 0.0

    @property
    def requests(self) -> int:
        return sum(n for method, n in self.calls.items() if method in METHODS)

    @property
    def status_writes(self) -> int:
        return self.calls["status:ModelCanary"]


@dataclass
class Fleet:
    """``size`` canaries in ``namespace``, on FakeKube (``kubeconfig`` None) or a real server."""

    size: int
    start: float
    kubeconfig: str | None = None
    namespace: str = FLEET_NS
    ready_after_s: float = 600.0
    capacity: Obj | None = None
    """Every canary's ``spec.capacity`` (None: the plan, the default)."""
    settings: Settings = field(default_factory=lambda: Settings(progress_deadline_s=6 * 3600.0))

    def __post_init__(self) -> None:
        self.clock = Clock(self.start)
        self.kserve: FakeKServe | IsvcStandin
        if self.kubeconfig is None:
            fake = FakeKube(now=self.clock)
            self.admin: Any = fake
            self._client: Callable[[], Any] = lambda: fake
            self.kserve = FakeKServe(fake, now=self.clock, ready_after_s=self.ready_after_s)
        else:
            config = self.kubeconfig
            self.admin = RealKube.connect(kubeconfig=config)
            ensure_namespace(self.admin, self.namespace)
            self._client = lambda: RealKube.connect(kubeconfig=config)
            self.kserve = IsvcStandin(
                RealKube.connect(kubeconfig=config),
                [self.namespace],
                now=self.clock,
                ready_after_s=self.ready_after_s,
            )
        self.catalog = load_catalog()
        self.kube = CountingKube(self._client())
        self.controller = self._controller()

    def _controller(self) -> Controller:
        reconciler = Reconciler(self.kube, self.catalog, self.settings)
        return Controller(
            self.kube,
            reconciler,
            lambda url: None,  # type: ignore[arg-type,return-value]
            self.clock,
            namespaces=[self.namespace],
        )

    def create_all(self, workers: int = 1) -> None:
        """Create the canaries (as the user, not counted; ``workers`` at once) and let the
        controller list them."""
        items = [fleet_canary(i, self.namespace, self.capacity) for i in range(self.size)]
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(self.admin.create, items))
        else:
            for item in items:
                self.admin.create(copy.deepcopy(item))
        self.controller.sync(self.namespace)
        self.kube.take()

    def restart(self) -> Tick:
        """A new controller process (new client, nothing remembered): list, then one pass."""
        self.kube = CountingKube(self._client())
        self.controller = self._controller()
        self.controller.sync(self.namespace)
        return self.tick()

    def next_wake(self) -> float | None:
        wakes = [w for w in (self.controller.next_wake(),) if w is not None]
        wakes.extend(t for t in self.kserve.pending().values() if t > self.clock.t)
        return min(wakes) if wakes else None

    def tick(self) -> Tick:
        """KServe's due status writes, then one controller pass at the clock's time."""
        self.kserve.tick()
        before = self.controller.stats.reconciles
        cpu, wall = time.process_time(), time.perf_counter()
        self.controller.run_once()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        calls = self.kube.take()
        return Tick(self.clock.t, calls, self.controller.stats.reconciles - before, cpu, wall)

    def stages(self) -> Counter[str]:
        items: list[Obj] = self.admin.list(EXAMPLE["apiVersion"], KIND, self.namespace)
        return Counter(str((o.get("status") or {}).get("stage", "none")) for o in items)
