"""Promote and abort through the page, as a user who may and one who may not.

Each confirms in the dialog; the server's answer is on the page: for the operator, the intent is
recorded on the ModelCanary (what ``kubectl canary promote`` / ``abort`` record); the viewer
(``get`` and ``list`` in its namespace only) sees the verbs greyed out with the server's reason,
a verb sent anyway is refused (403), and the canary is unchanged. Run over
the fake cluster's TokenReview / SubjectAccessReview and over the real kube-apiserver's, with
ServiceAccount tokens from the TokenRequest API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import dashboard as d
from support.realkube import new_namespace

from controlplane.api.app import create_app
from controlplane.api.auth import Authenticator
from controlplane.api.config import ApiConfig
from controlplane.api.server import ApiServer
from controlplane.kube.client import KubeClient, Obj, canary_ref
from controlplane.rollout.intents import INTENT_ANNOTATION
from controlplane.spec.models import API_GROUP
from harness.cluster.kubeapi import kubeconfig
from harness.kube.fake import FakeKube

pytestmark = pytest.mark.binary  # Playwright's driver and Chromium; kube-apiserver and etcd

NAME = "support-triage"


@dataclass
class Stage:
    """A canary at step 2 behind the API, and two tokens: may act, may only read."""

    kube: KubeClient
    url: str
    namespace: str
    operator: str
    viewer: str
    loopback: Any = None

    def canary(self) -> Obj:
        return self.kube.get(canary_ref(self.namespace, NAME))

    def verbs(self) -> list[str]:
        value = (self.canary()["metadata"].get("annotations") or {}).get(INTENT_ANNOTATION)
        return [i["verb"] for i in json.loads(value)] if value else []

    def page_url(self, token: str) -> str:
        return f"{self.url}/dashboard/#token={token}"


@contextmanager
def fake_stage() -> Iterator[Stage]:
    kube = FakeKube()
    d.put(kube, d.canary(NAME, status=d.progressing(time.time() - 2 * d.HOUR)))
    d.add_user(kube, "operator-token", "olivia", ["get", "list", "watch", "patch"])
    d.add_user(kube, "viewer-token", "victor", ["get", "list", "watch"])
    with d.serve(kube, static_token=None) as server:
        yield Stage(kube, server.url, d.NS, "operator-token", "viewer-token")


def _service_account(kube: KubeClient, namespace: str, name: str, verbs: list[str]) -> None:
    rbac = "rbac.authorization.k8s.io"
    meta = {"name": name, "namespace": namespace}
    rule = {"apiGroups": [API_GROUP], "resources": ["modelcanaries"]}
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    kube.create(
        {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": meta,
         "rules": [{**rule, "verbs": verbs}]}
    )  # fmt: skip
    subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    kube.create(
        {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": rbac, "kind": "Role", "name": name}, "subjects": [subject]}
    )  # fmt: skip
    # no right across the cluster: the list page shows the namespaces it may list (issue 38)


@contextmanager
def real_stage(request: pytest.FixtureRequest) -> Iterator[Stage]:
    loopback = request.getfixturevalue("loopback")
    kube = request.getfixturevalue("real_kube")
    ns = new_namespace(kube, "dash")
    obj = d.canary(NAME, ns)
    kube.create(obj)
    stored = kube.get(canary_ref(ns, NAME))
    stored["status"] = d.as_written(d.progressing(time.time() - 2 * d.HOUR))
    kube.replace_status(stored)
    _service_account(kube, ns, "operator", ["get", "list", "watch", "patch"])
    _service_account(kube, ns, "viewer", ["get", "list", "watch"])
    app = create_app(ApiConfig(kube=kube, auth=Authenticator(kube=kube)))
    with ApiServer(app) as server:
        yield Stage(
            kube,
            server.url,
            ns,
            d.token_of(loopback, ns, "operator"),
            d.token_of(loopback, ns, "viewer"),
            loopback,
        )


@pytest.fixture(params=["fake", "real"])
def stage(request: pytest.FixtureRequest) -> Iterator[Stage]:
    make: Callable[[], AbstractContextManager[Stage]] = (
        fake_stage if request.param == "fake" else lambda: real_stage(request)
    )
    with make() as s:
        yield s


def _act(page: Any, stage: Stage, token: str, verb: str) -> str:
    """Open the canary, press ``verb``, confirm; the outcome's words."""
    page.goto(stage.page_url(token))
    # the real cluster is shared: other tests' canaries of the same name are listed too
    page.locator(f"tr[data-canary='{stage.namespace}/{NAME}'] a").click()
    page.wait_for_selector("[data-testid=step]")
    page.locator(f"button[data-verb={verb}]").click()
    dialog = page.locator("dialog[open]")
    dialog.wait_for()
    assert NAME in dialog.inner_text()
    dialog.locator("button[data-confirm]").click()
    outcome = page.locator("[data-testid=action-outcome]")
    outcome.wait_for()
    return str(outcome.inner_text())


def test_an_operator_promotes_then_aborts(
    page: Any, stage: Stage, shoot: Callable[[Any, str], Path]
) -> None:
    said = _act(page, stage, stage.operator, "promote")
    assert said.startswith("Promote: asked by"), said
    assert stage.verbs() == ["promote"]
    said = _act(page, stage, stage.operator, "abort")
    assert said.startswith("Abort: asked by"), said
    assert stage.verbs() == ["promote", "abort"]


def test_a_viewer_is_told_why_it_may_not_act_and_nothing_changes(
    page: Any, stage: Stage, shoot: Callable[[Any, str], Path]
) -> None:
    """The viewer finds its canary on the list page (a right in its namespace only, on the real
    cluster), is offered no verb, only the authorizer's reason, and a verb sent anyway is refused
    (403) with nothing changed."""
    before = stage.canary()
    page.goto(stage.page_url(stage.viewer))
    page.locator(f"tr[data-canary='{stage.namespace}/{NAME}'] a").click()
    page.wait_for_selector("[data-testid=step]")
    why = page.locator("[data-testid=no-access]")
    why.wait_for()
    assert "patch" in why.inner_text()  # the server's reason names what is missing
    assert page.locator("section.actions button[data-verb]").count() == 0
    status = page.evaluate(
        """async ([ns, name]) => {
          const token = sessionStorage.getItem("canary-dashboard-token");
          const res = await fetch(`/api/v1/namespaces/${ns}/canaries/${name}/promote`, {
            method: "POST", headers: {Authorization: `Bearer ${token}`}});
          return res.status;
        }""",
        [stage.namespace, NAME],
    )
    assert status == 403
    after = stage.canary()
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert stage.verbs() == []
    shoot(page, "refused")


@contextmanager
def kubectl_canary_dashboard(stage: Stage, token: str, who: str, tmp: Path) -> Iterator[str]:
    """``kubectl canary dashboard -n NS`` run as a user would, with a kubeconfig of ``token``;
    the URL it prints (its one-time token in the fragment)."""
    config = tmp / f"{who}.kubeconfig"
    config.write_text(
        yaml.safe_dump(kubeconfig(stage.loopback.server, stage.loopback.ca, token, who))
    )
    argv = [sys.executable, "-m", "controlplane.cli.main", "dashboard", "--kubeconfig",
            str(config), "-n", stage.namespace, "--port", "0", "--no-browser"]  # fmt: skip
    env = {**os.environ, "HOME": str(tmp)}
    log = tmp / f"{who}.stderr"
    with log.open("w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        said = f"{line}{log.read_text()}"
        assert line.startswith(f"Dashboard of namespace '{stage.namespace}' as "), said
        yield line.rsplit(": ", 1)[1].strip()
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
        assert code == 0, log.read_text()  # SIGTERM: a clean stop


@pytest.mark.parametrize("stage", ["real"], indirect=True)
def test_kubectl_canary_dashboard_in_the_browser_acts_as_the_kubeconfig_user(
    page: Any, stage: Stage, tmp_path: Path
) -> None:
    """The dashboard verb, run as a process with each ServiceAccount's kubeconfig: the viewer's
    page offers no verb, only the API server's answer to its SelfSubjectAccessReview; the
    operator's page promotes, recorded as the operator (the kubeconfig's user, not a token's)."""
    with kubectl_canary_dashboard(stage, stage.viewer, "viewer", tmp_path) as url:
        page.goto(url)
        page.locator(f"tr[data-canary='{stage.namespace}/{NAME}'] a").click()
        why = page.locator("[data-testid=no-access]")
        why.wait_for()
        assert "patch" in why.inner_text()
        assert page.locator("button[data-verb]").count() == 0
    assert stage.verbs() == []
    with kubectl_canary_dashboard(stage, stage.operator, "operator", tmp_path) as url:
        page.goto(url)
        page.locator(f"tr[data-canary='{stage.namespace}/{NAME}'] a").click()
        page.wait_for_selector("[data-testid=step]")
        page.locator("button[data-verb=promote]").click()
        page.locator("dialog[open] button[data-confirm]").click()
        said = page.locator("[data-testid=action-outcome]")
        said.wait_for()
        operator = f"system:serviceaccount:{stage.namespace}:operator"
        assert said.inner_text().startswith(f"Promote: asked by {operator}"), said.inner_text()
    assert stage.verbs() == ["promote"]
