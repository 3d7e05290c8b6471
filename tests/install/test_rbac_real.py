"""RBAC for real: the product runs with the token of the ServiceAccount the chart creates, on the
RBAC-enforcing loopback kube-apiserver, in the cluster scope and in the namespaced scope.

``helm install`` puts the chart on the server (git source, gates, Argo CD namespace and, in the
namespaced scope, two watched namespaces set through values); a TokenRequest mints the
ServiceAccount's token, as the kubelet would mount it; ``canaryctl controller`` is then wired
in-process from the Deployment's own arguments (:class:`Product`: controller, leader election,
alerts, git source, write-back, HTTP API) on a RealKube of that token, with an injected clock.
:class:`~harness.kube.isvc_standin.IsvcStandin` plays KServe with the admin token.

One scenario per scope uses every feature: the git source applies three canaries (server-side
apply), a gate runs through the Argo Server before a step, a user promotes two canaries through the
API (TokenReview and SubjectAccessReview on the real server), Alertmanager aborts one, two
never-ready candidates roll back at the progress deadline and are written back to git (one found
through its source annotation, one through its Argo CD Application), a quality canary's pairer is
made, read through the API server's Service proxy and deleted with its rollback, alerts are
delivered with a signing Secret and deduplicated in their ledger ConfigMap, the git source
re-applies the reverted file and prunes a removed one, and the finalizers clean up. Every request
the product sent is recorded off its HTTP client: none was refused, and the set of (group,
resource, verb) it used is exactly the set the chart grants (but the named exceptions). Verbs the
chart does not grant are refused with 403 by the server, and the product surfaces them as a
``KubeError`` carrying the server's reason.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from support.canaries import FP8_ONE_CHECK, canary_dict
from support.chart import (
    Doc,
    Grant,
    Helm,
    RequestLog,
    grants_of,
    service_account_kubeconfig,
    service_account_token,
)
from support.gitops_world import APPLICATION_CRD, Remote
from support.pairs import rolled_out
from support.real_world import ServerView

from controlplane import operations
from controlplane.cli import controller as cli
from controlplane.controller.metrics import ControllerMetrics
from controlplane.errors import Forbidden, KubeError, NotFound
from controlplane.gitops.options import build as build_git
from controlplane.gitops.source import GitSource
from controlplane.kube.client import Obj, Ref, canary_ref
from controlplane.kube.real import RealKube
from controlplane.notify import AlertNotifier, NotifySettings
from controlplane.spec.models import API_GROUP, API_VERSION, KIND
from harness.cluster.gateways import gateway_objects
from harness.cluster.kubeapi import LoopbackCluster, install_crds
from harness.cluster.traefik import CONTROLLER as TRAEFIK
from harness.kube.isvc_standin import IsvcStandin
from harness.servers.argo_fake import ArgoFake, running_argo
from harness.servers.receiver import Receiver, receiving

pytestmark = [pytest.mark.binary, pytest.mark.xdist_group("rbac-real"), pytest.mark.timeout(300)]

HMAC_KEY = "alert-signing-key"
# Granted and never a request of its own: kube-apiserver checks it (OwnerReferencesPermission-
# Enforcement, an admission plugin clusters such as OpenShift enable) when the controller sets
# blockOwnerDeletion on an owner reference to a ModelCanary.
GRANTED_NOT_REQUESTED: dict[Grant, str] = {
    ("canary.controlplane.dev", "modelcanaries/finalizers", "update"): "owner references",
    ("", "pods", "list"): "the pods of a candidate read not ready, listed by its Deployment's "
    "selector (the KServe stand-in here keeps no Deployment for a candidate that is not ready; "
    "tests/routing/test_real_rollout.py's crash-looping candidate has them listed by the "
    "controller's pod on the chart's RBAC)",
    ("gateway.networking.k8s.io", "httproutes", "list"): "the routes read when a candidate "
    "gets no request (none is starved here; tests/controller/test_controller_starved.py "
    "reads them on the real API server)",
    **{
        ("monitoring.coreos.com", "podmonitors", verb): "an adopted stable's PodMonitor (no "
        "adopting canary here; tests/routing/test_real_adopt.py runs the controller on the "
        "chart's ServiceAccount token, which applies and deletes it)"
        for verb in ("get", "create", "patch", "delete")
    },
}


# ----------------------------------------------------------------------------- the install


@dataclass
class Install:
    """The chart installed in one scope, and what the scenario around it needs."""

    scope: str
    cluster: LoopbackCluster
    admin: RealKube
    helm: Helm
    release: str
    namespace: str
    watched: tuple[str, str]
    other: str
    argocd: str
    remote: Remote
    argo: ArgoFake
    receiver: Receiver
    manifest: list[Doc]
    kubeconfig: Path
    token: str

    @property
    def service_account(self) -> str:
        return f"{self.release}-controlplane"

    def args(self) -> list[str]:
        """The controller's command line as the chart's Deployment runs it."""
        (deployment,) = [d for d in self.manifest if d["kind"] == "Deployment"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        return list(container["args"])

    def grants(self) -> dict[Grant, set[str | None]]:
        return grants_of(self.manifest, self.namespace, self.service_account)

    def user(self, name: str, verbs: list[str], namespace: str) -> str:
        """A token of a new ServiceAccount ``name`` allowed ``verbs`` on ModelCanaries there."""
        users = f"{self.release}-users"
        ensure(self.admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": users}})
        account = {"name": name, "namespace": users}
        ensure(self.admin, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": account})
        if verbs:
            rbac = "rbac.authorization.k8s.io"
            meta = {"name": f"{users}-{name}", "namespace": namespace}
            rule = {"apiGroups": [API_GROUP], "resources": ["modelcanaries"], "verbs": verbs}
            role = {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": meta, "rules": [rule]}
            self.admin.create(role)
            self.admin.create(
                {
                    "apiVersion": f"{rbac}/v1",
                    "kind": "RoleBinding",
                    "metadata": meta,
                    "roleRef": {"apiGroup": rbac, "kind": "Role", "name": meta["name"]},
                    "subjects": [{"kind": "ServiceAccount", **account}],
                }
            )
        return service_account_token(self.cluster, users, name)


def ensure(kube: RealKube, obj: Obj) -> None:
    try:
        kube.create(obj)
    except KubeError as exc:
        if "already exists" not in str(exc):
            raise


@dataclass(frozen=True)
class Names:
    """The names of one scope's install (cluster: ``rc-…``, namespaced: ``rn-…``)."""

    scope: str

    @property
    def prefix(self) -> str:
        return "rc" if self.scope == "cluster" else "rn"

    @property
    def release(self) -> str:
        return f"{self.prefix}-cp"

    @property
    def namespace(self) -> str:
        return f"{self.prefix}-system"

    @property
    def watched(self) -> tuple[str, str]:
        return (f"{self.prefix}-team-a", f"{self.prefix}-team-b")

    @property
    def other(self) -> str:
        return f"{self.prefix}-elsewhere"

    @property
    def argocd(self) -> str:
        return f"{self.prefix}-argocd"


@pytest.fixture(scope="module", params=["cluster", "namespaced"])
def installed(
    request: pytest.FixtureRequest,
    loopback: LoopbackCluster,
    real_kube: RealKube,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Install]:
    names = Names(request.param)
    tmp = tmp_path_factory.mktemp(f"rbac-{names.scope}")
    install_crds(loopback, [APPLICATION_CRD])
    for ns in (*names.watched, names.other, names.argocd):
        ensure(real_kube, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    # the Gateway of the gateway-api canaries and its class: the controller reads both
    # (controller/gateway_source.py) for the error rate's HTTP source
    for obj in gateway_objects(
        f"{names.prefix}-gateways", TRAEFIK, 80, gateway=(names.watched[0], "gw")
    ):
        ensure(real_kube, obj)
    for ns in names.watched:
        ensure(
            real_kube,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "alert-signing", "namespace": ns},
                "stringData": {"key": HMAC_KEY},
            },
        )
    remote = Remote(tmp, "team/models.git")
    with running_argo() as argo, receiving() as receiver:
        values: dict[str, Any] = {
            "controller": {"prometheusUrl": "http://127.0.0.1:9"},  # refused at once
            "gates": {"argoServer": argo.url},
            "alerts": {"grafanaUrl": "https://grafana.example"},
            # the canaries' signed webhook (an administrator allows it; nothing is by default)
            "allowedEndpoints": {"alerts": [receiver.url]},
            "rbac": {"argoCDNamespace": names.argocd},
            "gitSource": {
                "repo": remote.url,
                "path": "canary",
                "prune": True,
                "namespace": names.watched[0],
            },
        }
        if names.scope == "namespaced":
            values["rbac"]["scope"] = "namespaced"
            values["watchNamespaces"] = list(names.watched)
        else:  # the cluster scope reads no Secret but those named (resourceNames)
            values["rbac"]["secretNames"] = ["alert-signing"]
        helm = Helm(loopback.kubeconfig, tmp / "helm")
        helm.install(names.release, names.namespace, values)
        try:
            sa = f"{names.release}-controlplane"
            path = tmp / "sa-kubeconfig"
            kubeconfig = service_account_kubeconfig(loopback, names.namespace, sa, path)
            token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
            argo.token = token  # the pod sends its ServiceAccount token to the Argo Server
            yield Install(
                names.scope, loopback, real_kube, helm, names.release, names.namespace,
                names.watched, names.other, names.argocd, remote, argo, receiver,
                helm.manifest(names.release, names.namespace), kubeconfig, token,
            )  # fmt: skip
        finally:
            helm.uninstall(names.release, names.namespace)


# ----------------------------------------------------------------------------- the product


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Product:
    """``canaryctl controller`` wired as :func:`controlplane.cli.controller.run` wires it, from
    the chart's arguments, on the ServiceAccount's kubeconfig, driven pass by pass."""

    def __init__(self, setup: Install, tmp: Path) -> None:
        self.setup = setup
        self.clock = Clock(time.time())  # alerts are sent for events of the last day only
        token_file = tmp / "sa-token"
        token_file.write_text(setup.token)
        parser = argparse.ArgumentParser()
        cli.add_parser(parser.add_subparsers())
        # pod-local details the chart leaves to the container: where the token is mounted, the
        # emptyDir the git mirrors live in, the pod's name
        local = [f"--argo-token-file={token_file}", f"--git-cache-dir={tmp / 'git'}"]
        self.args = parser.parse_args([*setup.args(), *local, "--identity=pod-1"])
        self.log = RequestLog()
        inner = self.log.attach(RealKube.connect(kubeconfig=str(setup.kubeconfig)))
        self.kube = ServerView(inner, self.clock)
        self.namespaces = list(self.args.namespace) or [None]
        metrics = ControllerMetrics()
        self.alerts = AlertNotifier(
            self.kube, NotifySettings(grafana_url=self.args.grafana_url), registry=metrics.registry
        )
        self.git = build_git(self.args, self.kube, self.clock)
        assert self.git.source is not None
        if self.args.namespace:
            self.git.source.namespaces = tuple(self.args.namespace)
        self.controller = cli.build(
            self.args,
            self.kube,
            self.clock,
            metrics=metrics,
            notifiers=[self.alerts, self.git.write_back],
        )
        self.api = TestClient(
            cli.api_app(
                self.args, self.kube, self.controller, metrics, on_git_push=self.git.on_git_push
            )
        )
        self.kserve = IsvcStandin(
            RealKube.connect(kubeconfig=str(setup.cluster.kubeconfig)),
            setup.watched,
            now=self.clock,
            ready_after_s=60,
        )

    @property
    def source(self) -> GitSource:
        assert self.git.source is not None
        return self.git.source

    def run_until(self, done: Callable[[], bool], limit_s: float, what: str) -> None:
        """Passes of the controller, the clock jumping to the next timer, until ``done()``."""
        end = self.clock.t + limit_s
        for _ in range(300):
            if done():
                return
            self.kserve.tick()
            roll_out_pairers(self.setup.admin, self.setup.watched)
            self.controller.poll(0.0)
            wake = self.controller.run_once()
            if done():
                return
            pending = [p for p in self.kserve.pending().values() if p > self.clock.t]
            wakes = [w for w in (wake, *pending) if w is not None]
            if not wakes or min(wakes) > end:
                raise AssertionError(f"not {what} by the limit: {self.phases()}")
            self.clock.t = max(self.clock.t, min(wakes))
        raise AssertionError(f"not {what} after 300 passes: {self.phases()}")

    def phases(self) -> dict[str, str]:
        found = {}
        for ns in self.setup.watched:
            for obj in self.setup.admin.list(API_VERSION, KIND, ns):
                status = obj.get("status") or {}
                why = status.get("reason") or [
                    c.get("message") for c in status.get("conditions") or [] if c.get("message")
                ]
                found[obj["metadata"]["name"]] = f"{status.get('phase')} ({why})"
        return found

    def close(self) -> None:
        self.api.close()
        self.alerts.close(10.0)
        self.git.close(10.0)


@pytest.fixture
def product(installed: Install, tmp_path: Path) -> Iterator[Product]:
    made = Product(installed, tmp_path)
    try:
        yield made
    finally:
        made.close()


# ----------------------------------------------------------------------------- canaries

TRAFFIC: dict[str, dict[str, Any]] = {
    "gateway-api": {"router": "gateway-api", "gateway": {"name": "gw"}},
    "istio": {"router": "istio"},  # the model's own host: its Service is applied and deleted
    "llmisvc": {"router": "llmisvc"},
}


# The canaries of these tests: fp8 of Llama, an hour at 10 % checking errors every 5 minutes,
# then all; no shadow, no budget. Each serves a model of its own (own_model) and alerts a signed
# webhook (signed_alerts).
BASE = canary_dict(
    base=FP8_ONE_CHECK,
    analysis={
        "interval": "5m",
        "window": "5m",
        "metrics": [{"name": "errors", "builtin": "error-rate"}],
    },
)


def own_model(name: str) -> dict[str, Any]:
    """``spec.model`` of canary ``name``: ``<name>-llm``, its own InferenceServices."""
    return {"name": f"{name}-llm", "maxModelLen": 4096}


def signed_alerts(receiver: Receiver, namespace: str, name: str) -> list[dict[str, Any]]:
    """``spec.alerts`` of canary ``name``: its steps, promotion and rollback to ``receiver`` at
    ``/<namespace>/<name>``, signed with Secret ``alert-signing``."""
    webhook = {
        "url": f"{receiver.url}/{namespace}/{name}",
        "hmacSecretRef": {"name": "alert-signing", "key": "key"},
    }
    return [{"webhook": webhook, "events": ["step", "promotion", "rollback"]}]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


PAIRERS = {"canary.controlplane.dev/component": "pairer"}
"""The label of a quality judge's pairer's objects."""


def quality_error(kube: RealKube, namespace: str, name: str) -> str:
    """Why the quality judge's last read of ``name``'s pairer failed ("": none failed yet)."""
    status = kube.get(canary_ref(namespace, name)).get("status") or {}
    return str((status.get("quality") or {}).get("error") or "")


def roll_out_pairers(admin: RealKube, namespaces: Sequence[str]) -> None:
    """What the Deployment controller (not run here) writes once a quality judge's pairer is
    available: its Deployment's status, rolled out."""
    for namespace in namespaces:
        for deployment in admin.list("apps/v1", "Deployment", namespace, PAIRERS):
            if deployment.get("status"):
                continue
            generation = deployment["metadata"].get("generation", 1)
            admin.replace_status({**deployment, "status": rolled_out(generation)})


def stage(kube: RealKube, namespace: str, name: str) -> str:
    try:
        obj = kube.get(canary_ref(namespace, name))
    except NotFound:
        return "gone"
    return str((obj.get("status") or {}).get("stage") or "none")


def isvcs(kube: RealKube, namespace: str, name: str) -> list[str]:
    items = kube.list(
        "serving.kserve.io/v1beta1",
        "InferenceService",
        namespace,
        {"canary.controlplane.dev/canary": name},
    )
    return sorted(o["metadata"]["name"] for o in items)


def reasons(kube: RealKube, namespace: str, name: str) -> list[str]:
    return [
        e["reason"]
        for e in kube.list("v1", "Event", namespace)
        if e["involvedObject"].get("name") == name
    ]


# ----------------------------------------------------------------------------- every feature


def test_every_feature_works_with_exactly_the_charts_rules(
    installed: Install, product: Product
) -> None:
    s, admin, p = installed, installed.admin, product
    a, b = s.watched
    # --- git: the source's files, a file Argo CD syncs, and (namespaced) one for elsewhere
    clone = s.remote.clone("dev")
    gated: dict[str, Any] = {
        "gates": [
            {
                "name": "profile",
                "before": "first-step",
                "workflowTemplate": {"name": "quantized-model-profile"},
            }
        ]
    }
    gw = canary_dict(
        "gw",
        a,
        base=BASE,
        model=own_model("gw"),
        traffic=TRAFFIC["gateway-api"],
        alerts=signed_alerts(s.receiver, a, "gw"),
        **gated,
        # a system prompt: a chat-template ConfigMap
        candidate={**BASE["spec"]["candidate"], "systemPrompt": "Answer briefly."},
    )
    ist = canary_dict(
        "ist",
        b,
        base=BASE,
        model=own_model("ist"),
        traffic=TRAFFIC["istio"],
        alerts=signed_alerts(s.receiver, b, "ist"),
    )
    nr = canary_dict(
        "nr",
        a,
        base=BASE,
        model=own_model("nr"),
        traffic=TRAFFIC["gateway-api"],
        alerts=signed_alerts(s.receiver, a, "nr"),
        gitWriteBack={},
    )
    argo_app = canary_dict(
        "argo",
        b,
        base=BASE,
        model=own_model("argo"),
        traffic=TRAFFIC["gateway-api"],
        alerts=signed_alerts(s.receiver, b, "argo"),
        gitWriteBack={},
    )
    clone.write("canary/a.yml", yaml.safe_dump_all([gw, ist], sort_keys=False))
    clone.write("canary/b.yml", yaml.safe_dump(nr, sort_keys=False))
    clone.write("apps/argo.yml", yaml.safe_dump(argo_app, sort_keys=False))
    if s.scope == "namespaced":
        stray = canary_dict(
            "stray",
            s.other,
            base=BASE,
            model=own_model("stray"),
            traffic=TRAFFIC["gateway-api"],
            alerts=signed_alerts(s.receiver, s.other, "stray"),
        )
        clone.write("canary/stray.yml", yaml.safe_dump(stray, sort_keys=False))
    clone.commit("canaries")
    clone.push()
    admin.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "models", "namespace": s.argocd},
            "spec": {"source": {"repoURL": s.remote.url, "path": "apps", "targetRevision": "main"}},
        }
    )
    tracked = copy.deepcopy(argo_app)
    tracking = f"models:canary.controlplane.dev/ModelCanary:{b}/argo"
    tracked["metadata"]["annotations"] = {"argocd.argoproj.io/tracking-id": tracking}
    admin.create(tracked)
    admin.create(
        canary_dict(
            "llm",
            a,
            base=BASE,
            model=own_model("llm"),
            traffic=TRAFFIC["llmisvc"],
            alerts=signed_alerts(s.receiver, a, "llm"),
        )
    )
    # the quality judge: its pairer made (server-side apply), rolled out, read through the
    # Service proxy (no endpoint here: a failed read), and deleted with the rollback
    admin.create(
        canary_dict(
            "q",
            a,
            base=BASE,
            model=own_model("q"),
            traffic=TRAFFIC["gateway-api"],
            quality={"sample": "5%", "tolerance": 0.1},
        )
    )
    p.kserve.never_ready("nr-llm-fp8")
    p.kserve.never_ready("argo-llm-fp8")

    # --- start: write-back looks for missed rollbacks, the git source syncs
    assert p.git.write_back.recover(p.namespaces) == 0
    report = p.source.sync_once()
    assert sorted(report.applied) == [f"{a}/gw", f"{a}/nr", f"{b}/ist"]
    if s.scope == "namespaced":
        assert report.errors == (
            f"{s.other}/stray: namespace {s.other!r} is not watched by this controller "
            f"(--namespace {a}, {b}); not applied",
        )
    else:
        assert report.errors == ()

    # --- rollout: deploy, readiness, the gate, step 1
    started = ("gw", a), ("ist", b), ("llm", a), ("q", a)
    p.run_until(
        lambda: all(stage(admin, ns, n) == "steps" for n, ns in started), 3 * 3600, "at step 1"
    )
    p.run_until(lambda: bool(quality_error(admin, a, "q")), 3600, "the pairer read")
    assert "could not be read through the API server" in quality_error(admin, a, "q")
    operations.record_intent(admin, a, "q", "abort", "tester", clock=p.clock)
    assert s.argo.posts, "the gate's workflow was not submitted to the Argo Server"
    # --- analysis: gw's error rate reads the class of its Gateway (its HTTP source)
    p.run_until(
        lambda: bool((admin.get(canary_ref(a, "gw")).get("status") or {}).get("checks")),
        3600,
        "gw evaluated",
    )
    assert p.controller.stats.leader
    lease = admin.get(Ref("coordination.k8s.io/v1", "Lease", s.namespace, "canary-controller"))
    assert lease["spec"]["holderIdentity"] == "pod-1"

    # --- the API: a user promotes, Alertmanager aborts
    alice = s.user("alice", ["get", "list", "patch"], a)
    for name in ("gw", "llm"):
        answer = p.api.post(
            f"/api/v1/namespaces/{a}/canaries/{name}/promote",
            json={"full": True},
            headers=bearer(alice),
        )
        assert answer.status_code == 202, answer.text
        user = answer.json()["intent"]["user"]
        assert user == f"system:serviceaccount:{s.release}-users:alice"
    alertmanager = s.user("alertmanager", ["patch"], b)
    labels = {"alertname": "CanaryErrorBudget", "canary": "ist", "namespace": b}
    payload = {
        "version": "4",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": labels}],
    }
    answer = p.api.post("/api/v1/alertmanager", json=payload, headers=bearer(alertmanager))
    assert [r["result"] for r in answer.json()["results"]] == ["aborted"], answer.text

    # --- promotions, the abort, the deadline rollbacks, and their cleanups
    def settled() -> bool:
        return (
            stage(admin, a, "gw") == "promoted"
            and stage(admin, a, "llm") == "promoted"
            and stage(admin, b, "ist") == "rolled_back"
            and stage(admin, a, "nr") == "rolled_back"
            and stage(admin, b, "argo") == "rolled_back"
            and stage(admin, a, "q") == "rolled_back"
            and not admin.list(
                "apps/v1", "Deployment", a, {**PAIRERS, "canary.controlplane.dev/canary": "q"}
            )
            and isvcs(admin, a, "gw") == ["gw-llm-fp8"]  # the stable one deleted
            and isvcs(admin, b, "ist") == ["ist-llm-bf16"]  # the candidate deleted
        )

    p.run_until(settled, 6 * 3600, "promoted, rolled back and cleaned up")

    # --- write-back: two reverts pushed, found through the annotation and the Application
    assert p.git.write_back.wait_idle(60)
    assert sorted(reasons(admin, a, "nr")).count("GitWriteBack") == 1
    assert reasons(admin, b, "argo").count("GitWriteBack") == 1
    subjects = s.remote.log(fmt="%s")
    assert f"Roll back candidate fp8 of {a}/nr" in subjects
    assert f"Roll back candidate fp8 of {b}/argo" in subjects
    reverted = yaml.safe_load(s.remote.show("canary/b.yml"))
    assert reverted["spec"]["candidate"] == {**nr["spec"]["stable"], "name": "fp8"}

    # --- alerts: delivered, signed with the Secret's key, deduplicated in the ledger ConfigMap
    assert p.alerts.flush(30)
    by_path: dict[str, int] = {}
    for req in s.receiver.requests:
        by_path[req.path] = by_path.get(req.path, 0) + 1
        headers = {k.lower(): v for k, v in req.headers.items()}
        signed = headers["x-canary-timestamp"].encode() + b"." + req.body
        digest = hmac.new(HMAC_KEY.encode(), signed, hashlib.sha256).hexdigest()
        assert headers["x-canary-signature"] == f"sha256={digest}"
    assert by_path[f"/{a}/gw"] >= 2  # a step and the promotion
    assert by_path[f"/{a}/nr"] == by_path[f"/{b}/argo"] == 1  # the rollback
    ledger = admin.get(Ref("v1", "ConfigMap", a, "modelcanary-gw-alerts"))
    assert len(ledger["data"]) == by_path[f"/{a}/gw"]

    # --- git again: the reverted file is re-applied, a removed file pruned
    report = p.source.sync_once()
    assert report.applied == (f"{a}/nr",)
    clone.pull()
    clone.remove("canary/a.yml")
    clone.commit("retire gw and ist")
    clone.push()
    report = p.source.sync_once()
    assert sorted(report.pruned) == [f"{a}/gw", f"{b}/ist"]
    admin.delete(canary_ref(a, "llm"))
    admin.delete(canary_ref(b, "argo"))
    admin.delete(canary_ref(a, "q"))
    done = ("gw", a), ("ist", b), ("llm", a), ("argo", b), ("q", a)
    p.run_until(lambda: all(stage(admin, ns, n) == "gone" for n, ns in done), 3600, "deleted")
    assert isvcs(admin, a, "gw") == isvcs(admin, b, "ist") == isvcs(admin, a, "llm") == []
    assert p.controller.elector is not None
    p.controller.elector.release()
    assert p.controller.stats.watch_errors == 0

    # --- RBAC: nothing was refused, and the chart grants exactly what was used
    refused = [c for c in p.log.calls if c.status in (401, 403)]
    assert refused == []
    used, grants = p.log.used(), s.grants()
    assert sorted(used - set(grants)) == []
    assert sorted(set(grants) - used) == sorted(GRANTED_NOT_REQUESTED)
    # each request went to a namespace the grant covers (a ClusterRoleBinding covers all)
    outside = [c for c in p.log.calls if not ({None, c.namespace} & grants[c.grant])]
    assert outside == []
    if s.scope == "namespaced":  # the Roles: only the watched ones, the lease's, Argo CD's
        assert {c.namespace for c in p.log.calls} == {*s.watched, s.namespace, s.argocd, None}
        assert {c.grant for c in p.log.calls if c.namespace is None} == {
            ("authentication.k8s.io", "tokenreviews", "create"),
            ("authorization.k8s.io", "subjectaccessreviews", "create"),
            ("gateway.networking.k8s.io", "gatewayclasses", "get"),  # cluster-scoped
        }


# ----------------------------------------------------------------------------- refused


def forbidden(call: Callable[[], object]) -> str:
    """The product's error for a request the server refuses: Forbidden, with the 403."""
    with pytest.raises(Forbidden) as caught:
        call()
    text = str(caught.value)
    assert text.startswith("403 Forbidden: "), text
    return text


def test_a_verb_the_chart_does_not_grant_is_refused(installed: Install, tmp_path: Path) -> None:
    s = installed
    kube = RealKube.connect(kubeconfig=str(s.kubeconfig))
    a = s.watched[0]
    user = f'User "system:serviceaccount:{s.namespace}:{s.service_account}"'
    text = forbidden(lambda: kube.list("v1", "Secret", a))  # get only, never list
    assert f'{user} cannot list resource "secrets" in API group "" in the namespace "{a}"' in text
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x", "namespace": a},
        "spec": {"containers": [{"name": "x", "image": "x"}]},
    }
    text = forbidden(lambda: kube.create(pod))  # KServe's Deployments make those, not us
    assert f'{user} cannot create resource "pods" in API group ""' in text
    lease = Ref("coordination.k8s.io/v1", "Lease", s.namespace, "canary-controller")
    assert 'cannot delete resource "leases"' in forbidden(lambda: kube.delete(lease))
    # Secrets: the cluster scope reads only the names alerts use, the namespaced scope only in
    # the watched namespaces (issue 33: the default ClusterRole read every Secret, db-creds too)
    kube.get(Ref("v1", "Secret", a, "alert-signing"))
    text = forbidden(lambda: kube.get(Ref("v1", "Secret", s.other, "db-creds")))
    assert f'cannot get resource "secrets" in API group "" in the namespace "{s.other}"' in text
    if s.scope == "cluster":
        forbidden(lambda: kube.get(Ref("v1", "Secret", a, "db-creds")))
    if s.scope == "cluster":
        assert isinstance(kube.list(API_VERSION, KIND), list)  # every namespace: allowed
        return
    # the namespaced scope: nothing across the cluster, nothing outside the watched namespaces
    text = forbidden(lambda: kube.list(API_VERSION, KIND))
    assert (
        'cannot list resource "modelcanaries" in API group "canary.controlplane.dev" at the '
        in (text)
    )
    forbidden(lambda: kube.get(canary_ref(s.other, "x")))
    forbidden(lambda: operations.list_canaries(kube, None))  # what the API did before
    # what the git source did before (one cluster-wide list): its sync fails on the 403
    blind = GitSource(kube, s.remote.url, "canary", cache_dir=tmp_path / "git")
    assert "403 Forbidden" in forbidden(blind.sync_once)


# ----------------------------------------------------------------------------- the API


def test_the_api_asks_the_real_server_who_calls_and_what_they_may_do(
    installed: Install, product: Product
) -> None:
    s, api = installed, product.api
    a, b = s.watched
    s.admin.create(
        canary_dict(
            "api",
            a,
            base=BASE,
            model=own_model("api"),
            traffic=TRAFFIC["gateway-api"],
            alerts=signed_alerts(s.receiver, a, "api"),
        )
    )
    reader = s.user("reader", ["get", "list"], a)
    nobody = s.user("nobody", [], a)

    answer = api.get(f"/api/v1/namespaces/{a}/canaries/api", headers=bearer("not-a-token"))
    assert answer.status_code == 401
    assert answer.json()["detail"].startswith("invalid bearer token: ")
    assert (
        api.get(f"/api/v1/namespaces/{a}/canaries/api", headers=bearer(reader)).json()["name"]
        == "api"
    )
    refused = api.post(f"/api/v1/namespaces/{a}/canaries/api/abort", headers=bearer(reader))
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith(
        f'user "system:serviceaccount:{s.release}-users:reader" may not patch '
        f"modelcanaries.canary.controlplane.dev 'api' in namespace \"{a}\""
    )
    denied = api.get(f"/api/v1/namespaces/{a}/canaries", headers=bearer(nobody))
    assert denied.status_code == 403
    everything = api.get("/api/v1/canaries", headers=bearer(reader))
    admin = bearer(s.cluster.token)  # system:masters: the server allows it everything
    if s.scope == "cluster":
        # a namespace Role does not list everywhere: the namespaces holding canaries it may list
        assert everything.status_code == 200, everything.text
        assert {c["namespace"] for c in everything.json()["items"]} == {a}
        names = {c["name"] for c in api.get("/api/v1/canaries", headers=admin).json()["items"]}
        assert "api" in names
    else:
        assert everything.status_code == 200  # each watched namespace it may list
        assert {c["namespace"] for c in everything.json()["items"]} == {a}
        elsewhere = api.get(f"/api/v1/namespaces/{s.other}/canaries", headers=admin)
        assert elsewhere.status_code == 404
        assert elsewhere.json()["detail"] == (
            f"namespace {s.other!r} is not watched by this controller (it watches {a}, {b})"
        )
    reviews = {c.grant for c in product.log.calls}
    assert reviews == {
        ("authentication.k8s.io", "tokenreviews", "create"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
        ("canary.controlplane.dev", "modelcanaries", "get"),
        ("canary.controlplane.dev", "modelcanaries", "list"),
    }
    assert [c for c in product.log.calls if c.status == 403] == []
    s.admin.delete(canary_ref(a, "api"))
