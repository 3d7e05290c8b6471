"""``canaryctl up --dashboard``: the API over the one canary of a local run
(:class:`~controlplane.api.local_source.LocalSource`), driven here by the state machine itself as
the run's loop drives it: its status live, its events, its replicas, and the verbs handed to the
machine as the controller hands it the annotation's intents."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from support.sse import EventStream

from controlplane.api.app import create_app
from controlplane.api.auth import Authenticator
from controlplane.api.config import ApiConfig
from controlplane.api.local_source import LocalSource
from controlplane.api.server import ApiServer
from controlplane.local.timescale import scale_canary
from controlplane.local.watcher import Pod, RunSnapshot
from controlplane.rollout.intents import INTENT_ANNOTATION
from controlplane.rollout.machine import step
from controlplane.rollout.schedule import initial_state
from controlplane.rollout.state import RolloutState
from controlplane.spec.models import ModelCanary
from controlplane.validation import validated_file

TOKEN = "local-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
START = 1_800_000_000.0
PODS = (Pod("stable", "demo-llm-bf16-0", True), Pod("candidate", "demo-llm-nf4-0", False))


@dataclass
class Run:
    """A local run's loop, by hand: the source it tells, the state, the API in front."""

    canary: ModelCanary
    source: LocalSource
    state: RolloutState
    api: TestClient
    now: float = START

    @property
    def base(self) -> str:
        meta = self.canary.metadata
        return f"/api/v1/namespaces/{meta.namespace}/canaries/{meta.name}"

    def tick(self, seconds: float = 0.5) -> None:
        """One tick of the loop: the machine with the intents recorded since, then told."""
        self.now += seconds
        self.state, _ = step(self.canary, self.state, None, self.now, self.source.take_intents())
        self.source.on_state(RunSnapshot(self.state, PODS, self.state.weight, False))


@pytest.fixture
def run() -> Iterator[Run]:
    canary, _ = scale_canary(validated_file("canary/local-demo.yml")[0], 60, 1.0)
    source = LocalSource(canary, 60, clock=lambda: START)
    config = ApiConfig(
        kube=None,
        auth=Authenticator(static_token=TOKEN, static_user="ana"),
        source=source,
        mode="local",
        namespaces=(canary.metadata.namespace,),
    )
    state = initial_state(canary, START)
    source.on_state(RunSnapshot(state, PODS))
    with TestClient(create_app(config)) as api:
        yield Run(canary, source, state, api)


def test_the_run_is_one_simulated_canary(run: Run) -> None:
    assert run.api.get("/api/v1/whoami", headers=HEADERS).json() == {"user": "ana", "mode": "local"}
    (item,) = run.api.get("/api/v1/canaries", headers=HEADERS).json()["items"]
    assert (item["namespace"], item["name"], item["phase"]) == ("default", "local-demo", "pending")
    assert (item["simulated"], item["timeScale"]) == (True, 60.0)
    detail = run.api.get(run.base, headers=HEADERS).json()
    assert detail["spec"]["steps"][0]["duration"] == "30s"  # the time-scaled spec that runs
    assert detail["status"]["simulated"] is True
    assert detail["createdAt"] == "2027-01-15T08:00:00Z"
    other = run.api.get("/api/v1/namespaces/default/canaries/other", headers=HEADERS)
    assert other.status_code == 404
    assert "serves default/local-demo only" in other.json()["detail"]
    assert run.api.get("/api/v1/namespaces/team-b/canaries", headers=HEADERS).status_code == 404


def test_a_verb_reaches_the_state_machine_as_an_intent(run: Run) -> None:
    answer = run.api.post(f"{run.base}/pause", headers=HEADERS)
    assert answer.status_code == 202, answer.text
    intent = answer.json()["intent"]
    assert (intent["verb"], intent["user"]) == ("pause", "ana")
    annotations = run.source.get("default", "local-demo")["metadata"]["annotations"]
    assert intent["id"] in annotations[INTENT_ANNOTATION]  # recorded as kubectl canary does
    # resume is accepted before the run has taken the pause: it is pending, as in a cluster
    assert run.api.post(f"{run.base}/resume", headers=HEADERS).status_code == 202
    run.tick()
    assert run.state.phase != "paused"  # paused, then resumed, in one tick
    assert [e.type for e in run.state.history][-2:] == ["Paused", "Resumed"]
    assert run.source.take_intents() == []  # each intent handed over once

    assert run.api.post(f"{run.base}/pause", headers=HEADERS).status_code == 202
    run.tick()
    detail = run.api.get(run.base, headers=HEADERS).json()
    assert (detail["phase"], detail["paused"]) == ("paused", "user")
    assert detail["status"]["reason"]["message"] == "paused by ana"
    again = run.api.post(f"{run.base}/pause", headers=HEADERS)
    assert again.status_code == 409
    assert "already paused" in again.json()["detail"]


def test_refusals_say_why(run: Run) -> None:
    promote = run.api.post(f"{run.base}/promote", headers=HEADERS)
    assert promote.status_code == 409
    assert "has not started yet" in promote.json()["detail"]
    retry = run.api.post(f"{run.base}/retry", headers=HEADERS)
    assert retry.status_code == 409
    assert "run canaryctl up again" in retry.json()["detail"]
    run.source.finished("interrupted")
    over = run.api.post(f"{run.base}/abort", headers=HEADERS)
    assert over.status_code == 409
    assert over.json()["detail"].startswith("this run of canaryctl up is over (interrupted)")
    assert run.api.post(f"{run.base}/abort").status_code == 401


def test_events_are_the_runs_and_objects_its_replicas(run: Run) -> None:
    run.api.post(f"{run.base}/pause", headers=HEADERS)
    run.tick()
    events = run.api.get(f"{run.base}/events", headers=HEADERS).json()["items"]
    assert [(e["type"], e["reason"], e["message"]) for e in events] == [
        ("Warning", "Paused", "paused by ana")
    ]
    assert events[0]["object"] == "ModelCanary/local-demo"
    objects = run.api.get(f"{run.base}/objects", headers=HEADERS).json()
    assert [(n["kind"], n["name"], n["role"], n["health"]) for n in objects["items"]] == [
        ("Pod", "demo-llm-bf16-0", "stable", "Ready"),
        ("Pod", "demo-llm-nf4-0", "candidate", "Progressing"),
    ]
    assert objects["weights"]["actual"] == {"stable": 100, "candidate": 0, "mirror": False}
    assert objects["weights"]["source"] == "the local router"


def test_the_watch_gets_every_state_of_the_run(run: Run) -> None:
    app = run.api.app
    with ApiServer(app) as server, EventStream(server.url + "/api/v1/watch/canaries", HEADERS) as s:
        event, data = s.next()
        assert event == "snapshot"
        assert [(i["name"], i["simulated"]) for i in data["items"]] == [("local-demo", True)]
        run.api.post(f"{run.base}/pause", headers=HEADERS)
        event, data = s.next()  # the intent recorded
        assert (event, data["phase"]) == ("upsert", "pending")
        run.tick()
        seen = [s.next() for _ in range(2)]  # the intent taken, then the new state
        assert [e for e, _d in seen] == ["upsert", "upsert"]
        assert seen[-1][1]["phase"] == "paused"
        assert seen[-1][1]["status"]["simulated"] is True
