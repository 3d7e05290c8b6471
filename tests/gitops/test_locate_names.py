"""Write-back's lookup of an Argo CD Application refuses tracking ids that are no Kubernetes names.

Whoever may edit a ModelCanary writes its ``argocd.argoproj.io/tracking-id`` annotation and its
``app.kubernetes.io/instance`` label; :func:`controlplane.gitops.locate.locate` reads the
Application they name with the controller's credentials. A tracking id of
``argocd_../../../../../../api/v1/namespaces/payments/secrets/db-creds:...`` once addressed a
Secret (the HTTP client collapses ``..``), and the error told an existing Secret ("has no git
source") from a missing one ("not found"). Now the Application's namespace and name are checked
first: a :class:`~controlplane.errors.WriteBackError` that is the same whatever exists, and no
request. Run on FakeKube and on the real kube-apiserver (``binary``), with Argo CD's Application
CRD installed (the loopback cluster has no Argo CD), next to a control lookup that works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from support.canaries import canary_dict
from support.gitops_world import APPLICATION_CRD

from controlplane.errors import WriteBackError
from controlplane.gitops.locate import (
    ARGOCD_API_VERSION,
    ARGOCD_INSTANCE_LABEL,
    ARGOCD_TRACKING_ANNOTATION,
    locate,
)
from controlplane.kube.client import KubeClient, Obj, Ref
from harness.kube.fake import FakeKube

REPO = "https://git.example.com/ml/canaries.git"


@dataclass
class Gets:
    """A KubeClient that records every ``get`` before passing it on (locate only reads)."""

    inner: KubeClient
    refs: list[Ref] = field(default_factory=list)

    def get(self, ref: Ref) -> Obj:
        self.refs.append(ref)
        return self.inner.get(ref)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Cluster:
    kube: KubeClient
    argocd: str
    payments: str


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.binary)])
def cluster(request: pytest.FixtureRequest) -> Cluster:
    if request.param == "fake":
        built = Cluster(FakeKube(), "argocd", "payments")
    else:
        from support.realkube import new_namespace

        from harness.cluster.kubeapi import install_crds

        loopback = request.getfixturevalue("loopback")
        kube = request.getfixturevalue("real_kube")
        install_crds(loopback, [APPLICATION_CRD])
        built = Cluster(kube, new_namespace(kube, "argocd"), new_namespace(kube, "payments"))
    built.kube.create(
        {
            "apiVersion": ARGOCD_API_VERSION,
            "kind": "Application",
            "metadata": {"name": "ml-models", "namespace": built.argocd},
            "spec": {"source": {"repoURL": REPO, "path": "apps", "targetRevision": "main"}},
        }
    )
    built.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db-creds", "namespace": built.payments},
            "stringData": {"password": "s3cret"},
        }
    )
    return built


def tracking(app: str) -> dict[str, Any]:
    """Canary metadata with the tracking-id annotation naming Application ``app``
    (``<namespace>_<name>`` or not)."""
    value = f"{app}:canary.controlplane.dev/ModelCanary:ml-serving/support-triage"
    return {"annotations": {ARGOCD_TRACKING_ANNOTATION: value}}


def test_a_valid_tracking_id_reads_the_application(cluster: Cluster) -> None:
    kube = Gets(cluster.kube)
    found = locate(kube, canary_dict(metadata=tracking(f"{cluster.argocd}_ml-models")), None)
    assert (found.repo, found.path, found.branch, found.origin) == (REPO, "apps", "main", "argocd")
    assert kube.refs == [Ref(ARGOCD_API_VERSION, "Application", cluster.argocd, "ml-models")]


def refusal(kube: Gets, obj: Obj) -> str:
    with pytest.raises(WriteBackError) as caught:
        locate(kube, obj, None, argocd_namespace="argocd")
    return str(caught.value)


def test_a_traversing_tracking_id_asks_nothing_and_is_no_oracle(cluster: Cluster) -> None:
    kube = Gets(cluster.kube)
    up = "../" * 6
    messages: list[str] = []
    for secret in ("db-creds", "no-such-1"):
        name = f"{up}api/v1/namespaces/{cluster.payments}/secrets/{secret}"
        message = refusal(kube, canary_dict(metadata=tracking(f"{cluster.argocd}_{name}")))
        assert "does not name an Argo CD Application" in message
        assert "not a valid Kubernetes name" in message
        messages.append(message.replace(secret, "<name>"))
    assert messages[0] == messages[1]
    assert kube.refs == []


@pytest.mark.parametrize(
    "app",
    [
        "../kube-system_ml-models",  # the namespace part leaves the namespace
        "argocd_ml-models?labelSelector=x",
        "argocd_ml-models#x",
        "argocd_ML-Models",
        "argocd_",
        "a.b_ml-models",  # a namespace is a label: no dots
    ],
)
def test_tracking_ids_that_are_no_names_are_refused_before_any_get(
    cluster: Cluster, app: str
) -> None:
    kube = Gets(cluster.kube)
    message = refusal(kube, canary_dict(metadata=tracking(app)))
    assert f"annotation {ARGOCD_TRACKING_ANNOTATION}" in message
    assert kube.refs == []


def test_the_instance_label_is_checked_the_same(cluster: Cluster) -> None:
    kube = Gets(cluster.kube)
    message = refusal(kube, canary_dict(metadata={"labels": {ARGOCD_INSTANCE_LABEL: "ml..models"}}))
    assert f"label {ARGOCD_INSTANCE_LABEL}" in message
    assert kube.refs == []


def test_an_application_of_another_namespace_is_not_where_the_canary_came_from(
    cluster: Cluster,
) -> None:
    """The tracking annotation is the canary owner's to write: pointed at another team's
    Application (one deploying into another namespace), write-back refuses to follow it."""
    cluster.kube.create(
        {
            "apiVersion": ARGOCD_API_VERSION,
            "kind": "Application",
            "metadata": {"name": "payments-app", "namespace": cluster.argocd},
            "spec": {
                "source": {"repoURL": "https://git.example.com/payments/deploy.git"},
                "destination": {"namespace": cluster.payments},
            },
        }
    )
    with pytest.raises(WriteBackError, match="deploys into namespace") as caught:
        locate(cluster.kube, canary_dict(metadata=tracking(f"{cluster.argocd}_payments-app")), None)
    assert "payments/deploy.git" not in str(caught.value)
    own = {"source": {"repoURL": REPO, "path": "apps"}, "destination": {"namespace": "ml-serving"}}
    cluster.kube.create(
        {
            "apiVersion": ARGOCD_API_VERSION,
            "kind": "Application",
            "metadata": {"name": "own-app", "namespace": cluster.argocd},
            "spec": own,
        }
    )
    found = locate(cluster.kube, canary_dict(metadata=tracking(f"{cluster.argocd}_own-app")), None)
    assert found.repo == REPO
