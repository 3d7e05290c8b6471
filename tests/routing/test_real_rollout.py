"""Whole canaries on real traffic: the controller, KServe, a real node, Traefik and Prometheus.

Everything runs for real on this machine: the loopback control plane with kube-controller-manager
and kube-scheduler, KServe v0.20.0 serving the product's InferenceServices as pods of the engine
image on the real node (:mod:`harness.node.serving`), Traefik v3.6.12 as the Gateway API data
plane, the Prometheus Operator configuring Prometheus from the chart's PodMonitor
(:mod:`harness.cluster.monitoring`), and the controller as the chart runs it: a pod on the real
node of the image buildah builds from the repository's Dockerfile
(:mod:`harness.node.controller_image`), installed by ``helm upgrade`` with its ServiceAccount,
RBAC, security context and probes (:class:`support.real_traffic.PodController`; the node's
network, since nothing on it routes a Service to the loopback API server). OpenAI
completions are sent through the gateway at a fixed rate, each canary on its own host
(``spec.traffic.hosts``), from the moment its stable variant answers through the gateway to after
its end; each answer is kept with the variant that served it (the
engine's ``x-canary-variant`` header) and counted per phase of the status history
(:mod:`support.traffic_report`).

The canaries, on the GPUs the node advertises:

- ``good``: an FP8 candidate of the same model, promoted 5 -> 25 -> 75 -> 100, each step's
  split within binomial bounds of its weight;
- ``sized``: the same rollout with ``spec.capacity`` and a stable of two replicas: the candidate
  is scaled to two pods before 75 % reaches it, the stable to one once it has left, and not a
  request fails while pods come and go under load;
- ``sized-back``: ``sized`` again, beside it, with a check at 75 % that no candidate passes
  (P95 below 100 s): rolled back there, the stable is scaled back to two pods and ready before
  traffic returns to it, and not a request fails;
- ``slow``: a candidate whose engine adds 3 s to every request (``--inject=latency=+3s``), rolled
  back at its first step by the latency check;
- ``errors``: a candidate answering 10 % of requests with HTTP 500 (``--inject=errors=10%``),
  rolled back by the error rate, which the product reads from Traefik's per-service counters;
- ``crash``: an engine that dies loading the model, as vLLM does out of GPU memory
  (``--inject=crash-on-start``), rolled back once the real kubelet reports its container in
  CrashLoopBackOff after three restarts, before the progress deadline, with vLLM's error taken
  from the pod's termination message;
- ``never``: an engine that never becomes ready (``--inject=never-ready``), rolled back at the
  progress deadline;
- ``tiny``: both variants on the transformers engine (``--engine=transformers``: real CPU
  inference of the tiny random Llama, its stack mounted into the pods by
  :mod:`harness.node.serving`), the candidate quantized to NF4 by bitsandbytes; promoted, and
  greedy answers through the gateway differ between the two. Marked ``extended`` (``make
  test-extended``, not ``make test``): the real vLLM's canaries run a real engine in the pods
  with the product's flags, and the host's tests the engine's NF4.

Each rollback is an Event and an alert in a real Alertmanager. No request may fail but those the
faulty candidates answer themselves before their rollback. With ``CONTROLPLANE_TRAFFIC_REPORT``
set to a folder, each test writes what it counted there as JSON (``bench/real_rollout.py``).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.extras import local_cpu
from support.notify import Alertmanager, start_alertmanager
from support.real_serving import traffic_canary
from support.real_traffic import (
    CANDIDATE,
    DEADLINE_S,
    SERVING,
    STABLE,
    VARIANT_HEADER,
    Load,
    PodController,
    Route,
    Splits,
    Stack,
    assert_ended,
    created,
    events,
    finished,
    prepare,
    report,
    route_share,
    run_loads,
    serving_stack,
    status,
    traefik_services,
    write_report,
)
from support.realnode import MARKS, until
from support.traffic_report import first_seen, until_rollback, within_bounds

from controlplane.errors import NotFound
from controlplane.kube.client import Ref
from controlplane.local.server import ENGINE_HEADER
from controlplane.spec.units import time_value
from controlplane.view.owned import route_health
from harness.node.serving import STACK_MODULES

pytestmark = [*MARKS, pytest.mark.shared_stack(SERVING)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with serving_stack(tmp_path_factory, controller_pod=True) as running:
        yield running


def alerts(am: Alertmanager, canary: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"filter": f'canary="{canary}"'})
    with urllib.request.urlopen(f"{am.url}/api/v2/alerts?{query}", timeout=5) as response:
        got: list[dict[str, Any]] = json.loads(response.read())
    return got


def roll_out(
    stack: Stack,
    specs: Mapping[str, dict[str, Any]],
    ends: Mapping[str, str],
    timeout: float,
    extra: tuple[str, ...] = (),
) -> tuple[dict[str, Load], Splits]:
    """Apply ``specs`` with the controller running (``extra``: more of its flags) and each
    canary's host under load until every canary is in its phase of ``ends``; the loads, and
    what Traefik was seen running for each canary's route meanwhile."""
    prepare(stack, tuple(specs))
    controller = PodController(stack, tuple(specs), extra)
    loads = {name: Load(stack.gateway.url, f"{name}.example.com", f"{name}-llm") for name in specs}
    splits = Splits(stack.gateway, {name: Route.of_model(name, f"{name}-llm") for name in specs})
    controller.start()
    try:
        for spec in specs.values():
            stack.kube.apply(spec, field_manager="test")
        with splits.looking():
            run_loads(stack, loads, lambda: finished(stack, tuple(ends)), timeout=timeout)
    finally:
        controller.stop()
    assert_ended(stack, ends)
    return loads, splits


def assert_route_names_only(stack: Stack, name: str, variant: str) -> None:
    """After the end, canary ``name``'s HTTPRoute names ``variant``'s predictor Service alone, and
    Traefik reports every ref resolved on the route's generation (a ref to the released
    variant's Service, even at weight 0, was ``ResolvedRefs`` False, ``BackendNotFound``)."""
    ref = Ref("gateway.networking.k8s.io/v1", "HTTPRoute", name, name)
    route = stack.kube.get(ref)
    refs = [b["name"] for rule in route["spec"]["rules"] for b in rule["backendRefs"]]
    assert refs == [f"{name}-llm-{variant}-predictor"], refs
    until(
        lambda: route_health(stack.kube.get(ref)) == ("Ready", ""),
        f"Traefik reporting {name}'s HTTPRoute resolved",
        60,
    )


def assert_split(rows: list[dict[str, Any]]) -> None:
    """Every step's split is its weight; after the end one variant serves everything."""
    for row in rows:
        served = row["variants"]
        total = sum(served.values())
        if row["weight"] is not None and row["phase"] != "pending" and total:
            assert within_bounds(served.get(CANDIDATE, 0), total, row["weight"]), row


SIZED: dict[str, Any] = {
    "window": "60s",
    "min_samples": 10,
    "stable_replicas": 2,
    "capacity": {"maxGPUs": 4, "requestsPerReplica": {"stable": 4.0, "candidate": 4.0}},
}
"""What ``sized`` and ``sized-back`` share: a stable of two replicas and the capacity plan."""


def test_healthy_candidates_are_promoted_and_slow_ones_rolled_back_on_real_traffic(
    stack: Stack,
) -> None:
    """Four canaries at once on one stack: ``good`` and ``sized`` promoted, ``slow`` rolled back
    at its first step, ``sized-back`` at 75 % (the capacity plan's rollback: the stable, down to
    one pod there, is scaled back to two and ready before the route sends all traffic to it)."""
    specs = {
        # the four-week example's schedule: at 5 % of 6 requests/s the candidate gets 18 in a
        # minute, so the first step lasts one and the checks ask for 10
        "good": traffic_canary(
            "good", steps=((5, "60s"), (25, "30s"), (75, "30s")), window="60s", min_samples=10
        ),
        "slow": traffic_canary("slow", args=["--inject=latency=+3s"]),
        # 4 requests/s a replica, kept at 80 %: the stable's two carry 6.4; the candidate needs
        # one up to 25 %, two from 75 % (the stable one), two at 100 %
        "sized": traffic_canary("sized", steps=((5, "60s"), (25, "30s"), (75, "30s")), **SIZED),
        # the same, with a check at 75 % that no candidate passes (P95 below 100 s)
        "sized-back": traffic_canary(
            "sized-back",
            steps=((5, "60s"), (25, "30s"), (75, "60s")),
            last_checks=({"metric": "latency", "below": "100s", "minSamples": 10},),
            **SIZED,
        ),
    }
    ends = {
        "good": "promoted",
        "slow": "rolled_back",
        "sized": "promoted",
        "sized-back": "rolled_back",
    }
    loads, splits = roll_out(stack, specs, ends, timeout=480)

    got = report(stack, loads, splits)
    good, slow = status(stack, "good"), status(stack, "slow")
    got["slow"]["fault"] = until_rollback(
        loads["slow"].answers,
        slow["history"],
        next(time_value(h["time"]) for h in slow["history"] if h["type"] == "StepStarted"),
        CANDIDATE,
        lambda a: a.seconds > 2.5,
    )
    write_report("promote-and-latency", {k: v for k, v in got.items() if k != "sized-back"})
    write_report("capacity-rollback", {"sized-back": got["sized-back"]})
    for name, data in got.items():
        # not a request failed, at any phase: sized-back's stable took all traffic back on two
        assert all(not row["failed"] for row in data["phases"]), (name, data)
        if not name.startswith("sized"):  # its steps begin when asked; weights wait for pods
            assert_split(data["phases"])
    steps = [h["weight"] for h in good["history"] if h["type"] in ("StepStarted", "Advanced")]
    assert steps == [5, 25, 75, 100], good["history"]
    after = {row["phase"]: row["variants"] for row in got["good"]["phases"]}
    assert set(after["after promotion"]) == {CANDIDATE}, after
    # before the first step only the stable serves (the load may start after the step did:
    # it waits for the stable to answer through the gateway, and the candidate is as quick)
    assert set(after["pending"]) <= {STABLE}, after
    rolled = [h for h in slow["history"] if h["type"] == "RolledBack"]
    assert rolled, slow["history"]
    assert "latency" in rolled[0]["message"], rolled
    assert set({r["phase"]: r for r in got["slow"]["phases"]}["after rollback"]["variants"]) == {
        STABLE
    }
    assert any("latency" in m for m in events(stack, "slow", "RolledBack"))
    assert_route_names_only(stack, "good", CANDIDATE)
    assert_route_names_only(stack, "slow", STABLE)
    # capacity followed traffic: the candidate up before its weight rose, the stable down after
    sized = status(stack, "sized")
    steps = [h["weight"] for h in sized["history"] if h["type"] in ("StepStarted", "Advanced")]
    assert steps == [5, 25, 75, 100], sized["history"]
    scaled = events(stack, "sized", "Scaled")
    assert any("before the weights move: sized-llm-fp8 to 2" in m for m in scaled), scaled
    assert any("after the weights moved: sized-llm-bf16 to 1" in m for m in scaled), scaled
    assert sized["capacity"]["planned"] == {"stable": 0, "candidate": 2}, sized["capacity"]
    assert sized["capacity"]["ready"]["candidate"] == 2, sized["capacity"]
    sized_after = {row["phase"]: row["variants"] for row in got["sized"]["phases"]}
    assert set(sized_after["after promotion"]) == {CANDIDATE}, sized_after
    # the rollback at 75 %: the stable scaled back to two pods, ready, before the outcome
    back = status(stack, "sized-back")
    steps = [h["weight"] for h in back["history"] if h["type"] in ("StepStarted", "Advanced")]
    assert steps == [5, 25, 75], back["history"]
    rolled = [h for h in back["history"] if h["type"] == "RolledBack"]
    assert rolled, back["history"]
    assert "latency" in rolled[0]["message"], rolled
    scaled = events(stack, "sized-back", "Scaled")
    stable = "sized-back-llm-bf16"
    assert any(f"after the weights moved: {stable} to 1" in m for m in scaled), scaled
    assert any(f"before the outcome: {stable} to 2" in m for m in scaled), scaled
    assert back["capacity"]["planned"]["stable"] == 2, back["capacity"]
    assert back["capacity"]["ready"]["stable"] == 2, back["capacity"]
    after = {row["phase"]: row["variants"] for row in got["sized-back"]["phases"]}
    assert set(after["after rollback"]) == {STABLE}, after


def test_faulty_candidates_are_rolled_back_with_their_reasons_and_alerts(
    stack: Stack, tmp_path: Path
) -> None:
    am = start_alertmanager(tmp_path / "alertmanager")
    try:
        faults = {
            "errors": "--inject=errors=10%",
            "crash": "--inject=crash-on-start",
            "never": "--inject=never-ready",
        }
        specs = {
            name: traffic_canary(name, args=[arg], alerts=[{"alertmanager": {"url": am.url}}])
            for name, arg in faults.items()
        }
        loads, splits = roll_out(
            stack,
            specs,
            dict.fromkeys(specs, "rolled_back"),
            timeout=DEADLINE_S + 240,
            extra=(f"--allow-alert-url={am.url}",),
        )

        got = report(stack, loads, splits)
        reasons = {name: status(stack, name)["reason"] for name in specs}
        history = {name: status(stack, name)["history"] for name in specs}
        got["errors"]["fault"] = until_rollback(
            loads["errors"].answers,
            history["errors"],
            next(time_value(h["time"]) for h in history["errors"] if h["type"] == "StepStarted"),
            CANDIDATE,
            lambda a: a.failed,
        )
        for name in ("crash", "never"):
            got[name]["fault"] = until_rollback(
                loads[name].answers, history[name], created(stack, name), CANDIDATE, lambda a: True
            )
        write_report("faults", got)
        # the only failures are the 500s the faulty candidate answered itself until its rollback
        # was in effect: verified by the controller (finishedAt: Traefik reported the route's
        # generation) and seen applied by Traefik (its API: the stable's alone); requests sent
        # in that gap may reach it
        verified = time_value(status(stack, "errors")["controller"]["finishedAt"])
        in_effect = first_seen(splits.seen["errors"], 0, after=verified)
        assert in_effect is not None, ("Traefik never seen running the rollback", got["errors"])
        own = [
            a
            for a in loads["errors"].answers
            if a.code == 500 and a.variant == CANDIDATE and a.sent < in_effect
        ]
        others = [a for a in loads["errors"].answers if a.failed and a not in own]
        assert own, got["errors"]
        assert not others, (others[:20], in_effect)
        for name, data in got.items():
            if name != "errors":
                for row in data["phases"]:
                    assert not row["failed"], (name, row)
            assert_split(data["phases"])
        # the controller read the Gateway's class on the chart's RBAC and chose Traefik's source
        log = (stack.cluster.workdir / "controller.log").read_text()
        assert "errors/errors: error-rate reads traefik" in log, log[-3000:]
        assert not events(stack, "errors", "GatewayUnreadable")
        assert reasons["errors"]["kind"] == "breach", reasons
        assert "errors" in reasons["errors"]["message"], reasons
        assert got["errors"]["fault"]["bad_candidate_requests"] > 0, got["errors"]
        assert reasons["crash"]["kind"] == "not-ready", reasons
        # the pods' words, not the deadline's ("did not become ready within 3m")
        crash = reasons["crash"]["message"]
        assert crash.startswith(f"candidate {CANDIDATE} cannot start: pod crash-llm-"), reasons
        assert "container kserve-container restarted 3 times" in crash, reasons
        assert "last exit code 1: torch.OutOfMemoryError" in crash, reasons
        assert reasons["never"]["kind"] == "not-ready", reasons
        assert "failed to load" not in reasons["never"]["message"], reasons
        for name in ("crash", "never"):
            assert [h["type"] for h in history[name]] == ["RolledBack"], history[name]
            assert got[name]["fault"]["candidate_requests"] == 0, got[name]
        for name in specs:
            assert any(reasons[name]["message"] in m for m in events(stack, name, "RolledBack")), (
                name,
                events(stack, name, "RolledBack"),
            )
            fired = until(lambda n=name: alerts(am, n), f"{name}'s alert in Alertmanager", 30)
            labels = fired[0]["labels"]
            assert (labels["alertname"], labels["reason"]) == (
                "ModelCanaryRolledBack",
                reasons[name]["kind"],
            ), labels
    finally:
        am.stop()


@dataclass
class Probe:
    """Greedy completions to ``host`` once the controller verified the step at ``weight`` and
    Traefik was seen running it: each kept as (variant, engine, text)."""

    url: str
    host: str
    model: str
    canary: str
    weight: int
    got: list[tuple[str, str, str]] = field(default_factory=list)

    def at_weight(self, stack: Stack) -> bool:
        """The controller verified the step's weights: Traefik reported it took them up."""
        try:
            book = status(stack, self.canary).get("controller") or {}
        except NotFound:  # not applied yet
            return False
        verified = book.get("verified") or {}
        return verified.get("stage") == "steps" and verified.get("weight") == self.weight

    def run(self, stack: Stack) -> None:
        until(lambda: self.at_weight(stack), f"{self.canary} at {self.weight} %", 240)
        route = Route.of_model(self.canary, self.model)
        until(
            lambda: route_share(traefik_services(stack.gateway), route) == self.weight,
            f"Traefik running {self.canary} at {self.weight} %",
            120,
        )
        body = {"model": self.model, "prompt": "hello", "max_tokens": 12, "temperature": 0}
        for _ in range(40):
            request = urllib.request.Request(
                f"{self.url}/v1/completions",
                json.dumps(body).encode(),
                {"Content-Type": "application/json", "Host": self.host},
            )
            with urllib.request.urlopen(request, timeout=30) as reply:
                text = json.loads(reply.read())["choices"][0]["text"]
                self.got.append((reply.headers[VARIANT_HEADER], reply.headers[ENGINE_HEADER], text))


# make test-extended: the rendered --quantization=bitsandbytes (tests/serving/test_serving.py),
# the engine's NF4 answers (tests/local/test_serve_cli.py) and a real engine in the node's pods
# with the product's flags (tests/routing/test_real_vllm_canary.py) are held in make test
@pytest.mark.extended
@local_cpu(*STACK_MODULES)  # decided before the module's stack starts
def test_the_transformers_engine_serves_a_quantized_candidate_in_pods(stack: Stack) -> None:
    """Real CPU inference in the node's pods: both variants run ``--engine=transformers`` (the
    tiny random Llama), the candidate quantized to NF4 by bitsandbytes from the product's
    rendered ``--quantization=bitsandbytes``; promoted 50 -> 100 under load, judged on errors
    (its latency is the machine's load, not the engine's). At 50 %, greedy
    answers through the gateway name the transformers engine, each variant answers the same
    prompt the same way every time, and the two differ (the candidate's weights are 4-bit)."""
    engine = ["--engine=transformers"]
    spec = traffic_canary(
        "tiny", steps=((50, "60s"),), window="60s", min_samples=10, quantization="bitsandbytes-nf4"
    )
    spec["spec"]["stable"]["args"] = engine
    spec["spec"]["candidate"]["args"] = engine
    # judged on errors alone: the test is about what serves, and the absolute P95 bound judged
    # how busy the machine was (a loaded run read the candidate's at 4.4 s and rolled it back)
    for step in spec["spec"]["steps"]:
        step["rollbackOn"] = [c for c in step.get("rollbackOn", []) if c["metric"] != "latency"]
    probe = Probe(stack.gateway.url, "tiny.example.com", "tiny-llm", "tiny", 50)
    thread = threading.Thread(target=probe.run, args=(stack,), daemon=True)
    thread.start()
    loads, splits = roll_out(stack, {"tiny": spec}, {"tiny": "promoted"}, timeout=480)
    thread.join(timeout=60)

    got = report(stack, loads, splits)
    for row in got["tiny"]["phases"]:
        assert not row["failed"], row
    assert_split(got["tiny"]["phases"])
    steps = [h["weight"] for h in status(stack, "tiny")["history"] if h["type"] != "RolledBack"]
    assert steps[-1] == 100, status(stack, "tiny")["history"]
    assert len(probe.got) == 40, probe.got
    texts: dict[str, set[str]] = {}
    for variant, served_by, text in probe.got:
        assert served_by == "transformers", probe.got
        texts.setdefault(variant, set()).add(text)
    assert set(texts) == {STABLE, CANDIDATE}, probe.got
    assert all(len(seen) == 1 for seen in texts.values()), texts
    assert texts[STABLE] != texts[CANDIDATE], texts
