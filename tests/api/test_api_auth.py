"""Who may call the API: static token, TokenReview and SubjectAccessReview (on the fake API
server's RBAC), review caching, and failed requests that change nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from support.api import NAME, NS, STATIC, World, canary

from controlplane.api.auth import Authenticator, Identity, Unauthenticated
from controlplane.errors import Forbidden, KubeError, UsageError
from controlplane.spec.models import API_GROUP
from harness.kube.fake import FakeKube

BASE = f"/api/v1/namespaces/{NS}/canaries"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def operator(world: World) -> None:
    """alice (group ml-ops) may read and patch canaries in ml-serving; bob may only read."""
    world.kube.add_token("alice-token", "alice", groups=["ml-ops"])
    world.kube.add_token("bob-token", "bob")
    world.kube.grant(
        "canary-operator",
        verbs=["get", "list", "patch"],
        resources=["modelcanaries"],
        api_groups=[API_GROUP],
        namespace=NS,
        groups=["ml-ops"],
    )
    world.kube.grant(
        "canary-reader",
        verbs=["get", "list"],
        resources=["modelcanaries"],
        api_groups=[API_GROUP],
        namespace=NS,
        users=["bob"],
    )


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no bearer token: send 'Authorization: Bearer <token>'"),
        ({"Authorization": "Basic YWxpY2U6cHc="}, "no bearer token"),
        (bearer("forged"), "invalid bearer token: invalid bearer token, token lookup failed"),
    ],
    ids=["none", "basic", "unknown"],
)
@pytest.mark.parametrize("path", ["/api/v1/canaries", f"{BASE}/{NAME}", f"{BASE}/{NAME}/abort"])
def test_unauthenticated_is_401_with_reason_and_changes_nothing(
    world: World, client: TestClient, headers: dict[str, str], reason: str, path: str
) -> None:
    before = world.get()["metadata"]["resourceVersion"]
    method = client.post if path.endswith("abort") else client.get
    answer = method(path, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["detail"].startswith(reason)
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="canary-controller"'
    assert world.get()["metadata"]["resourceVersion"] == before
    assert world.woken == []


def test_token_review_user_with_rbac_may_act(world: World, client: TestClient) -> None:
    operator(world)
    answer = client.post(f"{BASE}/{NAME}/pause", headers=bearer("alice-token"))
    assert answer.status_code == 202, answer.text
    assert answer.json()["intent"]["user"] == "alice"
    world.controller.run_once()
    assert world.status()["reason"]["message"] == "paused by alice"


def test_reader_may_read_but_not_act(world: World, client: TestClient) -> None:
    operator(world)
    assert client.get(f"{BASE}/{NAME}", headers=bearer("bob-token")).status_code == 200
    assert client.get(BASE, headers=bearer("bob-token")).status_code == 200
    before = world.get()["metadata"]["resourceVersion"]
    answer = client.post(f"{BASE}/{NAME}/abort", headers=bearer("bob-token"))
    assert answer.status_code == 403
    assert answer.json()["detail"].startswith(
        f"user \"bob\" may not patch modelcanaries.{API_GROUP} 'support-triage' in namespace "
        '"ml-serving": RBAC: '
    )
    assert world.get()["metadata"]["resourceVersion"] == before
    assert world.woken == []


def test_namespace_grant_does_not_reach_other_namespaces(world: World, client: TestClient) -> None:
    """A cluster-wide controller lists for alice, who may list ml-serving only, the canaries of
    ml-serving and of no other namespace (issue 38: a team sees its own on the list page); carol,
    who may list nowhere, is refused with the API server's reason."""
    operator(world)
    world.create(canary("theirs", namespace="team-b"))
    world.kube.add_token("carol-token", "carol")  # no grant anywhere
    with TestClient(world.app(namespace=[])) as every_namespace:  # a cluster-wide controller
        answer = every_namespace.get("/api/v1/canaries", headers=bearer("alice-token"))
        nothing = every_namespace.get("/api/v1/canaries", headers=bearer("carol-token"))
    assert answer.status_code == 200
    assert [(c["namespace"], c["name"]) for c in answer.json()["items"]] == [(NS, NAME)]
    assert nothing.status_code == 403
    assert nothing.json()["detail"].startswith('user "carol" may not list modelcanaries')
    other = client.get("/api/v1/namespaces/team-b/canaries/x", headers=bearer("alice-token"))
    assert other.status_code == 403  # denied before looking: existence does not leak


@pytest.mark.parametrize("namespaces", [[], [NS]], ids=["cluster-wide", "namespaced"])
def test_access_says_who_may_act_and_why_and_changes_nothing(
    world: World, namespaces: list[str]
) -> None:
    """``GET .../access``: alice (patch) may act; bob (get, list) may not, with the API server's
    reason naming patch; carol (nothing) may not even read it: 403, as a read would be."""
    operator(world)
    world.kube.add_token("carol-token", "carol")
    before = world.get()["metadata"]["resourceVersion"]
    with TestClient(world.app(namespace=namespaces)) as client:
        url = f"/api/v1/namespaces/{NS}/canaries/{NAME}/access"
        alice = client.get(url, headers=bearer("alice-token"))
        bob = client.get(url, headers=bearer("bob-token"))
        carol = client.get(url, headers=bearer("carol-token"))
        static = client.get(url, headers=bearer(STATIC))
    assert (alice.status_code, alice.json()["act"]) == (200, True)
    assert (bob.status_code, bob.json()["act"]) == (200, False)
    assert bob.json()["reason"].startswith('user "bob" may not patch modelcanaries')
    assert carol.status_code == 403
    assert static.json()["act"] is True  # the controller's own token; its source may patch
    assert world.get()["metadata"]["resourceVersion"] == before
    assert world.woken == []


def test_a_namespaced_controller_lists_the_watched_namespaces_the_caller_may_list(
    world: World,
) -> None:
    operator(world)
    with TestClient(world.app(namespace=[NS, "team-b"])) as client:
        mine = client.get("/api/v1/canaries", headers=bearer("alice-token"))
        assert mine.status_code == 200
        assert [c["namespace"] for c in mine.json()["items"]] == [NS]
        world.kube.add_token("carol-token", "carol")  # no grant anywhere
        nothing = client.get("/api/v1/canaries", headers=bearer("carol-token"))
    assert nothing.status_code == 403
    assert nothing.json()["detail"].startswith(
        f'user "carol" may not list modelcanaries.{API_GROUP} in namespace "{NS}"'
    )


def test_reviews_are_cached_briefly(world: World) -> None:
    operator(world)
    now = [0.0]
    auth = Authenticator(kube=world.kube, ttl_s=10.0, clock=lambda: now[0])
    world.kube.reset_calls()
    for _ in range(5):
        who = auth.authenticate("alice-token")
        assert auth.authorize(who, "patch", NS, NAME).allowed
    assert world.kube.count("create") == 2  # one TokenReview, one SubjectAccessReview
    world.kube.revoke_token("alice-token")
    auth.authenticate("alice-token")  # still cached
    now[0] = 10.5
    with pytest.raises(Unauthenticated):
        auth.authenticate("alice-token")
    assert world.kube.count("create") == 3


def test_denials_are_cached_too_and_expire(world: World) -> None:
    operator(world)
    now = [0.0]
    auth = Authenticator(kube=world.kube, ttl_s=10.0, clock=lambda: now[0])
    bob = auth.authenticate("bob-token")
    assert not auth.authorize(bob, "patch", NS, NAME).allowed
    world.kube.grant(
        "bob-patch",
        verbs=["patch"],
        resources=["modelcanaries"],
        api_groups=[API_GROUP],
        namespace=NS,
        users=["bob"],
    )
    assert not auth.authorize(bob, "patch", NS, NAME).allowed
    now[0] = 11.0
    assert auth.authorize(bob, "patch", NS, NAME).allowed


def test_static_token_grants_everything_without_reviews() -> None:
    kube = FakeKube()
    auth = Authenticator(static_token="s3cret", kube=kube)
    who = auth.authenticate("s3cret")
    assert who == Identity("static-token", static=True)
    assert auth.authorize(who, "patch", "anywhere", "x").allowed
    assert kube.count("create") == 0


def test_static_only_refuses_other_tokens() -> None:
    auth = Authenticator(static_token="s3cret")
    with pytest.raises(Unauthenticated, match="invalid bearer token"):
        auth.authenticate("s3cre")


def test_authenticator_needs_a_way_to_check_tokens() -> None:
    with pytest.raises(UsageError, match="static token or a Kubernetes client"):
        Authenticator()


def test_api_server_down_is_503(world: World, client: TestClient) -> None:
    world.kube.fail_next("create", KubeError("the API server is unreachable: refused"))
    answer = client.get(BASE, headers=bearer("someone"))
    assert answer.status_code == 503
    assert "the API server is unreachable" in answer.json()["detail"]


def test_the_apis_own_rbac_refused_is_502_naming_it(world: World, client: TestClient) -> None:
    world.kube.fail_next(
        "create",
        Forbidden('403 Forbidden: User "system:serviceaccount:x:y" cannot create tokenreviews'),
    )
    answer = client.get(BASE, headers=bearer("someone"))
    assert answer.status_code == 502
    detail = answer.json()["detail"]
    assert "the API's ServiceAccount may not do this" in detail
    assert "cannot create tokenreviews" in detail
