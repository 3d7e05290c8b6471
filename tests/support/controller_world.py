"""A cluster-shaped world for controller tests: FakeKube + FakeKServe + an injected clock.

``World`` builds the controller exactly as ``canaryctl controller`` does (Reconciler + Controller
with a real Prometheus source) on a cluster whose Gateways (the canaries' ``gw`` and KServe's
default) are of one GatewayClass (Envoy Gateway's unless told: ``error-rate`` reads the HTTP
source of its implementation), and :meth:`World.run_until` drives it tick by tick: the clock jumps
to the next timer (the controller's or the fake KServe's), so weeks pass in seconds. ``crash``
hooks kill the controller (a ``Crash`` BaseException that no ``except Exception`` swallows) and
``restart`` builds a fresh one on the same cluster, as a new pod would.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from controlplane.controller.pairs import PairsReader
from controlplane.controller.reconcile import Reconciler, Settings
from controlplane.controller.runner import Controller
from controlplane.errors import NotFound
from controlplane.kube.client import Obj, Ref, canary_ref
from controlplane.kube.lease import LeaderElector
from controlplane.profiles.catalog import load_catalog
from controlplane.providers.prometheus import from_url
from controlplane.providers.source import PrometheusSource
from controlplane.rollout.intents import INTENT_ANNOTATION
from controlplane.rollout.state import RolloutState
from controlplane.routing.base import Router
from controlplane.spec.defaults import DEFAULTS
from controlplane.spec.models import ModelCanary
from harness.cluster.gateways import gateway_objects
from harness.kube.fake import FakeKube
from harness.kube.fake_kserve import FakeKServe
from support.canaries import KPI_QUERY, STEPS, canary_dict
from support.prometheus import PrometheusServer
from support.scenario import Scenario

NS = "ml-serving"
HOUR = 3600.0
INTERVAL = 2 * HOUR
"""The evaluation interval of :data:`CANARY`."""
DAY = 86400.0
ISVC = ("serving.kserve.io/v1beta1", "InferenceService")
ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")
ENVOY_GATEWAY = "gateway.envoyproxy.io/gatewayclass-controller"
GATEWAY_NAME = "gw"
"""The Gateway :data:`CANARY` attaches to (in the canary's namespace)."""


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Crash(BaseException):
    """The controller process dies here."""


# The controller tests' canary: a four-week rollout (7d at 5%, 25%, 75%, then 100%: the contract
# example's steps, with P99 allowed up to 300 ms) of the example's variants, evaluated every 2
# hours, no shadow, no budget. world_canary() gives each canary its own model.
CANARY = canary_dict(
    namespace=NS,
    stable={"name": "bf16", "storageUri": "hf://m/x", "gpu": "nvidia-l40s"},
    traffic={"router": "gateway-api", "gateway": {"name": GATEWAY_NAME}},
    analysis={
        "interval": "2h",
        "window": "2h",
        "metrics": [
            {"name": "latency", "builtin": "e2e-latency", "quantile": 0.95},
            {"name": "latency-p99", "builtin": "e2e-latency", "quantile": 0.99},
            {"name": "errors", "builtin": "error-rate"},
            {"name": "kpi", "query": KPI_QUERY},
        ],
    },
    steps=[
        *STEPS[:2],
        {**STEPS[2], "rollbackOn": [{"metric": "latency-p99", "above": "300ms"}]},
        STEPS[3],
    ],
    shadow=None,
    budget=None,
    # the scenarios below were written for fixed replicas, and run on the real API server too;
    # the capacity plan (the product's default) has its own tests (test_controller_capacity.py,
    # and old_defaults_are_kept_until_the_spec_changes below on both servers). Under the plan a
    # promotion's outcome waits, after the phase is written, for the winner to be ready at the
    # replicas for all the traffic; these scenarios end at the phase.
    capacity={"mode": "fixed", "acceptOverload": True},
)


def world_canary(
    name: str, prometheus: str | None, *, namespace: str = NS, **spec: Any
) -> dict[str, Any]:
    """:data:`CANARY` as ``name`` in ``namespace`` with model ``<name>-llm`` (its own
    InferenceServices) and its metrics in ``prometheus`` (``None``: the controller's default);
    ``spec`` replaces top-level spec sections (the builder's rules)."""
    spec.setdefault("model", {"name": f"{name}-llm", "maxModelLen": 8192})
    return canary_dict(name, namespace, base=CANARY, prometheus=prometheus, **spec)


def write_combined(scenarios: Iterable[Scenario], path: Path) -> Path:
    """One OpenMetrics file holding every scenario (families contiguous across scenarios), so a
    single promtool run backfills them all."""
    families: dict[str, tuple[str, list[str]]] = {}
    for scenario in scenarios:
        stamps = [f" {t:.0f}\n" for t in scenario.times.tolist()]
        for family, kind, name, labels, values in scenario.series():
            text = ",".join(f'{k}="{v}"' for k, v in labels.items())
            prefix = f"{name}{{{text}}} "
            pairs = zip(values.tolist(), stamps, strict=True)
            body = "".join(prefix + repr(v) + s for v, s in pairs)
            families.setdefault(family, (kind, []))[1].append(body)
    with path.open("w") as out:
        for family, (kind, bodies) in families.items():
            out.write(f"# TYPE {family} {kind}\n")
            out.writelines(bodies)
        out.write("# EOF\n")
    return path


@dataclass
class World:
    """One fake cluster and the controller(s) driving it."""

    start: float
    prometheus: str
    settings: Settings = field(default_factory=lambda: Settings(progress_deadline_s=6 * HOUR))
    ready_after_s: float = 600.0
    router_for: Callable[[ModelCanary], Router] | None = None
    wrap: Callable[[FakeKube], Any] | None = None
    gateway_controller: str | None = ENVOY_GATEWAY
    """The ``controllerName`` of the Gateways' class (None: no Gateway, no class)."""
    pairs: PairsReader | None = None
    """Where a quality canary's pairs are read (None: the controller's own, over HTTP)."""

    def __post_init__(self) -> None:
        self.clock = Clock(self.start)
        self.kube = FakeKube(now=self.clock)
        self.kserve = FakeKServe(self.kube, now=self.clock, ready_after_s=self.ready_after_s)
        if self.gateway_controller is not None:
            controller = self.gateway_controller
            gateway_class, kserves = gateway_objects("gateways", controller, 80)
            _, own = gateway_objects("gateways", controller, 80, gateway=(NS, GATEWAY_NAME))
            for obj in (gateway_class, kserves, own):
                self.kube.create(obj)
        self.catalog = load_catalog()
        self.restarts = 0
        self.controller = self.new_controller()

    def new_controller(self, kube: Any = None, elector: LeaderElector | None = None) -> Controller:
        if self.prometheus and not self.settings.endpoints.prometheus:
            # the canaries name the world's Prometheus: allowed as an administrator would
            # (--allow-prometheus); the default allows no spec URL
            endpoints = replace(self.settings.endpoints, prometheus=(self.prometheus,))
            self.settings = replace(self.settings, endpoints=endpoints)
        client = kube if kube is not None else (self.wrap(self.kube) if self.wrap else self.kube)
        reconciler = Reconciler(
            client, self.catalog, self.settings, router_for=self.router_for, pairs=self.pairs
        )
        return Controller(
            client,
            reconciler,
            lambda url: PrometheusSource(from_url(url, timeout_s=30)),
            self.clock,
            namespaces=[NS],
            elector=elector,
        )

    def restart(self) -> None:
        """A new controller process: nothing survives but what is in the cluster."""
        self.restarts += 1
        self.controller = self.new_controller()

    # ---------------------------------------------------------------------------- the cluster

    def create(self, data: dict[str, Any]) -> Obj:
        return self.kube.create(copy.deepcopy(data))

    def get(self, name: str) -> Obj:
        return self.kube.get(canary_ref(NS, name))

    def state(self, name: str) -> RolloutState:
        return RolloutState.from_status(self.get(name)["status"])

    def step(self, name: str) -> int:
        """The 1-based step of ``name`` (0 before any status)."""
        return int((self.get(name).get("status") or {}).get("step", 0))

    def settle(self, passes: int = 5) -> None:
        """A few more passes at the current time (a crash restarts the controller)."""
        for _ in range(passes):
            try:
                self.pass_once()
            except Crash:
                self.restart()

    def history(self, name: str) -> list[tuple[str, float, int, int]]:
        return [(e.type, e.time, e.step, e.weight) for e in self.state(name).history]

    def objects(self, api_version: str, kind: str, name: str) -> list[Obj]:
        return self.kube.list(api_version, kind, NS, {"canary.controlplane.dev/canary": name})

    def events(self, name: str) -> list[tuple[str, str]]:
        found = []
        for ev in self.kube.list("v1", "Event", NS):
            if ev["involvedObject"].get("name") == name:
                found.extend([(ev["reason"], ev["message"])] * int(ev.get("count", 1)))
        return found

    # ---------------------------------------------------------------------------- driving

    def pass_once(self, controllers: list[Controller] | None = None) -> float | None:
        """One loop pass of every controller at the current time; the earliest wake."""
        self.kserve.tick()
        wakes: list[float] = []
        for ctrl in controllers or [self.controller]:
            ctrl.poll(0.0)
            wake = ctrl.run_once()
            if wake is not None:
                wakes.append(wake)
        pending = list(self.kserve.pending().values())
        wakes.extend(p for p in pending if p > self.clock.t)
        return min(wakes) if wakes else None

    def run_until(
        self,
        done: Callable[[World], bool],
        limit: float,
        controllers: Callable[[], list[Controller]] | None = None,
        on_crash: Callable[[World], None] | None = None,
        max_passes: int = 20000,
    ) -> None:
        """Drive until ``done`` or the clock passes ``start + limit``."""
        for _ in range(max_passes):
            if done(self):
                return
            try:
                wake = self.pass_once(controllers() if controllers else None)
            except Crash:
                (on_crash or World.restart)(self)
                continue
            if wake is None or self.clock.t > self.start + limit:
                return
            self.clock.t = max(self.clock.t, wake)
        raise AssertionError("the controller did not settle")


ROLLBACK_CASES = [
    pytest.param("slow", 1, "latency", id="builtin-latency-step1"),
    pytest.param("errors", 1, "errors", id="builtin-error-rate-step1"),
    pytest.param("drift", 2, "kpi", id="custom-kpi-baseline-drift-step2"),
    pytest.param("tail", 3, "latency-p99", id="builtin-p99-step3"),
]
"""(canary name, step it rolls back at, the check that breaches): one per kind of check; the
contract scenario's history gives each its breach (tests on the fake and on the real server)."""


def reapply_as_gitops(world: World, data: dict[str, Any], times: int = 5) -> None:
    """Argo CD / Flux re-apply the same spec ``times`` times, six hours apart (server-side apply,
    their own field manager, a new label each time), one controller pass after each."""
    for k in range(times):
        again = copy.deepcopy(data)
        again["metadata"]["labels"] = {"argocd.argoproj.io/sync": str(k)}
        world.kube.apply(again, field_manager="argocd")
        world.clock.t += 6 * HOUR
        world.pass_once()


def retry_restarts_once(world: World, name: str) -> None:
    """Record a ``retry`` intent on a rolled-back canary (as ``kubectl canary retry`` does):
    exactly one restart, the intent acknowledged, the candidate deployed again."""
    before = len(world.state(name).history)
    intent = {"id": "retry-1", "verb": "retry", "at": world.clock.t, "user": "alice"}
    annotations = {INTENT_ANNOTATION: json.dumps(intent)}
    world.kube.patch(canary_ref(NS, name), {"metadata": {"annotations": annotations}})
    world.pass_once()
    world.clock.t += 2 * HOUR
    world.pass_once()
    kinds = [e.type for e in world.state(name).history]
    assert kinds[before:].count("Restarted") == 1
    assert world.get(name)["status"]["controller"]["lastIntentId"] == "retry-1"
    candidate = f"{name}-llm-nf4"
    assert any(o["metadata"]["name"] == candidate for o in world.objects(*ISVC, name))


# --- scenarios run on the fake world and on the real API server (RealWorld) alike ---------------


def candidate_isvc(world: World, name: str) -> Obj:
    (found,) = [o for o in world.objects(*ISVC, name) if o["metadata"]["name"].endswith("nf4")]
    return found


def spec_change_restarts(world: World, prometheus: str) -> tuple[Obj, Obj]:
    """A spec edit at step 2 restarts the rollout once, back at weight 0, with the new candidate
    (its InferenceService's generation bumped). Returns the candidate before and after."""
    world.create(world_canary("good", prometheus))
    world.run_until(lambda w: w.step("good") == 2, limit=25 * DAY)
    before = candidate_isvc(world, "good")
    obj = world.get("good")
    obj["spec"]["candidate"]["args"] = ["--max-num-seqs=64"]
    changed_at = world.clock.t
    world.kube.replace(obj)
    world.run_until(lambda w: w.step("good") == 2 and w.clock.t > changed_at, limit=25 * DAY)

    kinds = [e[0] for e in world.history("good")]
    assert kinds == ["StepStarted", "Advanced", "Restarted", "StepStarted", "Advanced"]
    restarted = world.history("good")[2]
    assert restarted[1] == pytest.approx(changed_at, abs=1)
    assert restarted[3] == 0  # back to weight 0 until the new candidate is ready
    after = candidate_isvc(world, "good")
    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    assert "--max-num-seqs=64" in json.dumps(after["spec"])
    return before, after


def old_defaults_are_kept_until_the_spec_changes(world: World, prometheus: str) -> None:
    """Upgrading: a rollout begun under the first defaults (its status has no ``defaults``:
    an older controller wrote it) keeps fixed replicas at 75 % while one begun now follows the
    capacity plan; a spec edit restarts it under the plan. One unchecked step at 75 %."""
    stable = {**CANARY["spec"]["stable"], "replicas": 2}
    steps = [{"weight": 75, "duration": "7d"}, {"weight": 100}]
    for name in ("old", "new"):  # no capacity block: the defaults decide
        world.create(world_canary(name, prometheus, stable=stable, steps=steps, capacity=None))
    world.pass_once()  # each rollout's first state, pending: nothing sized for traffic yet
    obj = world.get("old")
    assert obj["status"]["defaults"] == DEFAULTS
    del obj["status"]["defaults"]  # as written before the defaults were kept
    world.kube.replace_status(obj)
    world.run_until(lambda w: w.step("old") == 1 and w.step("new") == 1, limit=DAY)

    def replicas(name: str) -> int:
        return int(candidate_isvc(world, name)["spec"]["predictor"]["minReplicas"])

    world.settle(2)  # the verified weights' sizes
    assert world.get("old")["status"].get("defaults") is None
    assert replicas("old") == 1  # its own replicas: 132 % of what one serves at 75 %
    assert replicas("new") == 2  # the plan's
    obj = world.get("old")
    obj["spec"]["steps"][0]["duration"] = "6d"  # a new rollout; the sizes stay the same
    world.kube.replace(obj)
    world.run_until(lambda w: w.state("old").defaults == DEFAULTS and w.step("old") == 1,
                    limit=2 * DAY)  # fmt: skip
    world.settle(2)
    assert replicas("old") == 2


def never_ready_rolls_back_at_the_deadline(world: World, prometheus: str, t0: float) -> None:
    """A candidate that never loads is rolled back at the progress deadline (3 h), nothing else
    recorded. ``world`` has ``progress_deadline_s=3 * HOUR``."""
    world.kserve.never_ready("good-llm-nf4")
    world.create(world_canary("good", prometheus))
    world.run_until(finished("good"), limit=2 * DAY)
    state = world.state("good")
    assert state.stage == "rolled_back"
    assert state.reason is not None
    assert "progress deadline" in state.reason.message
    assert world.clock.t == pytest.approx(t0 + 3 * HOUR)
    assert [e[0] for e in world.history("good")] == ["RolledBack"]
    assert stage_of("good")(world) == "rolled_back"


def crash_loop_rolls_back_with_the_engine_s_words(world: World, prometheus: str) -> None:
    """A candidate whose engine dies on start (KServe: FailedToLoad with the container's last
    words) and whose pods say nothing more (none read: the crash loop is not certain) is rolled
    back at the progress deadline with those words in the reason and Event."""
    last_words = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    world.kserve.fail("good-llm-nf4", "ModelLoadFailed", f"Loading weights\n{last_words}\n\n")
    world.create(world_canary("good", prometheus))
    world.run_until(finished("good"), limit=2 * DAY)
    state = world.state("good")
    assert state.reason is not None
    assert state.reason.kind == "not-ready"
    assert state.reason.message.endswith(
        "(progress deadline): InferenceService good-llm-nf4 failed to load (ModelLoadFailed): "
        + last_words
    ), state.reason.message
    assert [e[0] for e in world.history("good")] == ["RolledBack"]


def candidate_predictors(world: World, isvc: str) -> list[Obj]:
    """The predictor Deployments the fake KServe keeps for ``isvc``."""
    owner = {"serving.kserve.io/inferenceservice": isvc}
    return world.kube.list("apps/v1", "Deployment", NS, label_selector=owner)


def certain_crash_loop_rolls_back_at_once(world: World, prometheus: str) -> None:
    """A candidate whose pods crash on start: after one restart (not yet certain) the rollout
    waits past a reading; once a container has restarted three times in CrashLoopBackOff, the
    next reading (an analysis interval, 2 h) rolls it back, before the progress deadline (6 h),
    in the pod's words. ``world`` has ``progress_deadline_s=6 * HOUR``."""
    last_words = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    world.create(world_canary("good", prometheus))
    created = world.clock.t
    world.run_until(lambda w: bool(candidate_predictors(w, "good-llm-nf4")), limit=HOUR)
    world.kserve.crash_loop("good-llm-nf4", 1, f"Loading weights\n{last_words}\n")
    world.run_until(lambda w: w.clock.t >= created + INTERVAL + 60, limit=DAY)
    assert world.state("good").stage == "pending"  # one crash is not yet the variant's
    assert world.state("good").last_evaluation >= created + INTERVAL  # read since the crash
    world.kserve.crash_loop("good-llm-nf4", 3, f"Loading weights\n{last_words}\n")
    crashed = world.clock.t
    world.run_until(finished("good"), limit=2 * DAY)
    state = world.state("good")
    assert state.stage == "rolled_back"
    assert state.reason is not None
    assert state.reason.kind == "not-ready"
    assert state.reason.message == (
        "candidate nf4 cannot start: pod good-llm-nf4-predictor-0: container kserve-container "
        f"restarted 3 times (CrashLoopBackOff), last exit code 1: {last_words}"
    ), state.reason.message
    assert state.reason.at <= crashed + INTERVAL + 1  # the next reading, not the deadline
    assert state.reason.at < created + world.settings.progress_deadline_s
    assert [e[0] for e in world.history("good")] == ["RolledBack"]
    assert ("RolledBack", state.reason.message) in [
        (reason, message) for reason, message in world.events("good")
    ]


def certain_crash_loop_mid_step_rolls_back_at_once(world: World, prometheus: str) -> None:
    """A candidate that starts crash-looping in step 1, three restarts already when the
    controller reads it, is rolled back at that reading, not two analysis intervals on."""
    last_words = "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue."
    world.create(world_canary("good", prometheus))
    world.run_until(lambda w: w.step("good") == 1, limit=2 * DAY)
    broke = world.clock.t
    world.kserve.crash_loop("good-llm-nf4", 3, f"Serving\n{last_words}\n")
    world.run_until(finished("good"), limit=2 * DAY)
    state = world.state("good")
    assert state.reason is not None
    assert state.reason.kind == "not-ready"
    assert state.reason.step == 1
    assert state.reason.message.startswith(
        "candidate nf4 cannot start while it took 5% of the traffic: pod good-llm-nf4-"
    ), state.reason.message
    assert state.reason.message.endswith(last_words), state.reason.message
    assert broke <= state.reason.at <= broke + INTERVAL + 1, (broke, state.reason.at)
    assert [e[0] for e in world.history("good")] == ["StepStarted", "RolledBack"]


def lost_readiness_rolls_back(world: World, prometheus: str) -> None:
    """A candidate that stops being ready in step 1 (its engine crash-looping: KServe's
    FailedToLoad) while it takes traffic is rolled back two analysis intervals after the
    controller first read it not ready (the progress deadline is longer), with KServe's words;
    the stable takes back every request."""
    last_words = "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue."
    world.create(world_canary("good", prometheus))
    world.run_until(lambda w: w.step("good") == 1, limit=2 * DAY)
    broke = world.clock.t
    world.kserve.fail("good-llm-nf4", "ModelLoadFailed", f"Serving\n{last_words}\n")
    world.run_until(finished("good"), limit=2 * DAY)
    state = world.state("good")
    assert state.reason is not None
    assert state.reason.kind == "not-ready"
    assert state.reason.step == 1
    assert "(2 analysis intervals) while it took 5% of the traffic: InferenceService" in (
        state.reason.message
    ), state.reason.message
    assert "good-llm-nf4 failed to load" in state.reason.message, state.reason.message
    assert state.reason.message.endswith(last_words), state.reason.message
    deadline = world.settings.progress_deadline_s
    assert deadline is not None
    assert deadline > 2 * INTERVAL
    # first read not ready at the next evaluation, rolled back two evaluations on
    assert broke + 2 * INTERVAL <= state.reason.at <= broke + 3 * INTERVAL + 1
    assert [e[0] for e in world.history("good")] == ["StepStarted", "RolledBack"]


def a_pod_replaced_mid_step_is_judged_not_rolled_back(world: World, prometheus: str) -> None:
    """A candidate one pod short in step 1 (KServe reads it not Ready) while another of its pods
    serves: its share is answered, so the checks judge it and the two-interval rule does not
    fire; once the pod is back, the rollout goes on and is promoted."""
    world.create(world_canary("good", prometheus))
    world.run_until(lambda w: w.step("good") == 1, limit=2 * DAY)
    world.kserve.short_of_a_pod("good-llm-nf4")
    world.run_until(lambda w: w.state("good").unready_since is not None, limit=3 * DAY)
    since = world.state("good").unready_since
    assert since is not None
    # the two-interval rule would have fired at the evaluation two intervals on (the deadline is
    # three)
    world.run_until(lambda w: w.clock.t >= since + 2 * INTERVAL or finished("good")(w), 4 * DAY)
    assert (world.state("good").stage, world.state("good").unready_since) == ("steps", since)
    world.kserve.heal("good-llm-nf4")
    world.run_until(finished("good"), limit=40 * DAY)
    assert world.state("good").stage == "promoted", world.state("good").reason
    assert "RolledBack" not in [e[0] for e in world.history("good")]


def delete_cleans_up_through_the_finalizer(world: World, prometheus: str) -> None:
    """Deleting mid-rollout: the object stays (deletionTimestamp) until the finalizer has deleted
    the InferenceServices and the HTTPRoute, then it is gone."""
    world.create(world_canary("good", prometheus))
    world.run_until(lambda w: w.step("good") == 2, limit=25 * DAY)
    assert world.objects(*ISVC, "good")
    assert world.objects(*ROUTE, "good")
    assert "canary.controlplane.dev/cleanup" in world.get("good")["metadata"]["finalizers"]

    world.kube.delete(canary_ref(NS, "good"))
    assert world.get("good")["metadata"].get("deletionTimestamp")
    world.pass_once()

    with pytest.raises(NotFound):
        world.get("good")
    assert world.objects(*ISVC, "good") == []
    assert world.objects(*ROUTE, "good") == []


def stage_of(name: str) -> Callable[[World], str]:
    def read(world: World) -> str:
        status = world.get(name).get("status") or {}
        return str(status.get("stage", "none"))

    return read


def finished(*names: str) -> Callable[[World], bool]:
    def check(world: World) -> bool:
        return all(stage_of(n)(world) in ("promoted", "rolled_back") for n in names)

    return check


def ref_of(obj: Obj) -> Ref:
    return Ref.of(obj)


@dataclass(frozen=True)
class Metrics:
    server: PrometheusServer
    t0: float
    fleet_t0: float
    end: float

    @property
    def url(self) -> str:
        return self.server.url
