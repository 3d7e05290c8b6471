"""The dashboard's live watch, ``GET /api/v1/watch/canaries``, over a real socket (uvicorn on
127.0.0.1) in front of the fake cluster: a snapshot then every change in order, one watch of the
API server however many browsers, the caller's namespaces only, keepalives, a slow subscriber
dropped, the streams ended when the server stops."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.api import NAME, NS, STATIC, World, canary
from support.sse import EventStream

from controlplane.api.app import create_app
from controlplane.api.auth import Authenticator
from controlplane.api.config import ApiConfig
from controlplane.api.hub import END, Hub
from controlplane.api.server import ApiServer
from controlplane.kube.client import canary_ref
from controlplane.spec.models import API_GROUP

WATCH = "/api/v1/watch/canaries"
ADMIN = {"Authorization": f"Bearer {STATIC}"}


@pytest.fixture
def server(world: World) -> Iterator[ApiServer]:
    """The controller's API (cluster-wide) over ``world``, on a real socket."""
    with ApiServer(world.app(namespace=[])) as running:
        yield running


def with_warning(
    world: World, name: str = NAME, namespace: str = NS, message: str = "a change to see"
) -> dict[str, Any]:
    """Write a status change as the controller would (a warning added); the status written."""
    ref = canary_ref(namespace, name)
    status = copy.deepcopy(world.kube.get(ref).get("status") or {})
    status["warnings"] = [{"type": "Test", "message": message, "at": 1.0, "count": 1}]
    world.kube.system_replace_status(ref, status)
    return status


def test_a_snapshot_then_each_status_change_in_order(world: World, server: ApiServer) -> None:
    with EventStream(server.url + WATCH, ADMIN) as stream:
        assert stream.status == 200
        assert stream.headers is not None
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-cache"
        event, data = stream.next()
        assert event == "snapshot"
        (item,) = data["items"]
        assert (item["namespace"], item["name"], item["phase"]) == (NS, NAME, "progressing")
        assert item["warnings"] == 0
        before = int(item["resourceVersion"])

        with_warning(world)
        event, data = stream.next()
        assert event == "upsert"
        assert (data["namespace"], data["name"], data["warnings"]) == (NS, NAME, 1)
        assert data["status"]["warnings"][0]["message"] == "a change to see"
        assert data["spec"]["candidate"]["name"] == "nf4"
        assert int(data["resourceVersion"]) > before

        world.create(canary("other"))
        event, data = stream.next()
        assert (event, data["name"], data["phase"]) == ("upsert", "other", "")
        world.kube.delete(canary_ref(NS, "other"))
        assert stream.next() == ("delete", {"namespace": NS, "name": "other"})


def test_one_watch_of_the_api_server_for_every_browser(world: World, server: ApiServer) -> None:
    world.kube.reset_calls()
    streams = [EventStream(server.url + WATCH, ADMIN) for _ in range(3)]
    try:
        for stream in streams:
            assert stream.next()[0] == "snapshot"
        with_warning(world)
        for stream in streams:
            event, data = stream.next()
            assert (event, data["warnings"]) == ("upsert", 1)
        assert world.kube.count("list") == 1  # one page
        assert world.kube.count("watch") == 1
    finally:
        for stream in streams:
            stream.close()


def test_a_caller_sees_the_namespaces_it_may_list_only(world: World, server: ApiServer) -> None:
    """bob may list ml-serving only: the cluster-wide watch carries ml-serving's canaries and
    changes and nothing of team-b's, as does the watch of ml-serving; team-b's is refused, and
    so is any watch of carol, who may list nowhere."""
    world.kube.add_token("bob-token", "bob")
    world.kube.grant(
        "canary-reader",
        verbs=["get", "list"],
        resources=["modelcanaries"],
        api_groups=[API_GROUP],
        namespace=NS,
        users=["bob"],
    )
    world.create(canary("theirs", namespace="team-b"))
    bob = {"Authorization": "Bearer bob-token"}
    world.kube.add_token("carol-token", "carol")
    nothing = httpx.get(server.url + WATCH, headers={"Authorization": "Bearer carol-token"})
    assert nothing.status_code == 403
    assert nothing.json()["detail"].startswith('user "carol" may not list modelcanaries')
    with EventStream(server.url + WATCH, bob) as stream:
        event, data = stream.next()
        assert event == "snapshot"
        assert [(i["namespace"], i["name"]) for i in data["items"]] == [(NS, NAME)]
        with_warning(world, "theirs", "team-b", "first")
        with_warning(world, message="first")
        event, data = stream.next()
        assert (event, data["namespace"], data["name"]) == ("upsert", NS, NAME)
    elsewhere = httpx.get(server.url + WATCH, params={"namespace": "team-b"}, headers=bob)
    assert elsewhere.status_code == 403
    with EventStream(server.url + f"{WATCH}?namespace={NS}", bob) as stream:
        event, data = stream.next()
        assert event == "snapshot"
        assert [(i["namespace"], i["name"]) for i in data["items"]] == [(NS, NAME)]
        with_warning(world, "theirs", "team-b")
        with_warning(world)
        event, data = stream.next()
        assert (event, data["namespace"], data["name"]) == ("upsert", NS, NAME)


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [({}, "", 401), (ADMIN, "?namespace=Not_A_Label", 422)],
    ids=["no-token", "bad-namespace"],
)
def test_refusals_come_before_the_stream(
    server: ApiServer, headers: dict[str, str], query: str, status: int
) -> None:
    answer = httpx.get(server.url + WATCH + query, headers=headers)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"


def test_a_quiet_stream_has_keepalives(world: World) -> None:
    config = ApiConfig(kube=world.kube, auth=Authenticator(static_token=STATIC), keepalive_s=0.1)
    with ApiServer(create_app(config)) as running, EventStream(running.url + WATCH, ADMIN) as s:
        assert s.next()[0] == "snapshot"
        assert s.next(comments=True) == ("comment", "keepalive")
        assert s.next(comments=True) == ("comment", "keepalive")


def test_a_caller_whose_right_is_taken_away_sees_the_stream_end(world: World) -> None:
    world.kube.add_token("carol-token", "carol")
    world.kube.grant(
        "canary-watcher",
        verbs=["list"],
        resources=["modelcanaries"],
        api_groups=[API_GROUP],
        users=["carol"],
    )
    auth = Authenticator(static_token=STATIC, kube=world.kube, ttl_s=0)
    config = ApiConfig(kube=world.kube, auth=auth, keepalive_s=0.1)
    carol = {"Authorization": "Bearer carol-token"}
    with ApiServer(create_app(config)) as running, EventStream(running.url + WATCH, carol) as s:
        assert s.next()[0] == "snapshot"
        assert s.next(comments=True) == ("comment", "keepalive")
        world.kube.grant(  # the same ClusterRole, its verb list now empty
            "canary-watcher",
            verbs=[],
            resources=["modelcanaries"],
            api_groups=[API_GROUP],
            users=["carol"],
        )
        assert s.ended()


def test_a_namespace_with_its_first_canary_ends_the_stream_for_a_fresh_snapshot(
    world: World,
) -> None:
    """dave may list ml-serving and team-c, not the cluster: his stream carries ml-serving (the
    only one holding a canary); when team-c gets its first canary, the next keepalive's check
    ends the stream, and the page's reconnection gets a snapshot with both."""
    world.kube.add_token("dave-token", "dave")
    for namespace in (NS, "team-c"):
        world.kube.grant(
            f"dave-{namespace}",
            verbs=["list"],
            resources=["modelcanaries"],
            api_groups=[API_GROUP],
            namespace=namespace,
            users=["dave"],
        )
    auth = Authenticator(static_token=STATIC, kube=world.kube, ttl_s=0)
    config = ApiConfig(kube=world.kube, auth=auth, keepalive_s=0.1)
    dave = {"Authorization": "Bearer dave-token"}
    with ApiServer(create_app(config)) as running:
        with EventStream(running.url + WATCH, dave) as s:
            assert [i["namespace"] for i in s.next()[1]["items"]] == [NS]
            assert s.next(comments=True) == ("comment", "keepalive")
            world.create(canary("new", namespace="team-c"))
            assert s.ended()
        with EventStream(running.url + WATCH, dave) as again:
            items = again.next()[1]["items"]
    assert [(i["namespace"], i["name"]) for i in items] == [(NS, NAME), ("team-c", "new")]


def test_stopping_the_server_ends_the_streams(world: World) -> None:
    running = ApiServer(world.app(namespace=[])).start()
    stream = EventStream(running.url + WATCH, ADMIN)
    assert stream.next()[0] == "snapshot"
    running.stop()
    assert stream.ended()
    stream.close()


def test_a_slow_subscriber_is_dropped_not_the_others() -> None:
    """A subscriber whose queue is full loses its queued events and gets the end of its stream
    (the page reconnects and starts from a snapshot); a subscriber that keeps up gets every
    change, in order."""
    hub = Hub([None], queue_size=3)
    hub.reset(None, [])

    async def run() -> tuple[list[Any], list[Any], bool]:
        loop = asyncio.get_running_loop()
        _, slow = hub.subscribe(None, loop)
        _, fast = hub.subscribe(None, loop)
        fast.queue = asyncio.Queue(100)
        for version in range(1, 6):
            obj = canary("c")
            obj["metadata"]["resourceVersion"] = str(version)
            hub.upsert(obj)
        await asyncio.sleep(0.05)  # the offers run on this loop
        drain = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
        got = [fast.queue.get_nowait() for _ in range(fast.queue.qsize())]
        return drain, got, slow.dropped

    drained, got, dropped = asyncio.run(run())
    assert dropped
    assert drained == [END]
    assert len(got) == 5
    assert all(b'"resourceVersion":"' + str(v).encode() in g for v, g in enumerate(got, 1))
    assert hub.subscribers == 1
