"""Names in the API's paths are Kubernetes names, checked before anything is asked of the cluster;
an invalid name found further down is a 422 too, never a 5xx; a body FastAPI cannot even decode is
a 422 like any malformed body; and the OpenAPI document declares the answers a route can give
(issue 33)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.api import NAME, NS, World

from controlplane import operations
from controlplane.errors import InvalidName

BASE = f"/api/v1/namespaces/{NS}/canaries"


@pytest.fixture
def everywhere(world: World) -> Iterator[TestClient]:
    """The API of a controller that watches every namespace: any namespace reaches the cluster."""
    with TestClient(world.app(namespace=[])) as client:
        yield client


def assert_invalid_name(answer: Any, where: str, shown: str) -> None:
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["type"] == "invalid_name"
    assert error["loc"] == ["path", where]
    assert error["msg"].startswith(f"{where} {shown} is not a valid Kubernetes name: at most ")


@pytest.mark.parametrize("namespace", ["team-a", NS])
def test_a_query_smuggled_into_a_name_is_422_and_lists_nothing(
    world: World, everywhere: TestClient, admin: dict[str, str], namespace: str
) -> None:
    world.kube.reset_calls()
    answer = everywhere.get(
        f"/api/v1/namespaces/{namespace}/canaries/%3FlabelSelector%3Dx", headers=admin
    )
    assert_invalid_name(answer, "name", "'?labelSelector=x'")
    assert world.kube.count() == 0  # not a get, not a list: nothing was asked of the cluster


@pytest.mark.parametrize(
    ("path", "where", "shown"),
    [
        ("/api/v1/namespaces/Team-A/canaries", "namespace", "'Team-A'"),
        ("/api/v1/namespaces/team_a/canaries/x", "namespace", "'team_a'"),
        ("/api/v1/namespaces/a.b/canaries/x", "namespace", "'a.b'"),  # a label: no dots
        (f"/api/v1/namespaces/{'a' * 64}/canaries", "namespace", f"'{'a' * 64}'"),
        (f"{BASE}/%2E%2E", "name", "'..'"),  # encoded, so that the client leaves it be
        (f"{BASE}/-x", "name", "'-x'"),
        (f"{BASE}/x%23frag", "name", "'x#frag'"),
        (f"{BASE}/x%25", "name", "'x%'"),
        (f"{BASE}/{'a' * 254}", "name", f"'{'a' * 76}..."),
        (f"{BASE}/%3FlabelSelector%3Dx/abort", "name", "'?labelSelector=x'"),
        ("/api/v1/namespaces/..%3F/canaries/x/promote", "namespace", "'..?'"),
    ],
)
def test_every_path_name_is_a_kubernetes_name(
    world: World, everywhere: TestClient, admin: dict[str, str], path: str, where: str, shown: str
) -> None:
    before = world.get()["metadata"]["resourceVersion"]
    world.kube.reset_calls()
    method = everywhere.post if path.endswith(("abort", "promote")) else everywhere.get
    assert_invalid_name(method(path, headers=admin), where, shown)
    assert world.kube.count() == 0
    assert world.get()["metadata"]["resourceVersion"] == before
    assert world.woken == []


def test_a_name_with_dots_is_a_name(everywhere: TestClient, admin: dict[str, str]) -> None:
    answer = everywhere.get(f"{BASE}/llama.v2", headers=admin)  # a DNS-1123 subdomain
    assert answer.status_code == 404
    assert answer.json()["detail"].startswith("modelcanary 'llama.v2' not found")


def test_an_invalid_name_found_below_a_route_is_422_not_5xx(
    client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: Any) -> Any:
        raise InvalidName("name 'a/b' may not contain '/'")

    monkeypatch.setattr(operations, "get_canary", refuse)
    answer = client.get(f"{BASE}/{NAME}", headers=admin)
    assert answer.status_code == 422
    assert answer.json() == {
        "detail": [
            {
                "type": "invalid_name",
                "loc": [],
                "msg": "name 'a/b' may not contain '/'",
                "input": None,
            }
        ]
    }


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (b"\xff\xfe{", "codec can't decode"),  # not UTF-8 (nor UTF-16) text
        (b'{"full": "\xff"}', "'utf-8' codec can't decode byte 0xff"),
        (b"[" * 100_000, "maximum recursion depth exceeded"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "maximum recursion depth exceeded"),
    ],
    ids=["utf-16-ish", "not-utf-8", "deep-array", "deep-object"],
)
@pytest.mark.parametrize("path", [f"{BASE}/{NAME}/promote", "/api/v1/alertmanager"])
def test_a_body_that_is_not_even_json_text_is_422(
    world: World, client: TestClient, admin: dict[str, str], content: bytes, cause: str, path: str
) -> None:
    before = world.get()["metadata"]["resourceVersion"]
    answer = client.post(
        path, headers={**admin, "Content-Type": "application/json"}, content=content
    )
    assert answer.status_code == 422  # FastAPI's own answer is 400
    [error] = answer.json()["detail"]
    assert (error["type"], error["loc"]) == ("json_invalid", ["body"])
    assert error["msg"].startswith("the body is not JSON: ")
    assert cause in error["msg"]
    assert world.get()["metadata"]["resourceVersion"] == before


def test_other_http_errors_keep_their_status_and_headers(
    client: TestClient, admin: dict[str, str]
) -> None:
    assert client.get("/nowhere").json() == {"detail": "Not Found"}
    assert client.put(f"{BASE}/{NAME}", headers=admin).status_code == 405
    answer = client.get("/api/v1/canaries")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="canary-controller"'


def test_the_openapi_document_declares_what_each_route_answers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    one = "/api/v1/namespaces/{namespace}/canaries/{name}"
    declared = {
        (path, method): set(operation["responses"])
        for path, methods in paths.items()
        for method, operation in methods.items()
    }
    assert declared[("/api/v1/canaries", "get")] == {"200", "401", "403", "502", "503"}
    assert declared[("/api/v1/namespaces/{namespace}/canaries", "get")] == {
        "200",
        "401",
        "403",
        "404",
        "422",
        "502",
        "503",
    }
    assert declared[(one, "get")] == {"200", "401", "403", "404", "422", "502", "503"}
    assert declared[(f"{one}/promote", "post")] == {
        "202",
        "401",
        "403",
        "404",
        "409",
        "413",
        "422",
        "502",
        "503",
    }
    assert declared[("/api/v1/alertmanager", "post")] == {"200", "401", "413", "422", "502", "503"}
    assert declared[("/api/v1/git/webhook", "post")] == {"202", "401", "404", "413"}
    unauthorized = paths[one]["get"]["responses"]["401"]
    assert unauthorized["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorDetail"
    }
    params = {p["name"]: p["schema"] for p in paths[one]["get"]["parameters"]}
    assert params["namespace"]["pattern"] == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    assert params["namespace"]["maxLength"] == 63
    assert params["name"]["maxLength"] == 253
    assert params["name"]["pattern"].startswith("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.")


@pytest.mark.parametrize("path", [f"{BASE}/x%0A", "/api/v1/namespaces/team-a%0A/canaries"])
def test_a_trailing_newline_is_no_name(
    world: World, everywhere: TestClient, admin: dict[str, str], path: str
) -> None:
    """Python's ``$`` matches before a final newline; the path's pattern does not."""
    world.kube.reset_calls()
    answer = everywhere.get(path, headers=admin)
    assert answer.status_code == 422, answer.text
    assert world.kube.count() == 0
