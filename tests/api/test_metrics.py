"""The controller's metrics after real rollout events, read back from ``/metrics``.

The rollback scenario evaluates the contract example against the real Prometheus of
``tests/conftest.py`` (candidate error rate 2% > 0.1%: rolled back at the first evaluation of
step 1); the promotion scenario has time-only steps. Counters are checked against the canary's
own status history, once per event, also when a status write conflicts and the evaluation is
repeated.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families
from support.api import NAME, NS, STATIC, World, canary
from support.canaries import STABLE
from support.history import History

from controlplane.errors import Conflict
from controlplane.rollout.state import Event, RolloutState
from controlplane.spec.models import ModelCanary
from controlplane.spec.units import time_value

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
HOUR = 3600.0


def allowing(prometheus: str) -> tuple[str, ...]:
    """The flags an administrator allows the canaries' Prometheus with."""
    return ("--allow-prometheus", prometheus)


def scrape(world: World) -> Samples:
    with TestClient(world.app()) as client:
        text = client.get("/metrics").text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def ids(**labels: str) -> dict[str, str]:
    return {"namespace": NS, "canary": NAME, **labels}


@pytest.fixture
def rolled_back(history: History, tmp_path: Path) -> World:
    world = World(history.scenario.start + 2 * HOUR, tmp_path, flags=allowing(history.url))
    world.create(canary(prometheus=history.url))
    world.run_until(lambda: world.phase() == "progressing", limit_s=HOUR)
    # the first evaluation's status write conflicts once: it is evaluated again, counted once
    world.clock.t = world.controller.next_wake() or world.clock.t
    world.kube.fail_next("replace_status", Conflict("409 Conflict: injected"))
    world.run_until(lambda: world.phase() == "rolled_back", limit_s=HOUR)
    world.controller.poll(0.0)  # what the watch saw last is what the gauges show
    assert world.controller.stats.conflicts == 1
    assert world.controller.stats.ticks == 2  # the evaluation ran twice, was persisted once
    return world


@pytest.mark.binary
def test_rollback_metrics(rolled_back: World) -> None:
    samples = scrape(rolled_back)
    state = RolloutState.from_status(rolled_back.status())
    assert [e.type for e in state.history][-2:] == ["Breached", "RolledBack"]
    assert value(samples, "canary_rollbacks_total", **ids()) == 1.0
    assert value(samples, "canary_promotions_total", **ids()) is None
    assert value(samples, "canary_checks_total", **ids(metric="errors", result="breach")) == 1.0
    assert value(samples, "canary_checks_total", **ids(metric="latency", result="pass")) == 1.0
    assert value(samples, "canary_phase", **ids(phase="rolled_back")) == 1.0
    assert value(samples, "canary_phase", **ids(phase="progressing")) == 0.0
    assert value(samples, "canary_weight", **ids()) == 0.0
    assert value(samples, "canary_step", **ids()) == 1.0
    errors = state.checks["steps[0].rollbackOn[1]"]
    assert errors.candidate is not None
    assert 0.015 < errors.candidate < 0.025
    got = value(samples, "canary_check_value", **ids(metric="errors", variant="candidate"))
    assert got == errors.candidate
    assert value(samples, "canary_check_value", **ids(metric="errors", variant="stable")) == (
        errors.stable
    )
    # a finished canary has no current thresholds
    assert not [k for k in samples if k[0] == "canary_check_threshold"]
    assert value(samples, "canary_controller_analysis_ticks_total") == float(
        rolled_back.controller.stats.ticks
    )
    assert value(samples, "canary_controller_analysis_tick_duration_seconds_count") == float(
        rolled_back.controller.stats.ticks
    )
    queries = value(samples, "canary_controller_analysis_queries_total")
    assert queries is not None
    assert queries > 0
    assert value(samples, "canary_controller_leader") == 1.0
    assert value(samples, "canary_controller_conflicts_total") == float(
        rolled_back.controller.stats.conflicts
    )


@pytest.mark.binary
def test_thresholds_and_values_while_progressing(history: History, tmp_path: Path) -> None:
    world = World(history.scenario.start + 2 * HOUR, tmp_path, flags=allowing(history.url))
    world.create(
        canary(
            prometheus=history.url,
            steps=[
                {
                    "weight": 5,
                    "duration": "1h",
                    "rollbackOn": [{"metric": "latency", "above": "2s"}],
                },
                {"weight": 100},
            ],
        )
    )
    world.run_until(lambda: world.status().get("lastEvaluation") is not None, limit_s=HOUR)
    world.run_until(lambda: "steps[0].rollbackOn[0]" in world.status().get("checks", {}), HOUR)
    world.controller.poll(0.0)
    samples = scrape(world)
    status = world.status()
    assert value(samples, "canary_phase", **ids(phase="progressing")) == 1.0
    assert value(samples, "canary_weight", **ids()) == 5.0
    assert value(samples, "canary_step_started_timestamp_seconds", **ids()) == time_value(
        status["stageStartedAt"]
    )
    assert value(samples, "canary_check_threshold", **ids(metric="latency", bound="above")) == 2.0
    check = status["checks"]["steps[0].rollbackOn[0]"]
    got = value(samples, "canary_check_value", **ids(metric="latency", variant="candidate"))
    assert got == check["candidate"]
    assert value(samples, "canary_checks_total", **ids(metric="latency", result="pass")) == 1.0


def test_promotion_and_step_durations(tmp_path: Path) -> None:
    world = World(1_800_000_000.0, tmp_path)
    world.create(
        canary(
            steps=[
                {"weight": 10, "duration": "1h"},
                {"weight": 50, "duration": "2h"},
                {"weight": 100},
            ]
        )
    )
    world.run_until(lambda: world.phase() == "promoted", limit_s=10 * HOUR)
    world.controller.poll(0.0)
    samples = scrape(world)
    history = RolloutState.from_status(world.status()).history
    starts = [e for e in history if e.type in ("StepStarted", "Advanced")]
    (promoted,) = [e for e in history if e.type == "Promoted"]
    ends = [*starts[1:], promoted]
    durations = [end.time - start.time for start, end in zip(starts, ends, strict=True)]
    assert len(durations) == 3
    assert durations[0] >= HOUR
    assert durations[1] >= 2 * HOUR
    assert value(samples, "canary_promotions_total", **ids()) == 1.0
    assert value(samples, "canary_rollbacks_total", **ids()) is None
    assert value(samples, "canary_step_duration_seconds_count", **ids()) == 3.0
    assert value(samples, "canary_step_duration_seconds_sum", **ids()) == pytest.approx(
        sum(durations)
    )
    for le in (300.0, 3600.0, 3 * HOUR):
        within = sum(d <= le for d in durations)
        assert value(samples, "canary_step_duration_seconds_bucket", **ids(le=str(le))) == within
    assert value(samples, "canary_phase", **ids(phase="promoted")) == 1.0
    assert value(samples, "canary_weight", **ids()) == 100.0


def test_an_event_told_twice_is_counted_once(tmp_path: Path) -> None:
    world = World(1_800_000_000.0, tmp_path)
    obj = world.create(canary())
    model = ModelCanary.model_validate({k: v for k, v in obj.items() if k != "status"})
    state = RolloutState(spec_hash="x", stage="rolled_back", started_at=0.0, stage_started_at=0.0)
    event = Event("RolledBack", 10.0, 1, 0, "aborted by alice")
    for _ in range(3):
        world.metrics.notify(obj, model, state, event)
    world.metrics.notify(obj, model, state, Event("RolledBack", 20.0, 1, 0, "again"))
    assert world.metrics.rollbacks.labels(NS, NAME)._value.get() == 2.0


def test_more_collectors_share_the_registry(tmp_path: Path) -> None:
    world = World(1_800_000_000.0, tmp_path)
    deliveries = Counter(
        "canary_controller_alert_deliveries",
        "Alert deliveries",
        ["channel", "result"],
        registry=world.metrics.registry,
    )
    deliveries.labels("slack", "delivered").inc()
    samples = scrape(world)
    assert (
        value(
            samples, "canary_controller_alert_deliveries_total", channel="slack", result="delivered"
        )
        == 1.0
    )


def test_static_token_is_not_needed_for_metrics(tmp_path: Path) -> None:
    world = World(1_800_000_000.0, tmp_path)
    with TestClient(world.app()) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/v1/canaries").status_code == 401
        ok = client.get("/api/v1/canaries", headers={"Authorization": f"Bearer {STATIC}"})
        assert ok.status_code == 200


def test_capacity_gauges_and_status_follow_the_plan(tmp_path: Path) -> None:
    """With ``spec.capacity`` the status carries the plan and the ready replicas, the gauges
    read it and the API returns it; GPU-hours grow while replicas hold GPUs."""
    world = World(1_800_000_000.0, tmp_path)
    rates = {"stable": 10.0, "candidate": 8.0}
    world.create(
        canary(
            stable={**STABLE, "replicas": 2},
            capacity={"maxGPUs": 4, "requestsPerReplica": rates},
            shadow=None,
            steps=[{"weight": 75, "duration": "2h"}, {"weight": 100}],
        )
    )
    world.run_until(lambda: world.status().get("weight") == 75, limit_s=10 * HOUR)
    world.run_until(lambda: (world.status().get("capacity") or {}).get("gpuHours", 0) > 0, HOUR)
    world.controller.poll(0.0)
    record = world.status()["capacity"]
    assert record["planned"] == {"stable": 1, "candidate": 2}
    assert record["budget"] == 4
    samples = scrape(world)
    for variant, count in record["planned"].items():
        got = value(samples, "canary_replicas", **ids(variant=variant, kind="planned"))
        assert got == count
    for variant, count in record["ready"].items():
        assert value(samples, "canary_replicas", **ids(variant=variant, kind="ready")) == count
    assert value(samples, "canary_gpus", **ids()) == record["gpus"]
    assert record["gpuHours"] > 0
    assert value(samples, "canary_gpu_hours", **ids()) == record["gpuHours"]
    # an hour on, with nothing changed: the status is not rewritten, the gauge counts the GPUs
    # held since the record
    world.clock.t = time_value(record["at"]) + HOUR
    later = scrape(world)
    assert world.status()["capacity"] == record
    hours = value(later, "canary_gpu_hours", **ids())
    assert hours == pytest.approx(record["gpuHours"] + record["gpus"])
    with TestClient(world.app()) as client:
        detail = client.get(
            f"/api/v1/namespaces/{NS}/canaries/{NAME}",
            headers={"Authorization": f"Bearer {STATIC}"},
        )
    assert detail.status_code == 200, detail.text
    assert detail.json()["status"]["capacity"] == record
