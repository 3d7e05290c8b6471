"""Issue 33's path traversal through names, replayed on the real kube-apiserver through the API.

The auditor's setting: a caller whose only rights are ``get`` / ``list`` / ``patch`` on
ModelCanaries in ``team-a`` (a ServiceAccount with a Role and RoleBinding, its token minted by
the TokenRequest API; the API checks it with a real TokenReview and SubjectAccessReview). The
API's own client is the cluster admin, the strongest credentials it could run with, so nothing
but the name checks stands between the caller and other namespaces: the answers of the server
are not what keeps the victims safe.

Before the fix, ``POST /api/v1/alertmanager`` with the label ``canary:
../../team-b/modelcanaries/victim`` aborted team-b's canary (the HTTP client collapsed ``..``),
``../../../../../../api/v1/namespaces/payments/configmaps/victim`` wrote the intent annotation
onto a ConfigMap, a Secret's name answered differently from a missing one (an existence
oracle), and ``GET .../canaries/%3FlabelSelector%3Dx`` listed. Each test asserts what is on the
server afterwards, next to a control alert that does abort the caller's own canary (so the
token, RBAC and API are shown to work).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.api import canary as api_canary
from support.realkube import new_namespace

from controlplane.api.app import create_app
from controlplane.api.auth import Authenticator
from controlplane.api.config import ApiConfig
from controlplane.kube.client import Obj, Ref, canary_ref
from controlplane.kube.real import RealKube
from controlplane.rollout.intents import INTENT_ANNOTATION
from controlplane.spec.models import API_GROUP
from harness.cluster.kubeapi import LoopbackCluster

pytestmark = pytest.mark.binary

CALLER = "alertmanager"


@dataclass
class Tenants:
    """team-a (the caller's), team-b and payments (the victims'), and the API in front."""

    kube: RealKube
    team_a: str
    team_b: str
    payments: str
    api: TestClient
    headers: dict[str, str]
    woken: list[tuple[str, str]] = field(default_factory=list)

    def victims(self) -> dict[str, Obj]:
        """Every victim as stored now (resourceVersion, annotations, data)."""
        return {
            "team-b canary": self.kube.get(canary_ref(self.team_b, "victim")),
            "payments configmap": self.kube.get(Ref("v1", "ConfigMap", self.payments, "victim")),
            "payments secret": self.kube.get(Ref("v1", "Secret", self.payments, "db-creds")),
            "team-a canary": self.kube.get(canary_ref(self.team_a, "mine")),
        }

    def alert(self, namespace: str, canary: str) -> dict[str, Any]:
        """POST one firing alert with these labels; the one result."""
        answer = self.api.post(
            "/api/v1/alertmanager",
            headers=self.headers,
            json={
                "version": "4",
                "status": "firing",
                "receiver": "canary-controller",
                "alerts": [
                    {
                        "status": "firing",
                        "labels": {
                            "alertname": "CandidateErrorsHigh",
                            "namespace": namespace,
                            "canary": canary,
                        },
                        "fingerprint": "f1",
                    }
                ],
            },
        )
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert len(results) == 1
        return dict(results[0])


def token_of(loopback: LoopbackCluster, namespace: str, name: str) -> str:
    """A token of ServiceAccount ``namespace/name`` from the TokenRequest API."""
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    token: str = loopback.request("POST", path, body)["status"]["token"]
    return token


@pytest.fixture
def tenants(loopback: LoopbackCluster, real_kube: RealKube) -> Iterator[Tenants]:
    kube = real_kube
    team_a, team_b = new_namespace(kube, "team-a"), new_namespace(kube, "team-b")
    payments = new_namespace(kube, "payments")
    kube.create(api_canary("victim", namespace=team_b))
    kube.create(api_canary("mine", namespace=team_a))
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "victim", "namespace": payments},
            "data": {"owner": "payments"},
        }
    )
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db-creds", "namespace": payments},
            "stringData": {"password": "s3cret"},
        }
    )
    meta = {"name": CALLER, "namespace": team_a}
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [
                {
                    "apiGroups": [API_GROUP],
                    "resources": ["modelcanaries"],
                    "verbs": ["get", "list", "patch"],
                }
            ],
        }
    )
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CALLER},
            "subjects": [{"kind": "ServiceAccount", "name": CALLER, "namespace": team_a}],
        }
    )
    woken: list[tuple[str, str]] = []
    app = create_app(
        ApiConfig(
            kube=kube,
            auth=Authenticator(kube=kube),
            wake=lambda ns, name: woken.append((ns, name)),
        )
    )
    headers = {"Authorization": f"Bearer {token_of(loopback, team_a, CALLER)}"}
    with TestClient(app) as api:
        yield Tenants(kube, team_a, team_b, payments, api, headers, woken)


def intents(obj: Obj) -> list[dict[str, Any]]:
    value = (obj["metadata"].get("annotations") or {}).get(INTENT_ANNOTATION)
    return list(json.loads(value)) if value else []


def test_the_control_alert_aborts_the_callers_own_canary(tenants: Tenants) -> None:
    """The token, the Role and the API work: an alert for team-a's own canary aborts it."""
    result = tenants.alert(tenants.team_a, "mine")
    assert result["result"] == "aborted", result
    mine = tenants.kube.get(canary_ref(tenants.team_a, "mine"))
    assert [(i["verb"], i["user"]) for i in intents(mine)] == [
        ("abort", "alertmanager:CandidateErrorsHigh")
    ]
    assert tenants.woken == [(tenants.team_a, "mine")]
    other = tenants.alert(tenants.team_b, "victim")  # the Role is team-a's only
    assert other["result"] == "forbidden", other


def test_a_label_traversing_to_another_namespaces_canary_changes_nothing(
    tenants: Tenants,
) -> None:
    before = tenants.victims()
    result = tenants.alert(tenants.team_a, f"../../{tenants.team_b}/modelcanaries/victim")
    assert result["result"] == "invalid", result
    assert "not a valid Kubernetes name" in result["detail"]
    after = tenants.victims()
    assert intents(after["team-b canary"]) == []
    assert after == before
    assert tenants.woken == []


def test_a_label_traversing_to_a_configmap_changes_nothing(tenants: Tenants) -> None:
    before = tenants.victims()
    name = f"../../../../../../api/v1/namespaces/{tenants.payments}/configmaps/victim"
    result = tenants.alert(tenants.team_a, name)
    assert result["result"] == "invalid", result
    after = tenants.victims()
    assert INTENT_ANNOTATION not in (
        after["payments configmap"]["metadata"].get("annotations") or {}
    )
    assert after == before


def test_a_secrets_name_answers_as_a_missing_one(tenants: Tenants) -> None:
    """No existence oracle: the Secret that exists and one that does not get the same answer."""
    before = tenants.victims()
    where = f"../../../../../../api/v1/namespaces/{tenants.payments}/secrets/"
    answers = []
    for name in ("db-creds", "no-such-secret"):
        result = tenants.alert(tenants.team_a, where + name)
        answers.append(
            {k: str(v).replace(name, "<name>") for k, v in result.items() if k != "fingerprint"}
        )
    assert answers[0] == answers[1]
    assert answers[0]["result"] == "invalid"
    assert tenants.victims() == before


def test_a_namespace_label_that_leaves_the_namespace_changes_nothing(tenants: Tenants) -> None:
    before = tenants.victims()
    for namespace in (f"{tenants.team_a}/../{tenants.team_b}", f"../{tenants.team_b}"):
        result = tenants.alert(namespace, "victim")
        assert result["result"] == "invalid", result
    assert tenants.victims() == before


def test_a_query_in_a_name_on_the_api_path_is_a_4xx_not_a_list(tenants: Tenants) -> None:
    base = f"/api/v1/namespaces/{tenants.team_a}/canaries"
    listed = tenants.api.get(base, headers=tenants.headers)
    assert listed.status_code == 200
    assert [c["name"] for c in listed.json()["items"]] == ["mine"]
    answer = tenants.api.get(f"{base}/%3FlabelSelector%3Dx", headers=tenants.headers)
    assert 400 <= answer.status_code < 500, answer.text
    assert "items" not in answer.json()
    assert "mine" not in answer.text


def test_action_paths_with_traversing_or_query_names_change_nothing(tenants: Tenants) -> None:
    before = tenants.victims()
    base = f"/api/v1/namespaces/{tenants.team_a}/canaries"
    for name in (
        f"..%2F..%2F{tenants.team_b}%2Fmodelcanaries%2Fvictim",
        "%3FlabelSelector%3Dx",
        "mine%23x",
        "..",
    ):
        answer = tenants.api.post(f"{base}/{name}/abort", headers=tenants.headers)
        assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text)
    assert tenants.victims() == before
    assert tenants.woken == []
