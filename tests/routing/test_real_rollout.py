"""Whole canaries on real traffic: the controller, KServe, a real node, Traefik and Prometheus.

Everything runs for real on this machine: the loopback control plane with kube-controller-manager
and kube-scheduler, KServe v0.20.0 serving the product's InferenceServices as pods of the engine
image on the real node (:mod:`harness.node.serving`), Traefik v3.6.12 as the Gateway API data
plane, the Prometheus Operator configuring Prometheus from the chart's PodMonitor
(:mod:`harness.cluster.monitoring`), and ``canaryctl controller`` as a process out of cluster
on the token of the ServiceAccount that ``helm install`` of the chart creates, so with exactly
the chart's RBAC (issue #35's item 5: the controller's image is not built here). OpenAI
completions are sent through the gateway at a fixed rate, each canary on its own host
(``spec.traffic.hosts``), from the moment its stable variant answers through the gateway to after
its end; each answer is kept with the variant that served it (the
engine's ``x-canary-variant`` header) and counted per phase of the status history
(:mod:`support.traffic_report`).

The canaries, on the GPUs the node advertises:

- ``good``: an FP8 candidate of the same model, promoted 5 -> 25 -> 75 -> 100, each step's
  split within binomial bounds of its weight;
- ``slow``: a candidate whose engine adds 3 s to every request (``--inject=latency=+3s``), rolled
  back at its first step by the latency check;
- ``errors``: a candidate answering 10 % of requests with HTTP 500 (``--inject=errors=10%``),
  rolled back by the error rate, which the product reads from Traefik's per-service counters;
- ``crash``: an engine that dies loading the model, as vLLM does out of GPU memory
  (``--inject=crash-on-start``), rolled back at the progress deadline with vLLM's error taken
  from KServe's ``lastFailureInfo``;
- ``never``: an engine that never becomes ready (``--inject=never-ready``), rolled back at the
  progress deadline.

Each rollback is an Event and an alert in a real Alertmanager. No request may fail but those the
faulty candidates answer themselves before their rollback. With ``CONTROLPLANE_TRAFFIC_REPORT``
set to a folder, each test writes what it counted there as JSON (``bench/real_rollout.py``).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from support.notify import Alertmanager, start_alertmanager
from support.real_serving import traffic_canary
from support.real_traffic import (
    CANDIDATE,
    DEADLINE_S,
    STABLE,
    Controller,
    Load,
    Stack,
    created,
    events,
    prepare,
    real_stack,
    report,
    run_loads,
    status,
    write_report,
)
from support.realnode import MARKS, until
from support.traffic_report import until_rollback, within_bounds

pytestmark = MARKS


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with real_stack(tmp_path_factory.mktemp("rollout-cluster")) as running:
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
) -> dict[str, Load]:
    """Apply ``specs`` with the controller running (``extra``: more of its flags) and each
    canary's host under load until every canary is in its phase of ``ends``; the loads."""
    prepare(stack, tuple(specs))
    controller = Controller(stack, tuple(specs), extra)
    loads = {name: Load(stack.gateway.url, f"{name}.example.com", f"{name}-llm") for name in specs}
    controller.start()
    try:
        for spec in specs.values():
            stack.kube.apply(spec, field_manager="test")
        run_loads(
            stack,
            loads,
            lambda: all(status(stack, n).get("phase") == phase for n, phase in ends.items()),
            timeout=timeout,
        )
    finally:
        controller.stop()
    return loads


def assert_split(rows: list[dict[str, Any]]) -> None:
    """Every step's split is its weight; after the end one variant serves everything."""
    for row in rows:
        served = row["variants"]
        total = sum(served.values())
        if row["weight"] is not None and row["phase"] != "pending" and total:
            assert within_bounds(served.get(CANDIDATE, 0), total, row["weight"]), row


def test_a_healthy_candidate_is_promoted_and_a_slow_one_rolled_back_on_real_traffic(
    stack: Stack,
) -> None:
    specs = {
        # the four-week example's schedule: at 5 % of 6 requests/s the candidate gets 18 in a
        # minute, so the first step lasts one and the checks ask for 10
        "good": traffic_canary(
            "good", steps=((5, "60s"), (25, "30s"), (75, "30s")), window="60s", min_samples=10
        ),
        "slow": traffic_canary("slow", args=["--inject=latency=+3s"]),
    }
    loads = roll_out(stack, specs, {"good": "promoted", "slow": "rolled_back"}, timeout=480)

    got = report(stack, loads)
    good, slow = status(stack, "good"), status(stack, "slow")
    got["slow"]["fault"] = until_rollback(
        loads["slow"].answers,
        slow["history"],
        next(float(h["time"]) for h in slow["history"] if h["type"] == "StepStarted"),
        CANDIDATE,
        lambda a: a.seconds > 2.5,
    )
    write_report("promote-and-latency", got)
    for name, data in got.items():
        assert all(not row["failed"] for row in data["phases"]), (name, data)
        assert_split(data["phases"])
    steps = [h["weight"] for h in good["history"] if h["type"] in ("StepStarted", "Advanced")]
    assert steps == [5, 25, 75, 100], good["history"]
    after = {row["phase"]: row["variants"] for row in got["good"]["phases"]}
    assert set(after["after promotion"]) == {CANDIDATE}, after
    assert set(after["pending"]) == {STABLE}, after
    rolled = [h for h in slow["history"] if h["type"] == "RolledBack"]
    assert rolled, slow["history"]
    assert "latency" in rolled[0]["message"], rolled
    assert set({r["phase"]: r for r in got["slow"]["phases"]}["after rollback"]["variants"]) == {
        STABLE
    }
    assert any("latency" in m for m in events(stack, "slow", "RolledBack"))


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
        loads = roll_out(
            stack,
            specs,
            dict.fromkeys(specs, "rolled_back"),
            timeout=DEADLINE_S + 240,
            extra=(f"--allow-alert-url={am.url}",),
        )

        got = report(stack, loads)
        reasons = {name: status(stack, name)["reason"] for name in specs}
        history = {name: status(stack, name)["history"] for name in specs}
        got["errors"]["fault"] = until_rollback(
            loads["errors"].answers,
            history["errors"],
            next(float(h["time"]) for h in history["errors"] if h["type"] == "StepStarted"),
            CANDIDATE,
            lambda a: a.failed,
        )
        for name in ("crash", "never"):
            got[name]["fault"] = until_rollback(
                loads[name].answers, history[name], created(stack, name), CANDIDATE, lambda a: True
            )
        write_report("faults", got)
        for name, data in got.items():
            for row in data["phases"]:
                # the only failures are those the faulty candidate answered before its rollback
                bad = row["failed"]
                if name == "errors" and row["phase"].startswith("step"):
                    bad = {} if set(bad) <= {"500"} else bad
                assert not bad, (name, row)
            assert_split(data["phases"])
        # the controller read the Gateway's class on the chart's RBAC and chose Traefik's source
        log = (stack.cluster.workdir / "controller.log").read_text()
        assert "errors/errors: error-rate reads traefik" in log, log[-3000:]
        assert not events(stack, "errors", "GatewayUnreadable")
        assert reasons["errors"]["kind"] == "breach", reasons
        assert "errors" in reasons["errors"]["message"], reasons
        assert got["errors"]["fault"]["bad_candidate_requests"] > 0, got["errors"]
        assert reasons["crash"]["kind"] == "not-ready", reasons
        assert "failed to load" in reasons["crash"]["message"], reasons
        assert "torch.OutOfMemoryError" in reasons["crash"]["message"], reasons
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
