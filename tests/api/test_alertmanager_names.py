"""Alertmanager labels that are no Kubernetes names, and kube errors, as per-alert results (fake).

The fast-tier half of tests/api/test_api_names_real.py: a label naming a canary or namespace
that is no DNS-1123 name is ``invalid``, decided before any review or lookup (the fake logs no
call at all), and an error of the API server while a canary is read or written is ``error``
with no server text in the answer, never a 502/503 whose detail would tell the caller what
exists. The operations and the command line refuse such names the same way.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.api import NAME, NS, World

from controlplane import operations
from controlplane.cli.cluster import Runtime
from controlplane.cli.main import main
from controlplane.errors import Forbidden, InvalidName, KubeError, NotFound

URL = "/api/v1/alertmanager"


def firing(**labels: str) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "Probe", **labels}, "fingerprint": "f"}
        ],
    }


def result_of(
    client: TestClient, headers: dict[str, str], status: int = 200, **labels: str
) -> dict[str, Any]:
    answer = client.post(URL, headers=headers, json=firing(**labels))
    assert answer.status_code == status, answer.text
    (result,) = answer.json()["results"]
    return dict(result)


@pytest.mark.parametrize(
    ("namespace", "canary"),
    [
        (NS, f"../../other/modelcanaries/{NAME}"),
        (NS, "../../../../../../api/v1/namespaces/payments/configmaps/victim"),
        (NS, "?labelSelector=x"),
        (NS, f"{NAME}#x"),
        (NS, "Support-Triage"),
        (f"{NS}/../other", NAME),
        ("ML-Serving", NAME),
        ("a.b", NAME),
    ],
)
def test_labels_that_are_no_names_are_invalid_and_ask_nothing(
    world: World, client: TestClient, admin: dict[str, str], namespace: str, canary: str
) -> None:
    before = world.get()
    world.kube.reset_calls()
    result = result_of(client, admin, namespace=namespace, canary=canary)
    assert result["result"] == "invalid", result
    assert "not a valid Kubernetes name" in result["detail"]
    assert world.kube.calls == []
    assert world.get() == before
    assert world.woken == []


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            Forbidden('403 Forbidden: secrets "db-creds" is forbidden: User "x" cannot update'),
            "refused the API's own ServiceAccount",
        ),
        (KubeError('503: etcd leader changed while reading "db-creds"'), "could not be asked"),
    ],
)
@pytest.mark.parametrize("verb", ["get", "patch"])
def test_kube_errors_are_a_per_alert_error_without_the_servers_text(
    world: World, client: TestClient, admin: dict[str, str], error: KubeError, says: str, verb: str
) -> None:
    world.kube.fail_next(verb, error)
    result = result_of(client, admin, 503, namespace=NS, canary=NAME)  # Alertmanager re-sends
    assert result["result"] == "error", result
    assert says in result["detail"]
    assert "db-creds" not in str(result)
    assert world.woken == []


def test_operations_refuse_names_before_asking(world: World) -> None:
    world.kube.reset_calls()
    with pytest.raises(InvalidName, match="modelcanary name"):
        operations.get_canary(world.kube, NS, f"../../other/modelcanaries/{NAME}")
    with pytest.raises(InvalidName, match="namespace"):
        operations.record_intent(world.kube, "../other", NAME, "abort")
    with pytest.raises(InvalidName, match="namespace"):
        operations.list_canaries(world.kube, "Other")
    assert world.kube.calls == []


def test_operations_never_act_on_another_object_than_asked(world: World) -> None:
    """Belt and braces: an answer that is not the canary asked for is NotFound."""

    class Elsewhere:
        def get(self, ref: Any) -> dict[str, Any]:
            obj = world.kube.get(ref)
            obj["metadata"]["namespace"] = "other"
            return obj

    with pytest.raises(NotFound, match="not found"):
        operations.get_canary(Elsewhere(), NS, NAME)  # type: ignore[arg-type]


def test_the_cli_exits_2_for_a_name_that_is_no_name(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = Runtime(kube=world.kube, clock=world.clock)
    world.kube.reset_calls()
    code = main(["abort", "-n", NS, "../../other/modelcanaries/x"], runtime=runtime)
    assert code == 2
    assert "is not a valid Kubernetes name" in capsys.readouterr().err
    assert world.kube.calls == []
