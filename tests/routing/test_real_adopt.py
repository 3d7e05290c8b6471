"""Adopting the InferenceService a team already serves, on the real node under real traffic (#37).

The stack is :func:`support.real_traffic.real_stack`'s: the loopback control plane with the real
KServe v0.20.0 serving the engine image on the real node, Traefik v3.6.12 reading the Gateway
API's HTTPRoutes, and the Prometheus Operator's Prometheus; ``canaryctl controller`` runs out of
cluster on the chart's ServiceAccount token (:class:`support.real_traffic.Controller`).

The live InferenceService ``chat`` is made as a team makes it, outside the product
(:func:`support.adoption.live_isvc`: two replicas of the tiny model on the node's GPUs, the vLLM
flags written by hand), applied as Argo CD applies a manifest (server-side apply, field manager
``argocd-controller``). Its clients call the host KServe's own HTTPRoute serves it on; OpenAI
completions go there at 6 per second from before the canary exists until well after its end.
Then a ModelCanary adopts it (``spec.stable.targetRef``) with an FP8 candidate on the same
checkpoint, 25 % then 75 % on the ``gateway-api`` router: the canary's HTTPRoute, on the live
service's hosts with exact matches on the inference paths, outranks KServe's ``^/.*$`` route, so
the clients keep their URL while the split moves. The live pods carry none of the canary's
labels, so the engine names their variant by the served model name (``x-canary-variant: chat``,
:mod:`controlplane.local.serve`): those answers are the live service's; the candidate's say
``fp8``.

What must hold, on every request:

- promotion: the live pods keep their names and start times until the promotion begins; each
  step's answers split at its weight; while KServe rolls the live pods to the candidate's
  predictor (written into the live InferenceService by ``canary-controller-promotion``), every
  answer comes from the candidate; then everything goes back to the live service, which runs the
  candidate's arguments on new pods; the canary's route, its candidate InferenceService and the
  PodMonitor are deleted after the cleanup delay, and Argo CD still owns its own fields;
- rollback (``abort`` once step 1 is in effect): the live pods are the same ones (names, start
  times, no restart), the live InferenceService's spec and generation unchanged, nothing of the
  canary left;
- not a single request fails, and every answer sent once Traefik is seen without the canary's
  route (after the cleanup) comes from the live service.

Each step's split counts the answers sent while Traefik was seen running it
(:class:`support.real_traffic.Splits`), not after seconds allowed for it to take it up.

The analysis reads the candidate from the chart's PodMonitor and the live pods from the
``<canary>-adopted`` PodMonitor the controller applies: checked as an object, and as what
Prometheus scrapes while the canary runs (the live pods up under the canary's and the stable's
labels; the harness's Prometheus takes up the operator's new configuration as the config
reloader would, :mod:`harness.cluster.promreload`).
With ``CONTROLPLANE_TRAFFIC_REPORT`` set, the phases are written as ``adopt-promotion.json``
and ``adopt-rollback.json``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.adoption import LIVE, adopting_canary, live_isvc
from support.real_serving import GPU, MODEL
from support.real_traffic import (
    CANDIDATE,
    RATE,
    SERVING,
    Controller,
    Load,
    Route,
    Splits,
    Stack,
    pod_ready,
    prepare,
    report,
    serving_stack,
    status,
    write_report,
)
from support.realnode import MARKS, until
from support.traffic_report import Answer, first_seen, within_bounds

from controlplane.errors import NotFound
from controlplane.kube.client import Obj, Ref
from controlplane.operations import record_intent
from controlplane.profiles.catalog import load_catalog
from controlplane.routing.adopting import FIELD_MANAGER
from controlplane.serving.adopt import hosts_of
from controlplane.serving.object_names import child_name, route_name, variant_service_name
from controlplane.spec.units import time_value
from harness.node.serving import write_model

pytestmark = [*MARKS, pytest.mark.shared_stack(SERVING)]

ARGOCD = "argocd-controller"
ISVC = ("serving.kserve.io/v1beta1", "InferenceService")
ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")
PODMONITOR = ("monitoring.coreos.com/v1", "PodMonitor")
DEPLOYMENT = ("apps/v1", "Deployment")
ISVC_LABEL = "serving.kserve.io/inferenceservice"
LIVE_REPLICAS = 2
MAX_MODEL_LEN = 8192
LIVE_ARGS = [f"--model_name={LIVE}", f"--max-model-len={MAX_MODEL_LEN}", "--enable-prefix-caching"]
GPUS = 6
"""The live service's two pods, the candidate's one, and the one more the live Deployment may
surge to while KServe rolls it; the first test's promoted service keeps its one pod."""
STEPS = ((25, "40s"), (75, "40s"))
TAIL_S = 25.0
"""How long the load runs on after the canary is done and cleaned up."""
LIVE_SERVED = "live"
"""How the report names the live pods' answers. Their pods carry no canary label, so the engine
names its variant by the served model name (:mod:`controlplane.local.serve`: an empty
``CONTROLPLANE_VARIANT`` counts as unset), ``chat``: never the candidate's ``fp8``."""
LIVE_VARIANTS = {LIVE, "", None, "none"}
"""The ``x-canary-variant`` of a live pod's answer (``none``: the report's name for no header)."""


def served_by(variant: str | None) -> str:
    """The report's name for what served an answer with this ``x-canary-variant``."""
    return LIVE_SERVED if variant in LIVE_VARIANTS else str(variant)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with serving_stack(tmp_path_factory, gpus=GPUS) as running:
        yield running


# --------------------------------------------------------------------------- the cluster


def _get(stack: Stack, ref: Ref) -> Obj | None:
    try:
        return stack.kube.get(ref)
    except NotFound:  # not created yet, or gone
        return None


def live_ref(ns: str) -> Ref:
    return Ref(*ISVC, ns, LIVE)


def candidate_name() -> str:
    return variant_service_name(LIVE, CANDIDATE)


def live_pods(stack: Stack, ns: str) -> dict[str, tuple[str, int]]:
    """The live predictor's pods: name -> (start time, restarts of its containers)."""
    found = {}
    for pod in stack.kube.list("v1", "Pod", ns, {ISVC_LABEL: LIVE}):
        state = pod.get("status") or {}
        restarts = sum(int(c.get("restartCount", 0)) for c in state.get("containerStatuses") or [])
        found[pod["metadata"]["name"]] = (str(state.get("startTime")), restarts)
    return found


def engine_args(stack: Stack, ns: str) -> dict[str, list[str]]:
    """Each live pod's engine container arguments."""
    return {
        pod["metadata"]["name"]: [
            str(a)
            for c in pod["spec"]["containers"]
            if c["name"] == "kserve-container"
            for a in c.get("args") or []
        ]
        for pod in stack.kube.list("v1", "Pod", ns, {ISVC_LABEL: LIVE})
        if not pod["metadata"].get("deletionTimestamp")
    }


def managers(obj: Obj) -> dict[str, dict[str, Any]]:
    """Each field manager that applied ``obj`` and the fields it owns."""
    return {
        m["manager"]: m.get("fieldsV1") or {}
        for m in obj["metadata"].get("managedFields") or []
        if m.get("operation") == "Apply"
    }


def isvc_ready(obj: Obj | None) -> bool:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def serve_live(stack: Stack, ns: str) -> tuple[Obj, str]:
    """Apply the live service as Argo CD does and wait until it is Ready on all its pods and
    KServe's HTTPRoute names its host: the object, and that host (what clients call)."""
    prepare(stack, (ns,))
    product = load_catalog().require_gpu(GPU).product_label
    obj = live_isvc(
        ns, storage_uri=write_model(MODEL), product=product, args=LIVE_ARGS, replicas=LIVE_REPLICAS
    )
    stack.kube.apply(obj, field_manager=ARGOCD)

    def serving() -> bool:
        pods = stack.kube.list("v1", "Pod", ns, {ISVC_LABEL: LIVE})
        return (
            isvc_ready(_get(stack, live_ref(ns)))
            and len(pods) == LIVE_REPLICAS
            and all(pod_ready(p) for p in pods)
        )

    try:
        until(serving, "the live InferenceService Ready on its pods", 300)
        route = until(lambda: _get(stack, Ref(*ROUTE, ns, LIVE)), "KServe's HTTPRoute", 120)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnosis(stack, ns)}") from None
    hosts: list[str] = route["spec"].get("hostnames") or []
    assert hosts, route["spec"]
    return stack.kube.get(live_ref(ns)), hosts[0]


def canary(ns: str) -> dict[str, Any]:
    """A canary named ``ns`` in ``ns`` adopting ``chat``: an FP8 candidate of the same checkpoint
    on the same GPU, 25 % then 75 % judged every 10 s (checks the candidate passes), then 100 %."""
    checks = [
        {"metric": "latency", "above": "2500ms", "minSamples": 10},
        {"metric": "errors", "above": "2%", "minSamples": 10},
    ]
    return adopting_canary(
        ns,
        ns,
        model={"name": LIVE, "maxModelLen": MAX_MODEL_LEN},
        candidate={
            "name": CANDIDATE,
            "storageUri": write_model(MODEL),
            "gpu": GPU,
            "quantization": "fp8",
            "replicas": 1,
            "args": ["--enable-prefix-caching"],
        },
        traffic={"router": "gateway-api"},
        analysis={
            "interval": "10s",
            "window": "30s",
            "metrics": [
                {"name": "latency", "builtin": "e2e-latency", "quantile": 0.95},
                {"name": "errors", "builtin": "error-rate"},
            ],
        },
        steps=[
            *({"weight": w, "duration": d, "rollbackOn": checks} for w, d in STEPS),
            {"weight": 100},
        ],
    )


def leftovers(stack: Stack, ns: str) -> list[str]:
    """What of the canary's objects still exists: its route, its candidate, the PodMonitor."""
    refs = (
        Ref(*ROUTE, ns, route_name(ns)),
        Ref(*ISVC, ns, candidate_name()),
        Ref(*PODMONITOR, ns, child_name(ns, "-adopted")),
    )
    found = [f"{r.kind}/{r.name}" for r in refs if _get(stack, r) is not None]
    for api, kind in (ISVC, ROUTE, PODMONITOR):
        for obj in stack.kube.list(api, kind, ns, {"canary.controlplane.dev/canary": ns}):
            name = f"{kind}/{obj['metadata']['name']}"
            if name not in found:
                found.append(name)
    return found


def kserve_backends(stack: Stack, ns: str) -> list[str]:
    """The Services KServe's own HTTPRoute of the live service sends to."""
    rules = stack.kube.get(Ref(*ROUTE, ns, LIVE))["spec"]["rules"]
    return [str(b["name"]) for r in rules for b in r.get("backendRefs") or []]


def diagnosis(stack: Stack, ns: str) -> str:
    """What a person would look at: the canary's status, the live and candidate
    InferenceServices, the routes, the pods, the events and the controller's log."""
    try:
        got = status(stack, ns)
    except NotFound:
        got = {}
    live = _get(stack, live_ref(ns)) or {}
    cand = _get(stack, Ref(*ISVC, ns, candidate_name())) or {}
    routes = {}
    for name in (LIVE, route_name(ns)):
        route = _get(stack, Ref(*ROUTE, ns, name)) or {}
        spec = route.get("spec") or {}
        routes[name] = {
            "hostnames": spec.get("hostnames"),
            "backends": [
                (b["name"], b.get("weight"))
                for r in spec.get("rules") or []
                for b in r["backendRefs"]
            ],
            "parents": (route.get("status") or {}).get("parents"),
        }
    pods = stack.cluster.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
    events = stack.cluster.request("GET", f"/api/v1/namespaces/{ns}/events")["items"]
    log = (stack.cluster.workdir / "controller.log").read_text(errors="replace")
    keys = ("phase", "step", "weight", "history", "conditions", "controller", "adopted")
    return "\n".join(
        [
            f"status: { {k: got.get(k) for k in keys} }",
            f"live predictor: {(live.get('spec') or {}).get('predictor')}",
            f"live status: {live.get('status')}",
            f"candidate status: {cand.get('status')}",
            f"routes: {routes}",
            "pods: "
            + "; ".join(
                f"{p['metadata']['name']} {p['status'].get('phase')} ready={pod_ready(p)}"
                f" deleting={bool(p['metadata'].get('deletionTimestamp'))}"
                for p in pods
            ),
            "events: " + "; ".join(f"{e['reason']}: {e['message'][:200]}" for e in events[-25:]),
            "controller log: " + log[-4000:],
        ]
    )


# --------------------------------------------------------------------------- watching


@dataclass(frozen=True)
class Sample:
    """What the cluster showed at ``at``: the canary's phase and step, the live pods, the live
    InferenceService's generation and appliers, the split of the canary's route (None: no
    route) and the spec of the PodMonitor for the live pods (None: none)."""

    at: float
    phase: str
    step: int
    pods: dict[str, tuple[str, int]]
    generation: int
    appliers: frozenset[str]
    split: dict[str, int] | None
    hostnames: tuple[str, ...]
    podmonitor: dict[str, Any] | None
    scraped_live: int
    """The live pods Prometheus scraped (``up`` 1) under the canary's and the stable's labels."""


@dataclass
class Watch:
    """Samples the cluster about once a second while the canary runs."""

    stack: Stack
    ns: str
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)

    def sample(self) -> Sample:
        try:
            got = status(self.stack, self.ns)
        except NotFound:
            got = {}
        live = self.stack.kube.get(live_ref(self.ns))
        route = _get(self.stack, Ref(*ROUTE, self.ns, route_name(self.ns)))
        split = (
            {
                b["name"]: int(b.get("weight", 1))
                for r in route["spec"]["rules"][:1]
                for b in r["backendRefs"]
            }
            if route
            else None
        )
        monitor = Ref(*PODMONITOR, self.ns, child_name(self.ns, "-adopted"))
        return Sample(
            at=time.time(),
            phase=str(got.get("phase", "")),
            step=int(got.get("step") or 0),
            pods=live_pods(self.stack, self.ns),
            generation=int(live["metadata"]["generation"]),
            appliers=frozenset(managers(live)),
            split=split,
            hostnames=tuple((route or {}).get("spec", {}).get("hostnames") or ()),
            podmonitor=(_get(self.stack, monitor) or {}).get("spec"),
            scraped_live=scraped(self.stack.prometheus, self.ns),
        )

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.samples.append(self.sample())
            except Exception as exc:  # an API hiccup: one sample fewer
                self.errors.append(repr(exc))
            self.stop.wait(1.0)


@contextmanager
def running(run: Run) -> Iterator[None]:
    """``run``'s load, watch and looks at Traefik in threads until the block ends (when the load
    stopped: ``run.stopped_at``), then until every request has its answer; the load begins once
    the live service answers through the gateway (that first answer is not counted)."""
    load = run.load
    until(lambda: load.one().code == 200, "the live service through the gateway", 120)
    threads = [threading.Thread(target=w.run, daemon=True) for w in (load, run.watch, run.splits)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        run.stopped_at = time.time()
        for stop in (load.stop, run.watch.stop, run.splits.stop):
            stop.set()
        for thread in threads:
            thread.join(timeout=10)
        until(load.answered, "every request answered", 60)  # the last answers in flight


def book(stack: Stack, ns: str) -> dict[str, Any]:
    got: dict[str, Any] = status(stack, ns).get("controller") or {}
    return got


def done(stack: Stack, ns: str, phase: str) -> bool:
    try:
        got = status(stack, ns)
    except NotFound:
        return False
    return got.get("phase") == phase and (got.get("controller") or {}).get("cleaned") is not None


def step_in_effect(stack: Stack, ns: str, weight: int) -> bool:
    """The controller verified the step at ``weight``: Traefik reported it took the route up."""
    try:
        verified = book(stack, ns).get("verified") or {}
    except NotFound:
        return False
    return verified.get("stage") == "steps" and verified.get("weight") == weight


@dataclass
class Run:
    """One adoption under load, what it measured."""

    load: Load
    watch: Watch
    splits: Splits
    before: Obj
    pods_before: dict[str, tuple[str, int]]
    cleaned_at: float = 0.0
    stopped_at: float = 0.0
    seconds: float = 0.0

    def tail(self, ns: str) -> list[Answer]:
        """The answers sent once Traefik was seen without the canary's route, after the
        cleanup; at least half what the load's schedule (:data:`RATE`) sends from then until it
        stopped, so that what is said of them is said of many (only a load thread starved for
        half that time sends fewer)."""
        gone = first_seen(self.splits.seen[ns], None, after=self.cleaned_at)
        assert gone is not None, "Traefik still runs the canary's route after the cleanup"
        late = [a for a in self.load.answers if a.sent > gone]
        assert len(late) >= RATE * (self.stopped_at - gone) / 2, (len(late), gone)
        assert late, gone
        return late


def adopt_under_load(stack: Stack, ns: str, outcome: str, abort_at: int | None = None) -> Run:
    """Serve the live service, load its host, apply the canary (``abort`` once the step at
    ``abort_at`` has been in effect 15 s) and run until it reached ``outcome`` and was cleaned
    up, then :data:`TAIL_S` more."""
    before, host = serve_live(stack, ns)
    route = Route.of(ns, f"{LIVE}-predictor", f"{candidate_name()}-predictor")
    run = Run(
        Load(stack.gateway.url, host, LIVE),
        Watch(stack, ns),
        Splits(stack.gateway, {ns: route}),
        before,
        live_pods(stack, ns),
    )
    controller = Controller(stack, (ns,))
    controller.start()
    started = time.monotonic()
    try:
        with running(run):
            time.sleep(5)  # the live service answers alone before any canary
            stack.kube.apply(canary(ns), field_manager="test")
            try:
                if abort_at is not None:
                    until(lambda: step_in_effect(stack, ns, abort_at), "step 1 in effect", 300)
                    time.sleep(15)
                    record_intent(stack.kube, ns, ns, "abort", "test")
                until(lambda: done(stack, ns, outcome), f"{outcome} and cleaned up", 480)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{diagnosis(stack, ns)}") from None
            run.cleaned_at = time.time()
            time.sleep(TAIL_S)
        run.seconds = round(time.monotonic() - started, 1)
    finally:
        controller.stop()
    return run


def measured(stack: Stack, ns: str, run: Run) -> dict[str, Any]:
    """The per-phase report of ``run`` with its own numbers; written as JSON when asked."""
    got: dict[str, Any] = report(stack, {ns: run.load}, run.splits)[ns]
    for row in got["phases"]:  # the live pods answer with no variant
        for key in ("variants", "settling"):
            row[key] = {served_by(k): n for k, n in row[key].items()}
    got["sent"] = run.load.sent
    got["answered"] = len(run.load.answers)
    got["failed"] = sum(1 for a in run.load.answers if a.failed)
    got["seconds"] = run.seconds
    items = stack.cluster.request("GET", f"/api/v1/namespaces/{ns}/events")["items"]
    got["events"] = sorted(e["reason"] for e in items)
    got["warnings"] = [
        f"{e['involvedObject']['kind']}/{e['involvedObject']['name']} {e['reason']}: "
        f"{e['message'][:300]}"
        for e in items
        if e.get("type") == "Warning"
    ]
    return got


def assert_splits(rows: list[dict[str, Any]], context: str) -> None:
    """Every step's answers split at its weight (the candidate's answers say ``fp8``)."""
    for row in rows:
        served, weight = row["variants"], row["weight"]
        total = sum(served.values())
        if weight is None or row["phase"] == "pending" or row["seconds"] < 1:
            continue  # the last step (100 %) has no duration: promoted as it is verified
        assert total > 0, (row, context)
        assert set(served) <= {CANDIDATE, LIVE_SERVED}, (row, context)
        assert within_bounds(served.get(CANDIDATE, 0), total, weight), (row, context)


def assert_untouched_until(run: Run, until_t: float, context: str) -> list[Sample]:
    """The live pods, generation and appliers as before the canary in every sample before
    ``until_t``; those samples."""
    early = [s for s in run.watch.samples if s.at < until_t]
    assert early, (run.watch.errors, context)
    generation = int(run.before["metadata"]["generation"])
    for s in early:
        assert s.pods == run.pods_before, (s, run.pods_before, context)
        assert s.generation == generation, (s, generation, context)
        assert s.appliers == {ARGOCD}, (s, context)
    return early


def scraped(prometheus: str, ns: str) -> int:
    """How many live pods Prometheus scrapes as the stable of the canary ``ns``."""
    query = f'count(up{{namespace="{ns}",canary="{ns}",variant="live"}} == 1)'
    url = f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        result = json.loads(response.read())["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def assert_routed_and_scraped(stack: Stack, ns: str, run: Run, context: str) -> None:
    """The canary's route was on the live service's hosts (those of its URLs) and split each
    step between its predictor Service and the candidate's; the PodMonitor selected the live
    pods and labelled their series with the canary and the stable's variant name."""
    hosts = hosts_of(run.before)
    assert run.load.host in hosts, (hosts, context)
    assert any(s.hostnames == hosts for s in run.watch.samples), (hosts, context)
    splits = [s.split for s in run.watch.samples if s.phase == "progressing"]
    for weight, _ in STEPS[: max(s.step for s in run.watch.samples)]:
        want = {f"{LIVE}-predictor": 100 - weight, f"{candidate_name()}-predictor": weight}
        assert want in splits, (want, context)
    monitor = next((s.podmonitor for s in run.watch.samples if s.podmonitor), None)
    assert monitor is not None, context
    selector = monitor["selector"]["matchLabels"]
    pods = stack.kube.list("v1", "Pod", ns, {ISVC_LABEL: LIVE})
    assert pods, context
    for pod in pods:
        assert selector.items() <= pod["metadata"]["labels"].items(), (selector, context)
    static = {
        r["targetLabel"]: r["replacement"]
        for r in monitor["podMetricsEndpoints"][0]["relabelings"]
        if r.get("action") == "replace" and not r.get("sourceLabels")
    }
    assert static == {"canary": ns, "variant": "live"}, (static, context)
    # and Prometheus scraped them under those labels while the canary ran
    assert max(s.scraped_live for s in run.watch.samples) >= 1, context


def history_of(got: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [(kind, weight) for kind, weight, _ in got["history"]]


# --------------------------------------------------------------------------- the tests


def test_a_promotion_rolls_the_live_service_to_the_candidate_without_failing_a_request(
    stack: Stack,
) -> None:
    ns = "adopt-up"
    run = adopt_under_load(stack, ns, "promoted")
    got = measured(stack, ns, run)
    final = status(stack, ns)
    history = final["history"]
    promoted_at = next(time_value(h["time"]) for h in history if h["type"] == "Promoted")
    finished_at = time_value(final["controller"]["finishedAt"])
    # after the promotion: the route all on the candidate while KServe rolls the live pods
    # (from the first sample that saw a new live pod), then all back on the live service
    back = [s for s in run.watch.samples if s.at > promoted_at and s.split is not None]
    live_svc = f"{LIVE}-predictor"
    all_candidate = [s for s in back if s.split and s.split.get(live_svc, 0) == 0]
    returned = next((s for s in back if s.split and s.split.get(live_svc, 0) == 100), None)
    roll_began = next((s.at for s in back if s.pods != run.pods_before), None)
    on_candidate = [s.at for s in all_candidate if returned is None or s.at < returned.at]
    rolling = [
        a
        for a in run.load.answers
        if roll_began is not None and on_candidate and roll_began <= a.sent < max(on_candidate)
    ]
    got["promoted_at"] = promoted_at
    got["answers_while_rolling"] = len(rolling)
    got["live_roll_began_s"] = round((roll_began or finished_at) - promoted_at, 1)
    got["live_rolled_s"] = round((returned.at if returned else finished_at) - promoted_at, 1)
    got["finished_after_promotion_s"] = round(finished_at - promoted_at, 1)
    got["cleaned_after_finish_s"] = round(run.cleaned_at - finished_at, 1)
    got["pods_before"] = sorted(run.pods_before)
    got["pods_after"] = sorted(live_pods(stack, ns))
    write_report("adopt-promotion", got)
    why = f"{json.dumps(got, default=str)[:6000]}\n{diagnosis(stack, ns)}"

    kinds = [kind for kind, _ in history_of(got)]
    assert kinds == ["StepStarted", "Advanced", "Advanced", "Promoted"], why
    assert [w for _, w in history_of(got)][:3] == [25, 75, 100], why
    # not a request failed, before, during or after the live pods rolled
    assert got["answered"] == got["sent"], why
    failed = [a for a in run.load.answers if a.failed]
    assert not failed, (failed[:20], why)
    # the clients kept their URL: the canary's route on the live service's hosts split them
    assert_routed_and_scraped(stack, ns, run, why)
    # each step split at its weight; before the first only the live service answered
    assert_splits(got["phases"], why)
    rows = {row["phase"]: row for row in got["phases"]}
    assert set(rows["pending"]["variants"]) == {LIVE_SERVED}, why
    # the live pods were the same ones, and the live object Argo CD's alone, at every step
    early = assert_untouched_until(run, promoted_at, why)
    assert {s.step for s in early if s.phase == "progressing"} >= {1, 2}, (early[-3:], why)
    # while KServe rolled the live pods, every answer came from the candidate's own pods
    assert all_candidate, why
    assert returned is not None, why
    assert roll_began is not None, why
    assert rolling, why
    assert {served_by(a.variant) for a in rolling} == {CANDIDATE}, (len(rolling), why)
    # then the live service, now the candidate, took everything back (from when Traefik was
    # seen running the route's return); so after the cleanup
    taken_back = first_seen(run.splits.seen[ns], 0, after=returned.at)
    assert taken_back is not None, why
    late = [a for a in run.load.answers if a.sent > taken_back]
    assert late, why
    assert {served_by(a.variant) for a in late} == {LIVE_SERVED}, why
    assert {served_by(a.variant) for a in run.tail(ns)} == {LIVE_SERVED}, why
    # the live InferenceService serves the candidate under its own name, on new pods
    live = stack.kube.get(live_ref(ns))
    model = live["spec"]["predictor"]["model"]
    assert "--quantization=fp8" in model["args"], (model, why)
    assert live["metadata"]["labels"] == run.before["metadata"]["labels"], why
    assert "canary.controlplane.dev" not in json.dumps(live["spec"]), why
    args = engine_args(stack, ns)
    assert args, why
    assert all("--quantization=fp8" in a for a in args.values()), (args, why)
    assert set(live_pods(stack, ns)).isdisjoint(run.pods_before), why
    deployment = stack.kube.get(Ref(*DEPLOYMENT, ns, f"{LIVE}-predictor"))
    engine = deployment["spec"]["template"]["spec"]["containers"][0]
    assert engine["args"][-len(model["args"]) :] == model["args"], (engine["args"], why)
    # the promotion's fields are its manager's; Argo CD still owns the rest of its manifest
    owned = managers(live)
    assert set(owned) == {ARGOCD, FIELD_MANAGER}, (owned, why)
    promoted = owned[FIELD_MANAGER]["f:spec"]["f:predictor"]
    assert {"f:args", "f:storageUri"} <= set(promoted["f:model"]), (promoted, why)
    argo = owned[ARGOCD]
    assert "f:team" in argo["f:metadata"]["f:labels"], (argo, why)
    assert "f:serving.kserve.io/deploymentMode" in argo["f:metadata"]["f:annotations"], (argo, why)
    # nothing of the canary is left; KServe's own route serves the live Service as before
    assert leftovers(stack, ns) == [], why
    assert kserve_backends(stack, ns) == [f"{LIVE}-predictor"], why
    assert "FinalizePending" in got["events"], why


def test_a_rollback_leaves_the_live_pods_serving_as_they_were(stack: Stack) -> None:
    ns = "adopt-back"
    run = adopt_under_load(stack, ns, "rolled_back", abort_at=STEPS[0][0])
    got = measured(stack, ns, run)
    final = status(stack, ns)
    rolled_at = next(time_value(h["time"]) for h in final["history"] if h["type"] == "RolledBack")
    got["rolled_back_at"] = rolled_at
    got["cleaned_after_rollback_s"] = round(run.cleaned_at - rolled_at, 1)
    got["pods"] = sorted(run.pods_before)
    write_report("adopt-rollback", got)
    why = f"{json.dumps(got, default=str)[:6000]}\n{diagnosis(stack, ns)}"

    assert [k for k, _ in history_of(got)] == ["StepStarted", "RolledBack"], why
    assert "by test" in final["history"][-1]["message"], why
    assert got["answered"] == got["sent"], why
    failed = [a for a in run.load.answers if a.failed]
    assert not failed, (failed[:20], why)
    assert_splits(got["phases"], why)
    rows = {row["phase"]: row for row in got["phases"]}
    assert rows["step 1"]["variants"].get(CANDIDATE, 0) > 0, why
    assert_routed_and_scraped(stack, ns, run, why)
    # the same live pods all along, and at the end: names, start times, no restart
    assert_untouched_until(run, time.time(), why)
    assert live_pods(stack, ns) == run.pods_before, why
    live = stack.kube.get(live_ref(ns))
    assert live["spec"] == run.before["spec"], why
    assert live["metadata"]["generation"] == run.before["metadata"]["generation"], why
    assert set(managers(live)) == {ARGOCD}, why
    # all on the live service after the rollback, and nothing of the canary left
    assert set(rows["after rollback"]["variants"]) == {LIVE_SERVED}, why
    assert {served_by(a.variant) for a in run.tail(ns)} == {LIVE_SERVED}, why
    assert leftovers(stack, ns) == [], why
    assert kserve_backends(stack, ns) == [f"{LIVE}-predictor"], why
