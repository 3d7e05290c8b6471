"""A ``kserve``-router promotion on real traffic: KServe rolls the stable pods under load (#35).

The ``kserve`` router keeps both variants in one InferenceService: the stable as
``spec.predictor``, the candidate as a ``spec.canary`` entry. KServe v0.20.0 routes nothing to
a canary entry (docs/routing.md, "KServe as observed"), so the step's weights are never in
effect and no analysis runs; a person who has judged the candidate otherwise promotes it by
hand (``kubectl canary promote --full``). For an FP8 candidate of the same checkpoint that promotion
has two phases: ``spec.predictor`` takes the candidate's spec while the canary entry stays, and
KServe rolls the stable Deployment's pods to it, with every user request still going to the
stable predictor Service through KServe's own HTTPRoute; then the entry is dropped
(:func:`controlplane.routing.kserve.promotion_phase`).

The stack is :func:`support.real_traffic.real_stack`'s (KServe v0.20.0 serving the engine image
on the real node, Traefik v3.6.12 reading KServe's HTTPRoute, Prometheus) with ``canaryctl
controller`` out of cluster on the chart's ServiceAccount token. OpenAI completions go at 6 per
second to the InferenceService's own host (the one KServe's route names) from the moment the
stable answers until 25 s after the promotion was put in effect and the old stable released.

What must hold: every request is answered; none fails, before, during or after the rolling of
the stable pods: the Deployment's rolling update keeps a Ready pod, Traefik drops a deleted
pod's address once its endpoint is not ready, and the engine container's ``preStop`` sleep
(:data:`controlplane.serving.render.DRAIN_S`) keeps that pod serving meanwhile. Without it, a
run failed 7 of 300 requests here: 2 x 502 from the engine stopped by SIGTERM while Traefik still
listed it, 5 x 504 after Traefik's 30 s dial timeout to the address of the pod already gone. Only
the stable answers until the promotion, the candidate's spec on the stable predictor's pods
after it. With
``CONTROLPLANE_TRAFFIC_REPORT`` set, the phases are written as ``kserve-promotion.json``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.real_serving import traffic_canary
from support.real_traffic import (
    CANDIDATE,
    SERVING,
    STABLE,
    Controller,
    Load,
    Stack,
    pod_ready,
    prepare,
    report,
    run_loads,
    serving_stack,
    status,
    write_report,
)
from support.realnode import MARKS, until

from controlplane.errors import NotFound
from controlplane.kube.client import Ref
from controlplane.operations import record_intent
from controlplane.serving.object_names import single_service_name
from controlplane.spec.units import time_value

pytestmark = [*MARKS, pytest.mark.shared_stack(SERVING)]

NAME = "roll"
MODEL = f"{NAME}-llm"
GPUS = 4
"""The stable's pod, the canary entry's, and the two the stable asks for while it rolls (KServe
lowers the stable's minimum by the canary's replicas, so the product asks for one more)."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with serving_stack(tmp_path_factory, gpus=GPUS) as running:
        yield running


def route_host(stack: Stack) -> str:
    """The host KServe v0.20.0's top-level HTTPRoute of the InferenceService serves."""
    ref = Ref("gateway.networking.k8s.io/v1", "HTTPRoute", NAME, single_service_name(MODEL))
    route = until(lambda: _get(stack, ref), "KServe's HTTPRoute of the InferenceService", 240)
    hosts: list[str] = route["spec"].get("hostnames") or []
    assert hosts, route["spec"]
    return hosts[0]


def _get(stack: Stack, ref: Ref) -> dict[str, Any] | None:
    try:
        return stack.kube.get(ref)
    except NotFound:  # not created yet
        return None


def diagnosis(stack: Stack) -> str:
    """What a person would look at when the promotion did not finish: the canary's status,
    the InferenceService's predictor and canary entries, the pods, the controller's log."""
    got = status(stack, NAME)
    isvc = _get(stack, Ref("serving.kserve.io/v1beta1", "InferenceService", NAME, MODEL)) or {}
    pods = stack.cluster.request("GET", f"/api/v1/namespaces/{NAME}/pods")["items"]
    events = stack.cluster.request("GET", f"/api/v1/namespaces/{NAME}/events")["items"]
    log = (stack.cluster.workdir / "controller.log").read_text(errors="replace")
    return "\n".join(
        [
            f"status: { {k: got.get(k) for k in ('phase', 'history', 'conditions')} }",
            f"book: {got.get('controller')}",
            f"predictor: {(isvc.get('spec') or {}).get('predictor')}",
            f"canary: {(isvc.get('spec') or {}).get('canary')}",
            f"isvc status: {isvc.get('status')}",
            "pods: "
            + "; ".join(
                f"{p['metadata']['name']} {p['status'].get('phase')} ready={pod_ready(p)}"
                for p in pods
            ),
            "events: " + "; ".join(f"{e['reason']}: {e['message'][:200]}" for e in events[-25:]),
            "controller log: " + log[-4000:],
        ]
    )


def history_kinds(stack: Stack) -> list[str]:
    return [h["type"] for h in status(stack, NAME).get("history", [])]


def test_a_kserve_router_promotion_rolls_the_stable_pods_without_failing_a_request(
    stack: Stack,
) -> None:
    spec = traffic_canary(NAME, steps=((25, "60s"),))
    spec["spec"]["traffic"] = {"router": "kserve"}
    prepare(stack, (NAME,))
    controller = Controller(stack, (NAME,))
    controller.start()
    try:
        stack.kube.apply(spec, field_manager="test")
        load = Load(stack.gateway.url, route_host(stack), MODEL)

        def promoted() -> bool:
            got = status(stack, NAME)
            book = got.get("controller") or {}
            return got.get("phase") == "promoted" and book.get("cleaned") is not None

        def answered() -> bool:
            return sum(1 for a in list(load.answers) if a.code == 200) >= 20

        def promote_once_stepping() -> None:
            """Promote in step 1 once the load has had answers: the load begins when the stable
            first answers through the gateway, which a loaded machine can reach after step 1
            began (the promotion then came before any request was sent)."""
            until(lambda: "StepStarted" in history_kinds(stack), "step 1 asked for", 300)
            until(answered, "20 answers under load before the promotion", 300)
            record_intent(stack.kube, NAME, NAME, "promote-full", "test")

        started = time.monotonic()
        promoter = threading.Thread(target=promote_once_stepping, daemon=True)
        promoter.start()
        try:
            run_loads(stack, {NAME: load}, promoted, timeout=420)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{diagnosis(stack)}") from None
        promoter.join(timeout=5)
        took = time.monotonic() - started
    finally:
        controller.stop()

    got = report(stack, {NAME: load})
    final = status(stack, NAME)
    got[NAME]["seconds"] = round(took, 1)
    got[NAME]["events"] = sorted(
        e["reason"]
        for e in stack.cluster.request("GET", f"/api/v1/namespaces/{NAME}/events")["items"]
    )
    write_report("kserve-promotion", got)

    kinds = [h["type"] for h in final["history"]]
    assert kinds == ["StepStarted", "Promoted"], final["history"]
    assert "by test" in final["history"][-1]["message"], final["history"]
    # every request answered, none failed: before, during and after KServe rolled the pods
    assert len(load.answers) == load.sent, (len(load.answers), load.sent)
    failed = [a for a in load.answers if a.failed]
    assert not failed, (failed[:20], got[NAME]["phases"])
    # KServe v0.20.0's route never sent the canary entry anything: until the promotion only
    # the stable answered; the stable predictor served the candidate once its pods rolled
    rows = {row["phase"]: row for row in got[NAME]["phases"]}
    promoted_at = time_value(final["history"][-1]["time"])
    before = {a.variant for a in load.answers if a.sent < promoted_at}
    assert before == {STABLE}, (before, rows)
    # once the old pods are gone from Traefik's endpoints only the candidate answers: how long
    # that takes after the finish is the machine's, so no window is assumed; the switch must
    # come while the load still runs (it runs 25 s past the finish) and hold for its last
    # 40 requests (about 7 s at 6 a second), which a mixed tail would fail
    finished = time_value(final["controller"]["finishedAt"])
    after = sorted((a for a in load.answers if a.sent > finished), key=lambda a: a.sent)
    last_stable = max((i for i, a in enumerate(after) if a.variant != CANDIDATE), default=-1)
    tail = after[last_stable + 1 :]
    assert len(tail) >= 40, ([(round(a.sent - finished, 1), a.variant) for a in after], rows)
    assert "FinalizePending" in got[NAME]["events"], got[NAME]["events"]
