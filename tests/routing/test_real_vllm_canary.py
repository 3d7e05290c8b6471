"""Whole canaries whose pods run the real vLLM: KServe, the real node, Traefik, Prometheus.

The stack is :func:`support.real_traffic.real_stack`'s with ``engine="vllm"``: KServe v0.20.0's
pods run vLLM 0.32's OpenAI server from the CPU build ``make vllm`` installs, with exactly the
flags the product renders (:mod:`harness.node.serving`, :mod:`controlplane.local.vllm_engine`),
serving the tiny Llama of :mod:`harness.tiny_model`; Prometheus scrapes vLLM's own ``/metrics``
through the chart's PodMonitor, and the controller judges what vLLM wrote. OpenAI completions go
through Traefik at a fixed rate from the moment the stable answers until after the end.

- ``good``: the float32 stable taught its four sentences and its faithful W8A8-INT8 twin as
  the candidate (compressed-tensors, detected by vLLM from the checkpoint), with the quality
  judge (``spec.quality``: a quarter of each variant's requests through the pairer, the
  product's own image on the node, which sends each to both engines greedy and scores the
  answers): promoted 25 -> 100 once the judge has the evidence, with no request failed;
- ``broken``: the same with the twin's saved per-channel scales perturbed (what a wrong
  calibration does): healthy by every HTTP figure, rolled back by the quality judge; both
  replayed by ``canaryctl simulate --pairs`` against the pages the test recorded from the
  pairer, to the same end;
- the other tests' candidate is the stable's own float32 weights under a name of its own
  (:data:`COPY`), so that the fault a test makes is the only difference the judge can see;
- ``throttled``: once its step has started, the candidate's container gets a tenth of a CPU
  (its cgroup's CFS quota, as a noisy neighbour or a throttled node gives it): vLLM itself
  measures its requests slower, and the controller rolls it back on the P95 latency it read
  from vLLM's histogram against the stable's (``compare: baseline``), with no request failed;
- ``killed``: the candidate's engine core process is killed (SIGKILL, as the kernel's OOM killer
  ends it) each time it comes up once its step has started: vLLM's API server answers the
  requests it holds with errors and exits, the container restarts, and the controller, reading
  the candidate not ready for two analysis intervals while it takes traffic, rolls it back
  (``not-ready``); after the rollback no request fails. Marked ``extended`` (``make
  test-extended``, not ``make test``): the product's path is the simulated engine's crash in
  ``test_real_rollout.py``.

Which faults are real: both are. The kill is a real signal to vLLM's real engine process (what
vLLM and the kubelet do next is theirs); the throttle is the kernel's CFS bandwidth control on
the container's real cgroup, and the latency is what vLLM measured. Nothing in the engine is
injected. A network delay (``tc qdisc ... netem``) is not possible here: this machine's kernel
has no ``netem`` queueing discipline ("Specified qdisc kind is unknown"); and vLLM's histograms
would not see it, only a gateway's would. The answers per phase (sent, failed, by code) are
written as ``real-vllm-<canary>.json`` where ``CONTROLPLANE_TRAFFIC_REPORT`` says, and the run
prints them at its end (:mod:`support.traffic_summary`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import conversations
from support.extras import vllm_cpu
from support.real_serving import traffic_canary
from support.real_traffic import (
    SERVING,
    Controller,
    Load,
    Route,
    Splits,
    Stack,
    assert_ended,
    finished,
    prepare,
    report,
    run_loads,
    serving_stack,
    status,
    write_report,
)
from support.realnode import MARKS, until
from support.shared_stack import module_namespaces
from support.traffic_report import phases

from bench.quality_real import prompts
from controlplane.promql.contract import ENGINE_LABELS, RUNNING, WAITING, contract_for
from controlplane.promql.http_errors import VLLM_HTTP_REQUESTS
from controlplane.routing.sessions import BUCKETS, candidate_buckets
from controlplane.serving.object_names import predictor_service, variant_service_name
from controlplane.serving.pairer import PORTS, pairer_name
from controlplane.serving.render import LABEL_ROLE
from controlplane.spec.constants import LABEL_VARIANT
from controlplane.spec.models import ModelCanary
from controlplane.spec.units import time_value
from harness.node.node import RUN_DIR
from harness.node.serving import write_model
from harness.vllm_cpu import VERSION as VLLM_VERSION

pytestmark = [*MARKS, vllm_cpu(), pytest.mark.shared_stack(SERVING)]

MODEL = "llama-tiny-vllm"
"""Its own folder on the node: the simulated engine's tests write ``config.json`` alone."""
STABLE = "fp32"
TWIN = "w8a8"
"""The healthy test's candidate: the stable's W8A8-INT8 twin, judged on errors alone.

On these two shared cores vLLM 0.32's int8 kernel stalls for seconds now and then where the
float32 model does not: a canary of it here read the twin's P95 at 0.7 to 8.4 s over 30 s
windows while the stable's stayed at 0.3 to 0.47 s (and a CI run's canary of it, judged on an
absolute 2.5 s, did not end promoted); on the host beside a two-process CPU hog, of 20
requests to the twin and 60 to the float32 model, the twin's slowest took 9.6 s, the float32
model's 0.08 s, their medians 0.03 and 0.04 s. A latency check of it would judge the
machine's load."""
COPY = "fp32-copy"
"""The other tests' candidate: the stable's float32 weights, copied to a folder of their own (a
candidate at the stable's own ``storageUri`` is a no-op rollout, promoted at once)."""
INT8_KERNEL = "CompressedTensorsW8A8Int8"
"""What vLLM 0.32's log names for the W8A8-INT8 linear method it loaded."""
BROKEN = "w8a8-broken"
"""The quality test's broken candidate: :data:`TWIN` with its saved per-channel scales each
multiplied by a seeded factor in [0.5, 1.5] (:mod:`harness.tiny_model`)."""
TRAINED = f"{MODEL}-trained"
"""The quality tests' models: the tiny Llama taught its four sentences and its twins, whose
greedy answers to the sentences' words a broken quantization changes (a random model's near-even
choices any rounding flips)."""
QUALITY = {"sample": "25%", "perMinute": 120, "metric": "agreement", "tolerance": 0.1}
"""The quality judge of those tests: a quarter of each variant's requests paired (1.5 a second
at the load's 6, under the cap of 2), a pass once the candidate's mean disagreement is shown
within 0.1 at alpha 0.05 (57 pairs at least: docs/benchmarks.md, "Quality judge on the real
vLLM"), a breach once it is shown above."""
PAIRED_WAIT_S = 120.0
"""How long a request of the quality tests may wait for its answer, a bound on a hang only: a
paired request holds its client until both variants have answered, and a loaded machine slows
both. The engines run with ``torch.compile`` off (docs/judges.md, "What the engine's image
needs"): with it on, the first request for ``logprobs`` held both engines while vLLM compiled,
past this bound on a loaded CI machine."""
ENGINE_CORE = "VLLM::EngineCor"
"""vLLM's engine core process names itself ``VLLM::EngineCore``; ``comm`` keeps 15 bytes."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with serving_stack(tmp_path_factory, gpus=8, engine="vllm", controller_pod=True) as running:
        yield running


@pytest.fixture(autouse=True)
def leaves_the_node_free(stack: Stack) -> Iterator[None]:
    """Each test's namespaces deleted after it, its pods gone before the next test's engines
    start beside them."""
    with module_namespaces(stack.cluster):
        yield


AGAINST_STABLE = {"metric": "latency", "compare": "baseline", "above": "100%", "minSamples": 20}
"""The candidate's P95 more than twice the stable's. The absolute 2.5 s alone promoted the
throttled candidate here: its requests of 8 tokens took 0.5 to 2 s, the stable's under 0.3 s."""


def vllm_canary(name: str, candidate: str = COPY, *checks: dict[str, Any]) -> dict[str, Any]:
    """:func:`traffic_canary` on the real tiny model: 25 % for 60 s, then 100 %; the stable the
    float32 model, the candidate :data:`COPY`, or :data:`TWIN` or :data:`BROKEN`
    (compressed-tensors, which vLLM detects from the checkpoint's ``quantization_config``:
    ``quantization: none`` renders no flag) of the :data:`TRAINED` model, judged by
    :data:`QUALITY` too; judged on errors under 2 % and, but for a twin, P95 latency under
    2.5 s, and ``checks`` besides."""
    spec = traffic_canary(name, steps=((25, "60s"),), last_checks=checks)
    twin = candidate in (TWIN, BROKEN)
    stable = write_model(TRAINED if twin else MODEL, engine="vllm", trained=twin)
    spec["spec"]["stable"].update(storageUri=stable, name=STABLE)
    uri = (
        write_model(f"{TRAINED}-{candidate}", engine="vllm", quantized=candidate, trained=True)
        if twin
        else write_model(f"{MODEL}-{COPY}", engine="vllm")  # at its own path: not a no-op
    )
    spec["spec"]["candidate"].update(storageUri=uri, name=candidate, quantization="none")
    if twin:
        spec["spec"]["quality"] = QUALITY
        for step in spec["spec"]["steps"]:
            step["rollbackOn"] = [c for c in step.get("rollbackOn", []) if c["metric"] != "latency"]
    return spec


def engine_logs(pod: dict[str, Any]) -> list[str]:
    """What ``pod``'s engine container wrote, each run's log (the first, then each restart's),
    from the node's pod logs."""
    meta = pod["metadata"]
    folder = RUN_DIR / "pod-logs" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
    logs = sorted((folder / "kserve-container").glob("*.log"), key=lambda p: int(p.stem))
    return [path.read_text(errors="replace") for path in logs]


def engine_log(pod: dict[str, Any]) -> str:
    """Every run's log of ``pod``'s engine container, one after another."""
    return "".join(engine_logs(pod))


def prometheus(stack: Stack, query: str) -> list[dict[str, Any]]:
    url = f"{stack.prometheus}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        result: list[dict[str, Any]] = json.loads(answer.read())["data"]["result"]
    return result


def served_by_variant(stack: Stack, name: str) -> dict[str, float]:
    """Requests vLLM itself counts as finished, per variant (the PodMonitor's labels)."""
    rows = prometheus(stack, f'sum by (variant) (vllm:request_success_total{{namespace="{name}"}})')
    return {row["metric"]["variant"]: float(row["value"][1]) for row in rows}


SCRAPE_LABELS = ("namespace", "canary", "variant")
"""What the chart's PodMonitor adds to every series from the pod's namespace and labels."""


def contract_problems(stack: Stack, name: str, names: tuple[str, str]) -> list[str]:
    """What Prometheus, scraping vLLM 0.32 through the chart's PodMonitor, holds against the
    contract the product reads for ``name``'s two variants (``names``): every built-in's series
    (their last sample in 15 minutes, so after the pods are gone too), its labels (vLLM's and the
    scrape's) and a histogram's buckets; the queue and running gauges; and the ``vllm-http``
    source's ``http_requests_total`` for the completions handler. Empty: all there."""
    contract = contract_for(VLLM_VERSION)
    wanted: dict[str, tuple[str, ...]] = {
        m.series: (*m.labels, *(("le",) if m.type == "histogram" else ()))
        for m in contract.metrics.values()
    }
    wanted |= {WAITING: ENGINE_LABELS, RUNNING: ENGINE_LABELS}
    wanted[VLLM_HTTP_REQUESTS] = ("handler", "method", "status")
    problems = []
    for series, labels in wanted.items():
        rows = prometheus(stack, f'last_over_time({{__name__="{series}",namespace="{name}"}}[15m])')
        variants = {row["metric"].get("variant") for row in rows}
        if variants != set(names):
            problems.append(f"{series}: variants {sorted(map(str, variants))}")
            continue
        for row in rows:
            missing = {*labels, *SCRAPE_LABELS} - set(row["metric"])
            if missing:
                problems.append(f"{series}: {row['metric']} lacks {sorted(missing)}")
                break
        problems += [
            f"{metric.builtin} of {variant}: buckets {sorted(bounds)}"
            for metric in contract.metrics.values()
            if metric.series == series and metric.type == "histogram"
            for variant in names
            if (
                bounds := {
                    float(row["metric"]["le"])
                    for row in rows
                    if row["metric"].get("variant") == variant
                }
            )
            != {*metric.buckets, float("inf")}
        ]
        if series == VLLM_HTTP_REQUESTS and not any(
            row["metric"].get("handler") == "/v1/completions" for row in rows
        ):
            problems.append(f"{series}: no /v1/completions handler")
    return problems


def pods(stack: Stack, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = stack.cluster.request("GET", f"/api/v1/namespaces/{name}/pods")[
        "items"
    ]
    return found


def engine_cores(pod: dict[str, Any]) -> list[int]:
    """The host pids of ``pod``'s processes named as vLLM's engine core (its cgroup names the
    pod's UID)."""
    uid = pod["metadata"]["uid"]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cgroup = (entry / "cgroup").read_text()
        except OSError:  # gone meanwhile
            continue
        if comm == ENGINE_CORE and f"pod{uid}" in cgroup:
            found.append(int(entry.name))
    return found


def engine_report(stack: Stack, name: str, lines: int = 30) -> str:
    """Each of ``name``'s pods as the kubelet reports it (phase, each container's restarts and
    state), then for each run of its engine the lines that name an error and the last
    ``lines`` lines of its log: what explains a candidate that did not start in time, or an
    engine that died."""
    out = []
    for pod in pods(stack, name):
        status = pod.get("status") or {}
        states = [
            f"{c['name']}: {c.get('restartCount', 0)} restarts, {sorted(c.get('state') or {})}"
            for c in status.get("containerStatuses") or []
        ]
        out.append(f"--- pod {pod['metadata']['name']} {status.get('phase')} {states}")
        for number, log in enumerate(engine_logs(pod)):
            said = log.splitlines()
            raised = list(
                dict.fromkeys(line.split("] ", 1)[-1] for line in said if "Error: " in line)
            )
            out.append(f"--- run {number}: the errors it raised ({len(raised)}), the first 10:")
            out.extend([*raised[:10], f"--- run {number}: its last {lines} lines:"])
            out.extend(said[-lines:])
    return "\n".join(out)


def why(stack: Stack, name: str) -> str:
    """One line on how ``name`` went, for an assertion's message (the end of a CI log shows
    it): each history entry's type and message, then each candidate pod's readiness and the
    last lines of its engine's log."""
    history = [f"{h['type']}: {h.get('message', '')}" for h in status(stack, name)["history"]]
    out = [" | ".join(history)]
    for pod in candidate_pods(stack, name):
        got = (pod.get("status") or {}).get("conditions") or []
        conditions = {c.get("type"): c.get("status") for c in got}
        tail = engine_log(pod).splitlines()[-3:]
        out.append(f"candidate pod Ready={conditions.get('Ready')}, its log ends: {tail}")
    return " || ".join(out)


def variant_pods(stack: Stack, name: str, variant: str) -> list[dict[str, Any]]:
    return [p for p in pods(stack, name) if p["metadata"]["labels"].get(LABEL_VARIANT) == variant]


def candidate_pods(stack: Stack, name: str) -> list[dict[str, Any]]:
    return [p for p in pods(stack, name) if p["metadata"]["labels"].get(LABEL_ROLE) == "candidate"]


def each_engine_core_while_stepping(
    stack: Stack, name: str, stop: threading.Event, fault: Callable[[int], None]
) -> None:
    """Once ``name``'s first step has started, call ``fault`` with the pid of every engine core
    of its candidate's pods, looking again every half second (a restarted one included) until
    ``stop`` is set."""
    while not stop.is_set():  # set by run() however the canary ends: no deadline needed
        if any(h["type"] == "StepStarted" for h in status(stack, name).get("history", [])):
            break
        stop.wait(1.0)
    while not stop.is_set():
        for pod in candidate_pods(stack, name):
            for pid in engine_cores(pod):
                fault(pid)
        stop.wait(0.5)


DEADLINE = "600s"
"""The controller's progress deadline, which no test here reaches: it only bounds a candidate's
start. vLLM loads in about 100 s here, three to over five minutes while two engines start on two
cores with other work beside them (a full ``make test`` with a browser test run beside it saw a
candidate not Ready after 300 s); the killed candidate is rolled back by the two analysis
intervals it may stay not ready while it takes traffic, not by this."""


RUN_S = 720
"""How long a canary here may take to end: past the progress deadline, and inside the test's
900 s timeout so that the run's own message (the canary's history, the controller's last
lines) is what a hang reports."""


def record_pairs(stack: Stack, spec: dict[str, Any], into: Path, stop: threading.Event) -> None:
    """Append every page of scored pairs that ``spec``'s pairer answers to ``into``, one JSON
    page a line, read as docs/judges.md ("Replaying recorded pairs") tells a user to (through
    the API server's Service proxy, from ``after=0`` on), every 2 s until ``stop`` is set."""
    canary = ModelCanary.model_validate(spec)
    namespace, pairer = canary.metadata.namespace, pairer_name(canary)
    path = f"/api/v1/namespaces/{namespace}/services/{pairer}:{PORTS['stable']}/proxy/pairs"
    after = 0
    while not stop.wait(2.0):
        try:
            page = stack.cluster.request("GET", f"{path}?after={after}")
        except (urllib.error.URLError, OSError, ValueError):
            continue  # not up yet, or gone after the end
        if page.get("pairs"):
            with into.open("a", encoding="utf-8") as out:
                out.write(json.dumps(page) + "\n")
            after = int(page["pairs"][-1]["seq"])


def run(
    stack: Stack,
    name: str,
    end: str,
    during: Callable[[threading.Event], None] | None = None,
    candidate: str = COPY,
    checks: tuple[dict[str, Any], ...] = (),
    pairs: Path | None = None,
) -> tuple[Load, dict[str, Any]]:
    """Apply ``name``'s canary (``candidate`` its candidate, with ``checks`` besides the usual)
    with the controller running and its host under load until the canary has ended, which must
    be ``end``; ``during`` runs beside the load until told to stop; with ``pairs``, the load's
    prompts the trained model's words and the pairer's pages recorded there
    (:func:`record_pairs`). The load and the report; the canary's namespace is deleted after
    the test (:func:`leaves_the_node_free`)."""
    spec = vllm_canary(name, candidate, *checks)
    prepare(stack, (name,))
    image = f"--pairer-image={stack.controller_image}"
    controller = Controller(stack, (name,), (f"--progress-deadline={DEADLINE}", image))
    words = prompts(seed=1) if pairs is not None else None
    wait = PAIRED_WAIT_S if pairs is not None else 30.0
    load = Load(stack.gateway.url, f"{name}.example.com", f"{name}-llm", words, wait)
    services = (
        predictor_service(variant_service_name(f"{name}-llm", v)) for v in (STABLE, candidate)
    )
    splits = Splits(stack.gateway, {name: Route.of(name, *services)})
    stop = threading.Event()
    helper = threading.Thread(target=during, args=(stop,), daemon=True) if during else None
    recorder = (
        threading.Thread(target=record_pairs, args=(stack, spec, pairs, stop), daemon=True)
        if pairs is not None
        else None
    )
    controller.start()
    try:
        stack.kube.apply(spec, field_manager="test")
        for thread in (helper, recorder):
            if thread:
                thread.start()
        with splits.looking():
            try:
                run_loads(stack, {name: load}, lambda: finished(stack, (name,)), RUN_S)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {why(stack, name)}\n{controller.tail()}") from None
        assert_ended(stack, {name: end})
    finally:
        stop.set()
        for thread in (helper, recorder):
            if thread:
                thread.join(timeout=30)
        controller.stop()
        print(engine_report(stack, name))  # shown when the test fails: why an engine was slow
    got = report(stack, {name: load}, splits)
    ends = [p for p in phases(status(stack, name)["history"], 0.0, time.time()) if p.weight is None]
    settled = [span for p in ends for span in splits.in_effect(name)(p)]
    got[name]["failed once the gateway ran the end"] = sum(
        1 for a in load.answers if a.failed and any(lo <= a.sent < hi for lo, hi in settled)
    )
    got[name]["answered once the gateway ran the end"] = sum(
        1 for a in load.answers if any(lo <= a.sent < hi for lo, hi in settled)
    )
    got[name]["served by vLLM"] = served_by_variant(stack, name)
    print(json.dumps(got, indent=1))
    write_report(f"real-vllm-{name}", got)
    return load, got[name]


def replayed(stack: Stack, name: str, candidate: str, pairs: Path) -> dict[str, Any]:
    """``canaryctl simulate -o json`` of ``name``'s canary against the stack's Prometheus from
    the start of its first step, with the pairer's pages recorded in ``pairs``: what a user
    replaying the live run gets."""
    spec = pairs.with_suffix(".yml")
    spec.write_text(yaml.safe_dump(vllm_canary(name, candidate)))
    started = next(h for h in status(stack, name)["history"] if h["type"] == "StepStarted")
    argv = [str(Path(sys.executable).with_name("canaryctl")), "simulate", str(spec)]
    argv += ["--prometheus", stack.prometheus, "--start", str(started["time"])]
    argv += ["--pairs", str(pairs), "-o", "json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode in (0, 5), done.stderr  # 5: a replay that rolls back
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_faithful_quantization_on_the_real_vllm_is_promoted_by_the_quality_judge(
    stack: Stack, tmp_path: Path
) -> None:
    name = "vllm-good"
    seen: dict[str, list[int]] = {}
    pods_seen: dict[str, dict[str, Any]] = {}

    def look_at_the_engines(stop: threading.Event) -> None:
        until(lambda: len(variant_pods(stack, name, TWIN)) == 1, "the candidate's pod", 300)
        for variant in (STABLE, TWIN):
            (pod,) = variant_pods(stack, name, variant)
            pods_seen[variant] = pod
            seen[variant] = until(lambda p=pod: engine_cores(p), f"{variant}'s engine core", 300)

    pairs = tmp_path / "pairs.jsonl"
    load, got = run(stack, name, "promoted", look_at_the_engines, TWIN, pairs=pairs)
    final = status(stack, name)
    weights = [h.get("weight") for h in final["history"] if h["type"] == "StepStarted"]
    assert weights == [25], final["history"]
    assert final["history"][-1]["type"] == "Promoted", final["history"]
    # promoted on the judge's evidence: the pairer's pairs showed the twin within tolerance
    quality = final["quality"]
    assert quality["decided"] == "pass", quality
    assert quality["pairs"] > 0, quality
    assert quality["total"] / quality["pairs"] < QUALITY["tolerance"], quality
    # and a replay of what the pairer answered reaches the same end
    replay = replayed(stack, name, TWIN, pairs)
    assert replay["outcome"] == "promoted", replay["why"]
    assert replay["quality"]["decided"] == "pass", replay["quality"]
    # each variant's pod ran vLLM's own engine process, and vLLM counted what each served
    assert set(seen) == {STABLE, TWIN}, seen
    assert all(seen.values()), seen
    assert got["served by vLLM"].get(STABLE, 0) > 0, got
    assert got["served by vLLM"].get(TWIN, 0) > 0, got
    # the candidate's engine served the int8 twin; the stable's, the float32 weights
    assert INT8_KERNEL in engine_log(pods_seen[TWIN])
    assert INT8_KERNEL not in engine_log(pods_seen[STABLE])
    failed = [a for a in load.answers if a.failed]
    assert not failed, (failed[:10], got["phases"])
    assert len(load.answers) == load.sent
    # what the judge read is vLLM's own, through the chart's PodMonitor, as the contract says
    assert contract_problems(stack, name, (STABLE, TWIN)) == []


def test_a_broken_quantization_on_the_real_vllm_is_rolled_back_by_the_quality_judge(
    stack: Stack, tmp_path: Path
) -> None:
    name = "vllm-broken"
    pairs = tmp_path / "pairs.jsonl"
    load, got = run(stack, name, "rolled_back", candidate=BROKEN, pairs=pairs)
    final = status(stack, name)
    # healthy by every HTTP figure: no request failed, and the judge that caught it is quality's
    failed = [a for a in load.answers if a.failed]
    assert not failed, (failed[:10], got["phases"])
    assert final["reason"]["kind"] == "quality", final["reason"]
    quality = final["quality"]
    assert quality["decided"] == "breach", quality
    assert quality["total"] / quality["pairs"] > QUALITY["tolerance"], quality
    # a replay of what the pairer answered rolls back on the same judge
    replay = replayed(stack, name, BROKEN, pairs)
    assert replay["outcome"] == "rolled_back", replay["why"]
    assert replay["reason"]["kind"] == "quality", replay["reason"]
    assert replay["quality"]["decided"] == "breach", replay["quality"]


QUOTA_US = 10_000
"""The throttled candidate's CFS quota: 10 ms of CPU per 100 ms period, a tenth of a CPU (its
limit is 2 CPUs: 200,000)."""

CPU_CGROUPS = Path("/sys/fs/cgroup/cpu")
"""Where the cgroup v1 ``cpu`` controller is mounted on this machine (the real node's kubelet
and containerd use the same hierarchy)."""


def cpu_cgroup(pid: int) -> Path | None:
    """The cgroup v1 ``cpu`` folder of process ``pid`` (its container's), or None once it is
    gone or where the controller is not mounted."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            folder = CPU_CGROUPS / path.lstrip("/")
            return folder if (folder / "cpu.cfs_quota_us").exists() else None
    return None


@pytest.mark.extended  # the product's path is the slow candidate's in test_real_rollout.py
def test_a_candidate_throttled_to_a_tenth_of_a_cpu_is_rolled_back_on_latency(
    stack: Stack,
) -> None:
    name = "vllm-throttled"
    throttled: dict[Path, str] = {}

    def throttle(pid: int) -> None:
        folder = cpu_cgroup(pid)
        if folder is None:
            return
        quota = folder / "cpu.cfs_quota_us"
        before = quota.read_text().strip()
        if before != str(QUOTA_US):
            throttled.setdefault(folder, before)
            quota.write_text(str(QUOTA_US))

    def throttle_while_stepping(stop: threading.Event) -> None:
        each_engine_core_while_stepping(stack, name, stop, throttle)
        # the fault ends with the test: a pod still stopping does so at its own speed, and the
        # next test's engines start beside it
        for folder, before in throttled.items():
            with contextlib.suppress(OSError):  # the container is gone already
                (folder / "cpu.cfs_quota_us").write_text(before)

    load, got = run(stack, name, "rolled_back", throttle_while_stepping, checks=(AGAINST_STABLE,))
    final = status(stack, name)
    assert throttled, f"the candidate's container was never throttled: {why(stack, name)}"
    # it had its limit's quota before (2 CPUs), never already a tenth
    assert set(throttled.values()) == {"200000"}, throttled
    rolled = [h for h in final["history"] if h["type"] == "RolledBack"]
    assert rolled, final["history"]
    assert "latency" in rolled[0]["message"], rolled
    assert "not ready" not in rolled[0]["message"], rolled
    # vLLM served the candidate's share before and while it was slow, and nothing failed
    assert got["served by vLLM"].get(COPY, 0) > 0, got
    failed = [a for a in load.answers if a.failed]
    assert not failed, (failed[:10], got["phases"])
    assert len(load.answers) == load.sent


@pytest.mark.extended  # the product's path is faults[crash]'s in test_real_rollout.py
def test_a_candidate_whose_engine_keeps_dying_is_rolled_back_and_nothing_fails_after(
    stack: Stack,
) -> None:
    name = "vllm-killed"
    killed: list[int] = []

    def kill(pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    def kill_while_stepping(stop: threading.Event) -> None:
        each_engine_core_while_stepping(stack, name, stop, kill)

    load, got = run(stack, name, "rolled_back", kill_while_stepping)
    final = status(stack, name)
    assert killed, f"the engine core was never killed: {why(stack, name)}"
    rolled = [h for h in final["history"] if h["type"] == "RolledBack"]
    assert rolled, final["history"]
    # two analysis intervals (10 s each), not the 5-minute deadline: it took 25 % meanwhile
    assert "was not ready for 20s (2 analysis intervals)" in rolled[0]["message"], rolled
    assert "while it took 25% of the traffic" in rolled[0]["message"], rolled
    rows = {row["phase"]: row for row in got["phases"]}
    assert not rows["pending"]["failed"], rows["pending"]
    # none failed once Traefik ran the stable alone (a request sent between the rollback and
    # Traefik taking it up met the empty candidate: its 503)
    assert got["answered once the gateway ran the end"] > 0, got
    assert got["failed once the gateway ran the end"] == 0, got
    assert len(load.answers) == load.sent


SESSION_STEPS = ((25, "60s"), (50, "120s"))
"""25 % for a minute, then 50 % for two: conversations pinned for the first half of the 50 %
step, split per request for the second, the same engines under the same load. Each half's hit
rates are read over 35 s of it (20 s after it began to 5 s before it ended): about 35
conversations of 4 turns, so that a hop's miss shows in each variant's rate."""
PER_REQUEST_AFTER_S = 60.0
SETTLE_S = 5.0
"""Seconds the gateway may take to run a new weight; sessions begun sooner are not counted."""


def phase_rates(stack: Stack, name: str, start: float, end: float) -> dict[str, dict[str, float]]:
    """Per variant, over ``[start, end]`` as vLLM counted it: the share of prompt tokens its
    prefix cache held, and its mean time to first token."""
    span = f"[{max(1, int(end - start))}s] @ {end:.3f}"

    def per_variant(expr: str) -> dict[str, float]:
        rows = prometheus(stack, f"sum by (variant) ({expr})")
        return {row["metric"]["variant"]: float(row["value"][1]) for row in rows}

    where = f'{{namespace="{name}"}}'
    hits = per_variant(f"increase(vllm:prefix_cache_hits_total{where}{span})")
    queries = per_variant(f"increase(vllm:prefix_cache_queries_total{where}{span})")
    ttft_sum = per_variant(f"increase(vllm:time_to_first_token_seconds_sum{where}{span})")
    ttft_count = per_variant(f"increase(vllm:time_to_first_token_seconds_count{where}{span})")
    return {
        variant: {
            "prefix cache hit rate": round(hits.get(variant, 0.0) / queries[variant], 3),
            "mean TTFT ms": round(1000 * ttft_sum.get(variant, 0.0) / ttft_count[variant], 2),
            "requests": round(ttft_count[variant]),
        }
        for variant in (STABLE, COPY)
        if queries.get(variant) and ttft_count.get(variant)
    }


def test_conversations_stay_on_one_variant_and_keep_their_prefix_cache(stack: Stack) -> None:
    """``traffic.session`` on the real Traefik and the real vLLM with its prefix cache on.

    Conversations of :data:`conversations.TURNS` turns start every second through the gateway
    (:class:`support.conversations.Conversations`). Pinned: no conversation is served by the
    stable after the candidate, nor moves twice; the candidate's share of new conversations at
    each weight is within a two-sided 0.1 % binomial bound of its share of the 256 buckets; at
    0 % none. A pinned turn's variant is the one its answer names (the session rules'
    ``x-canary-variant``; Traefik sets no header on the split rule's answers). Halfway through
    the 50 % step the conversations stop sending their key and are split per request: on each
    variant the share of prompt tokens vLLM's prefix cache held is then lower than while they
    were pinned (a turn that hops lands on an engine that has not seen the conversation). Both
    halves' hit rates and mean TTFT (vLLM's own) are printed and written as
    ``real-vllm-sessions.json``."""
    name = "sessions"
    spec = vllm_canary(name)
    # the candidate is the stable's own weights: this test is about where requests go, and an
    # absolute latency bound would judge how busy the machine is (the errors check stays)
    checks = [c for c in spec["spec"]["steps"][0]["rollbackOn"] if c["metric"] != "latency"]
    spec["spec"]["steps"] = [
        *({"weight": w, "duration": d, "rollbackOn": checks} for w, d in SESSION_STEPS),
        {"weight": 100},
    ]
    spec["spec"]["traffic"]["session"] = {"header": conversations.HEADER, "turns": 4}
    prepare(stack, (name,))
    controller = Controller(stack, (name,), (f"--progress-deadline={DEADLINE}",))
    seen: dict[str, Any] = {"status": {}}

    def changes() -> list[tuple[float, int]]:
        history = seen["status"].get("history", [])
        return [
            (time_value(h["time"]), 100 if h["type"] == "Promoted" else int(h["weight"]))
            for h in history
            if h["type"] in ("StepStarted", "Advanced", "Promoted")
        ]

    def mode() -> str | None:
        state = seen["status"]
        if state.get("phase") in ("promoted", "rolled_back"):
            return None
        fifty = [at for at, weight in changes() if weight == 50]
        if fifty and time.time() >= fifty[0] + PER_REQUEST_AFTER_S:
            return "per-request"
        return "sticky"

    load = conversations.Conversations(
        stack.gateway.url, f"{name}.example.com", f"{name}-llm", mode
    )
    controller.start()
    thread = threading.Thread(target=load.run, daemon=True)
    try:
        stack.kube.apply(spec, field_manager="test")
        probe = Load(stack.gateway.url, f"{name}.example.com", f"{name}-llm")
        until(lambda: probe.one().code == 200, "the stable answering through the gateway", 600)
        begun = time.time()
        thread.start()

        def finished() -> bool:
            seen["status"] = status(stack, name)
            return seen["status"].get("phase") in ("promoted", "rolled_back")

        until(finished, "the canary finished", 900)
        history = seen["status"].get("history", [])
        assert seen["status"]["phase"] == "promoted", f"{why(stack, name)}\n{history}"
        ended = min(at for at, weight in changes() if weight == 100)

        def scraped_since() -> bool:  # both engines' counters read after the 50 % step ended
            query = f'timestamp(vllm:prefix_cache_queries_total{{namespace="{name}"}})'
            rows = prometheus(stack, f"min({query})")
            return bool(rows) and float(rows[0]["value"][1]) >= ended - 5.0

        until(scraped_since, "a scrape of both engines after the 50 % step", 120)
    finally:
        load.finish()
        controller.stop()
        print(engine_report(stack, name))
    final = status(stack, name)
    assert final["phase"] == "promoted", final.get("history")
    turns = load.turns
    failed = [t for t in turns if t.failed]
    assert not failed, failed[:5]
    sessions = conversations.by_session(turns)
    pinned = {k: s for k, s in sessions.items() if s[0].sticky}
    hopping = {k: s for k, s in sessions.items() if not s[0].sticky}
    wrong = {k: s for k, s in pinned.items() if conversations.moved_wrongly(s, STABLE, COPY)}
    assert not wrong, list(wrong.values())[:3]
    served = [t.variant for s in pinned.values() for t in s]
    assert served.count(None) < len(served) / 2, "the session rules named no variant"
    marks = [(begun, 0), *changes()]
    shares = conversations.new_sessions(turns, marks, COPY, SETTLE_S)
    for weight, (n, k) in sorted(shares.items()):
        held = len(candidate_buckets(weight)) / BUCKETS
        assert conversations.within_binomial(n, k, held), (weight, n, k, held)
    assert {25, 50} <= set(shares), shares
    assert all(n >= 20 for w, (n, _) in shares.items() if w in (25, 50)), shares
    fifty = next(at for at, weight in marks if weight == 50)
    promoted = next(at for at, weight in marks if weight == 100)
    switch = fifty + PER_REQUEST_AFTER_S
    rates = {
        "pinned": phase_rates(stack, name, fifty + 20.0, switch - 5.0),
        "per request": phase_rates(stack, name, switch + 20.0, promoted - 5.0),
    }
    got = {
        "conversations": {"pinned": len(pinned), "per request": len(hopping)},
        "new pinned conversations on the candidate, by weight": {
            str(w): f"{k} of {n}" for w, (n, k) in sorted(shares.items())
        },
        "at 50%, by variant": rates,
    }
    print(json.dumps(got, indent=1))
    write_report(f"real-vllm-{name}", got)
    for variant in (STABLE, COPY):
        hit = {how: rates[how][variant]["prefix cache hit rate"] for how in rates}
        assert hit["pinned"] > hit["per request"], (variant, rates)
