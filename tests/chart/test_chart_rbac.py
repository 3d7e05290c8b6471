"""The chart's RBAC is exactly what the code needs.

Three sources agree:

1. ``NEEDS`` below: every (apiGroup, resource) the product calls through the KubeClient adapter,
   with the verbs and the code that needs them.
2. The code itself, read with ``ast``: every Kubernetes kind named in ``controlplane/`` (a
   ``Ref(...)`` argument, a ``"kind":`` value, a ``*KIND``/``*KINDS`` constant) must be in
   ``NEEDS`` or in ``NOT_CALLED`` with the reason, and every API group named must be known. Code
   that starts to touch a new kind fails here until the chart grants it.
3. A recorded run: the real reconciler, runner, leader elector and intent recorder drive every
   router through promotion, rollback and deletion on FakeKube (+ FakeKServe), through a proxy
   that records each adapter call as (verb, group, resource); every recorded call is granted.

The rendered ClusterRole (cluster scope) and each Role (namespaced scope) grant ``NEEDS``, no more;
the cluster-wide reads of ``GATEWAY_NEEDS`` are a ClusterRole of their own in both scopes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.canaries import FP8_ONE_CHECK, canary_dict
from support.chart import NAMESPACE, ROOT, Doc, of_kind, render
from support.pairs import rolled_out

from controlplane.controller.reconcile import Reconciler, Settings
from controlplane.controller.runner import Controller, NoPrometheus
from controlplane.kube.client import Obj, Ref, WatchEvent
from controlplane.kube.lease import LeaderElector
from controlplane.operations import record_intent
from controlplane.profiles.catalog import load_catalog
from harness.kube.fake import FakeKube
from harness.kube.fake_kserve import FakeKServe

Rule = tuple[str, str]  # (apiGroup, resource)

# What the product calls, per (group, resource): verbs, and who calls.
NEEDS: dict[Rule, tuple[frozenset[str], str]] = {
    ("canary.controlplane.dev", "modelcanaries"): (
        frozenset({"get", "list", "watch", "update", "patch"}),
        "controller/runner.py watch; reconcile.py get, replace (finalizer); operations.py list, "
        "patch (intents)",
    ),
    ("canary.controlplane.dev", "modelcanaries/status"): (
        frozenset({"update"}),
        "controller/reconcile.py replace_status",
    ),
    ("canary.controlplane.dev", "modelcanaries/finalizers"): (
        frozenset({"update"}),
        "ownerReferences with blockOwnerDeletion (OwnerReferencesPermissionEnforcement)",
    ),
    ("serving.kserve.io", "inferenceservices"): (
        frozenset({"get", "create", "patch", "delete"}),
        "reconcile.py / routing/: server-side apply, read back, release",
    ),
    ("serving.kserve.io", "llminferenceservices"): (
        frozenset({"get", "create", "patch", "delete"}),
        "reconcile.py apply; routing/llmisvc.py patch (route weights)",
    ),
    ("gateway.networking.k8s.io", "httproutes"): (
        frozenset({"get", "list", "create", "patch", "delete"}),
        "routing/gateway_api.py; controller/starved.py lists the routes beside a starved one",
    ),
    ("monitoring.coreos.com", "podmonitors"): (
        frozenset({"get", "create", "patch", "delete"}),
        "serving/adopt.py: an adopted stable's PodMonitor (apply, release, delete)",
    ),
    ("networking.istio.io", "virtualservices"): (
        frozenset({"get", "create", "patch", "delete"}),
        "routing/istio.py",
    ),
    ("", "services"): (
        frozenset({"get", "create", "patch", "delete"}),
        "routing/istio.py: the model's own Service (no spec.traffic.hosts); apply, release; "
        "routing/ownership.py reads it first (a Service the canary did not create is left alone)",
    ),
    ("apps", "deployments"): (
        frozenset({"get", "create", "patch", "delete"}),
        "routing/kserve.py: a promotion without a rename waits for the stable's rollout; "
        "controller/children.py: the candidate's pods' selector; serving/pairer.py: the quality "
        "judge's pairer (apply, release)",
    ),
    ("", "services/proxy"): (
        frozenset({"get"}),
        "controller/pairs.py: the pairer's pairs through the API server's Service proxy",
    ),
    ("", "pods"): (
        frozenset({"list"}),
        "controller/children.py: the candidate's pods while it is not ready (a crash loop, an "
        "image that does not exist: rolled back at once)",
    ),
    ("", "configmaps"): (
        frozenset({"get", "create", "update", "patch", "delete"}),
        "serving/render.py chat templates (apply, delete); notify/ledger.py (get, create, replace)",
    ),
    ("", "events"): (
        frozenset({"create", "get", "patch"}),
        "KubeClient.event: create; an unnamed Event told again is counted (get, patch)",
    ),
    ("", "secrets"): (
        frozenset({"get"}),
        "notify/secrets.py (alert channels), gitops/credentials.py (write-back credentials): "
        "never in the cluster scope's ClusterRole but by rbac.secretNames (SECRETS below)",
    ),
    ("argoproj.io", "applications"): (frozenset({"get"}), "gitops/locate.py"),
}
SECRETS: Rule = ("", "secrets")
"""Where the chart grants it: a namespaced Role (the namespaced scope, or the cluster scope with
watchNamespaces), or by name only (rbac.secretNames, resourceNames), never every Secret of the
cluster (tests/chart/test_chart_least_privilege.py)."""
# Granted only with gitSource.repo (gitops/source.py): server-side apply creates and patches the
# files' ModelCanaries; gitSource.prune adds delete.
GIT_SOURCE_NEEDS = frozenset({"create", "patch"})
GIT_PRUNE_NEEDS = frozenset({"delete"})
# Granted in the release namespace only (--leader-elect).
LEASE_NEEDS: dict[Rule, frozenset[str]] = {
    ("coordination.k8s.io", "leases"): frozenset({"get", "create", "update"}),  # kube/lease.py
}
# Cluster-wide in both scopes (rbac.readGateways), read-only: controller/gateway_source.py gets a
# canary's Gateway (any namespace: KServe's is in kserve) and its cluster-scoped GatewayClass.
GATEWAY_NEEDS: dict[Rule, frozenset[str]] = {
    ("gateway.networking.k8s.io", "gateways"): frozenset({"get"}),
    ("gateway.networking.k8s.io", "gatewayclasses"): frozenset({"get"}),
}
# Cluster-scoped, for the API's authentication (api/auth.py).
AUTH_NEEDS: dict[Rule, frozenset[str]] = {
    ("authentication.k8s.io", "tokenreviews"): frozenset({"create"}),
    ("authorization.k8s.io", "subjectaccessreviews"): frozenset({"create"}),
}

# kind -> (group, resource) of every kind the product calls.
KINDS: dict[str, Rule] = {
    "ModelCanary": ("canary.controlplane.dev", "modelcanaries"),
    "InferenceService": ("serving.kserve.io", "inferenceservices"),
    "LLMInferenceService": ("serving.kserve.io", "llminferenceservices"),
    "HTTPRoute": ("gateway.networking.k8s.io", "httproutes"),
    "Gateway": ("gateway.networking.k8s.io", "gateways"),
    "GatewayClass": ("gateway.networking.k8s.io", "gatewayclasses"),
    "VirtualService": ("networking.istio.io", "virtualservices"),
    "Deployment": ("apps", "deployments"),
    "Service": ("", "services"),
    "ConfigMap": ("", "configmaps"),
    "Event": ("", "events"),
    "Secret": ("", "secrets"),
    "Application": ("argoproj.io", "applications"),
    "Lease": ("coordination.k8s.io", "leases"),
    "Pod": ("", "pods"),
    "PodMonitor": ("monitoring.coreos.com", "podmonitors"),
    "TokenReview": ("authentication.k8s.io", "tokenreviews"),
    "SubjectAccessReview": ("authorization.k8s.io", "subjectaccessreviews"),
}
# Kinds the code names without calling the API for them, and why.
NOT_CALLED: dict[str, str] = {
    "List": "the wrapper of `canaryctl render -o yaml` output (cli/render.py)",
    "CustomResourceDefinition": "`canaryctl schema --crd` prints it (spec/crd.py); the chart "
    "installs it from crds/",
    "MeasuredProfile": "the kind of a measured profile file (profiles/measured.py), not a "
    "Kubernetes object",
    "ScaledObject": "KEDA's kind, only asked of discovery (KubeClient.serves) before a variant "
    "with autoscaling.queue is applied (controller/children.py); no object is read",
    "SelfSubjectReview": "`kubectl canary dashboard` asks it with the user's own kubeconfig "
    "(cli/dashboard.py), never the controller's ServiceAccount; every user may",
    "SelfSubjectAccessReview": "`GET .../access` asks it with the source's own credentials "
    "(api/sources.py): the user's kubeconfig under `kubectl canary dashboard`, the controller's "
    "ServiceAccount only for its static token; Kubernetes' system:basic-user ClusterRole lets "
    "every authenticated user create it, so the chart need not",
}
# Modules that are not the product talking to a cluster.
SKIPPED_MODULES = {
    "harness/kube/fake.py": "the in-memory API server (test double)",
    "harness/kube/fake_kserve.py": "the simulated KServe controller (test double)",
    "harness/kube/fake_auth.py": "the simulated RBAC authorizer (test double)",
    "harness/kube/fake_kinds.py": "the kinds the in-memory API server serves (test double)",
    "harness/kube/fake_objects.py": "the in-memory API server's write checks (test double)",
    "harness/kube/fake_patch.py": "the in-memory API server's patch formats (test double)",
    "harness/kube/fake_watch.py": "the in-memory API server's watch log (test double)",
    "harness/cluster/kubeapi.py": "the loopback control plane of make kube-up and the tests "
    "(its own admin token, not the chart's ServiceAccount)",
    "harness/cluster/workloads.py": "the loopback cluster's nodes and controllers (admin)",
    "harness/cluster/kserve.py": "KServe's setup on the loopback cluster (admin)",
    "harness/cluster/llmisvc.py": "KServe's LLMInferenceService controller on the loopback "
    "cluster (admin)",
    "harness/cluster/promoperator.py": "the Prometheus Operator on the loopback cluster (admin)",
    "harness/cluster/gatewaystatus.py": "the loopback cluster's Gateway status stand-in (admin)",
}
# API groups the code names and the chart need not grant.
GROUPS_NOT_CALLED = {
    "apiextensions.k8s.io": "the CRD document of spec/crd.py",
    "keda.sh": "KEDA's ScaledObject, asked of discovery only (NOT_CALLED)",
}
API_VERSION = re.compile(r"^([a-z0-9-]+(\.[a-z0-9-]+)+)/v\d+((alpha|beta)\d+)?$")


# ----------------------------------------------------------------------------- the code, read


def _py_files() -> Iterator[Path]:
    for path in sorted((ROOT / "controlplane").rglob("*.py")):
        if str(path.relative_to(ROOT)) not in SKIPPED_MODULES:
            yield path


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for elt in node.elts for s in _strings(elt)]
    if isinstance(node, ast.Call) and node.args:  # frozenset({...}), tuple([...])
        return _strings(node.args[0])
    return []


def named_kinds() -> dict[str, set[str]]:
    """Kind -> the modules naming it as a Kubernetes kind."""
    found: dict[str, set[str]] = {}

    def add(kind: str, where: str) -> None:
        if re.fullmatch(r"[A-Z][A-Za-z]+", kind):
            found.setdefault(kind, set()).add(where)

    for path in _py_files():
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), where)):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name == "Ref" and len(node.args) >= 2:
                    for kind in _strings(node.args[1]):
                        add(kind, where)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "kind" and value is not None:
                        for kind in _strings(value):
                            add(kind, where)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                if node.value is not None and any(re.search(r"KINDS?$", n) for n in names):
                    for kind in _strings(node.value):
                        add(kind, where)
    return found


def named_groups() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in _py_files():
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), where)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = API_VERSION.match(node.value)
                if match:
                    found.setdefault(match.group(1), set()).add(where)
    return found


def test_the_code_names_the_kinds_we_know() -> None:
    kinds = named_kinds()
    # the reading works: the kinds of the controller, the notifier, the API and write-back
    assert {"ModelCanary", "Lease", "Secret", "TokenReview", "Application", "HTTPRoute"} <= set(
        kinds
    )
    unknown = {
        kind: sorted(where)
        for kind, where in kinds.items()
        if kind not in KINDS and kind not in NOT_CALLED
    }
    assert not unknown, (
        "the code names Kubernetes kinds the chart's RBAC does not know: add each to KINDS and "
        "NEEDS here and to charts/controlplane/templates/_helpers.tpl (or to NOT_CALLED with "
        f"the reason): {unknown}"
    )


def test_the_code_names_only_known_api_groups() -> None:
    known = {group for group, _ in KINDS.values()} | set(GROUPS_NOT_CALLED)
    unknown = {g: sorted(w) for g, w in named_groups().items() if g not in known}
    assert not unknown, f"API groups with no RBAC decision: {unknown}"


def test_every_needed_kind_is_still_named_by_the_code() -> None:
    stale = set(KINDS) - set(named_kinds())
    assert not stale, f"nothing names {sorted(stale)} any more: drop their RBAC"


# ----------------------------------------------------------------------------- the chart


def granted(role: Doc) -> dict[Rule, set[str]]:
    rules: dict[Rule, set[str]] = {}
    for rule in role["rules"]:
        assert "*" not in rule["verbs"], rule
        assert "*" not in rule["resources"], rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                rules.setdefault((group, resource), set()).update(rule["verbs"])
    return rules


def named(docs: list[Doc], kind: str, name: str) -> list[Doc]:
    return [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]


def expected() -> dict[Rule, set[str]]:
    return {rule: set(verbs) for rule, (verbs, _why) in NEEDS.items()}


def cluster_expected() -> dict[Rule, set[str]]:
    """The cluster scope's ClusterRole with the default values: no Secret at all."""
    return {rule: verbs for rule, verbs in expected().items() if rule != SECRETS}


def test_cluster_role_grants_exactly_what_the_code_needs() -> None:
    docs = render()
    (role,) = named(docs, "ClusterRole", "cp-controlplane")
    assert granted(role) == cluster_expected()
    named_only = render({"rbac": {"secretNames": ["alert-signing"]}})
    (role,) = named(named_only, "ClusterRole", "cp-controlplane")
    assert granted(role) == expected()
    (lease,) = named(docs, "Role", "cp-controlplane-leader-election")
    assert lease["metadata"]["namespace"] == NAMESPACE
    assert granted(lease) == {k: set(v) for k, v in LEASE_NEEDS.items()}
    (auth,) = named(docs, "ClusterRole", "cp-controlplane-auth-delegator")
    assert granted(auth) == {k: set(v) for k, v in AUTH_NEEDS.items()}


@pytest.mark.parametrize(
    "values",
    [{}, {"rbac": {"scope": "namespaced"}, "watchNamespaces": ["a", "b"]}],
    ids=["cluster", "namespaced"],
)
def test_the_gateway_reads_are_a_read_only_cluster_role_in_both_scopes(
    values: dict[str, Any],
) -> None:
    docs = render(values)
    (role,) = named(docs, "ClusterRole", "cp-controlplane-gateways")
    assert granted(role) == {k: set(v) for k, v in GATEWAY_NEEDS.items()}
    (binding,) = named(docs, "ClusterRoleBinding", "cp-controlplane-gateways")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "cp-controlplane-gateways",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cp-controlplane", "namespace": NAMESPACE}
    ]
    # nothing else of the Gateway API is read cluster-wide, and nothing is written by it
    for other in of_kind(docs, "ClusterRole"):
        if other is role:
            continue
        for rule in other["rules"]:
            if "gateway.networking.k8s.io" in rule["apiGroups"]:
                assert set(rule["resources"]) == {"httproutes"}, other["metadata"]["name"]


def test_namespaced_roles_grant_exactly_what_the_code_needs() -> None:
    docs = render({"rbac": {"scope": "namespaced"}, "watchNamespaces": ["a", "b"]})
    roles = named(docs, "Role", "cp-controlplane")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["a", "b"]
    argocd = ("argoproj.io", "applications")
    for role in roles:
        assert granted(role) == {k: v for k, v in expected().items() if k != argocd}
    (app_role,) = named(docs, "Role", "cp-controlplane-argocd")
    assert granted(app_role) == {argocd: set(NEEDS[argocd][0])}


@pytest.mark.parametrize("prune", [False, True], ids=["apply", "apply-and-prune"])
@pytest.mark.parametrize("scope", ["cluster", "namespaced"])
def test_the_git_source_adds_apply_and_prune_on_modelcanaries(scope: str, prune: bool) -> None:
    values: dict[str, Any] = {
        "gitSource": {"repo": "https://git.example/models.git", "prune": prune}
    }
    if scope == "namespaced":
        values |= {"rbac": {"scope": "namespaced"}, "watchNamespaces": ["a", "b"]}
    docs = render(values)
    roles = named(docs, "ClusterRole" if scope == "cluster" else "Role", "cp-controlplane")
    assert len(roles) == (1 if scope == "cluster" else 2)
    canaries = ("canary.controlplane.dev", "modelcanaries")
    for role in roles:
        want = expected() if scope == "namespaced" else cluster_expected()
        want[canaries] |= GIT_SOURCE_NEEDS | (GIT_PRUNE_NEEDS if prune else set())
        if scope == "namespaced":
            del want[("argoproj.io", "applications")]
        assert granted(role) == want


def test_switches_drop_their_rules() -> None:
    docs = render(
        {
            "rbac": {"readSecrets": False, "argoCDApplications": False, "readGateways": False},
            "api": {"kubernetesAuth": False},
        }
    )
    (role,) = named(docs, "ClusterRole", "cp-controlplane")
    assert set(granted(role)) == set(NEEDS) - {SECRETS, ("argoproj.io", "applications")}
    assert not named(docs, "ClusterRole", "cp-controlplane-auth-delegator")
    assert not named(docs, "ClusterRole", "cp-controlplane-gateways")
    assert not named(docs, "ClusterRoleBinding", "cp-controlplane-gateways")
    assert not [d for d in render({"rbac": {"create": False}}) if "Role" in d["kind"]]


# ----------------------------------------------------------------------------- a recorded run

NS = "ml-serving"


@dataclass
class Recorder:
    """A KubeClient that records (verb, group, resource) and delegates to a FakeKube."""

    kube: FakeKube
    calls: set[tuple[str, str, str]] = field(default_factory=set)

    def _note(self, verb: str, api_version: str, kind: str, sub: str = "") -> None:
        group = api_version.rpartition("/")[0]
        resource = KINDS.get(kind, (group, kind.lower() + "s"))[1] + (f"/{sub}" if sub else "")
        self.calls.add((verb, group, resource))

    def get(self, ref: Ref) -> Obj:
        self._note("get", ref.api_version, ref.kind)
        return self.kube.get(ref)

    def list(self, api_version: str, kind: str, namespace: str | None = None, **kw: Any) -> Any:
        self._note("list", api_version, kind)
        return self.kube.list(api_version, kind, namespace, **kw)

    def list_with_version(
        self, api_version: str, kind: str, namespace: str | None = None, *args: Any, **kw: Any
    ) -> Any:
        self._note("list", api_version, kind)
        return self.kube.list_with_version(api_version, kind, namespace, *args, **kw)

    def create(self, obj: Obj) -> Obj:
        self._note("create", obj["apiVersion"], obj["kind"])
        return self.kube.create(obj)

    def replace(self, obj: Obj) -> Obj:
        self._note("update", obj["apiVersion"], obj["kind"])
        return self.kube.replace(obj)

    def replace_status(self, obj: Obj) -> Obj:
        self._note("update", obj["apiVersion"], obj["kind"], "status")
        return self.kube.replace_status(obj)

    def patch(self, ref: Ref, body: Any, kind: str = "merge") -> Obj:
        self._note("patch", ref.api_version, ref.kind)
        return self.kube.patch(ref, body, kind=kind)  # type: ignore[arg-type]

    def apply(self, obj: Obj, field_manager: str) -> Obj:
        # server-side apply is a PATCH, and creates the object when it is missing
        self._note("patch", obj["apiVersion"], obj["kind"])
        self._note("create", obj["apiVersion"], obj["kind"])
        return self.kube.apply(obj, field_manager=field_manager)

    def delete(self, ref: Ref) -> None:
        self._note("delete", ref.api_version, ref.kind)
        self.kube.delete(ref)

    def watch(self, api_version: str, kind: str, *args: Any, **kw: Any) -> Iterator[WatchEvent]:
        self._note("watch", api_version, kind)
        return self.kube.watch(api_version, kind, *args, **kw)

    def service_get(self, namespace: str, service: str, *args: Any) -> bytes:
        self._note("get", "v1", "Service", "proxy")
        return self.kube.service_get(namespace, service, *args)

    def event(
        self,
        involved: Obj,
        reason: str,
        message: str,
        type_: str = "Normal",
        *,
        name: str | None = None,
    ) -> bool:
        self._note("create", "v1", "Event")
        return self.kube.event(involved, reason, message, type_, name=name)


TRAFFIC: dict[str, dict[str, Any]] = {
    "gateway-api": {"router": "gateway-api", "gateway": {"name": "gw"}},
    "istio": {"router": "istio", "hosts": ["llm.example.com"]},
    "kserve": {"router": "kserve"},
    "kserve-knative": {"router": "kserve-knative"},
    "llmisvc": {"router": "llmisvc"},
}


# The canaries of the recorded runs: fp8 with a system prompt (the chat-template ConfigMap), an
# hour at 10 % checking errors, then 100 %; no shadow, no budget. Each has its own model.
BASE = canary_dict(
    base=FP8_ONE_CHECK,
    candidate={**FP8_ONE_CHECK["spec"]["candidate"], "systemPrompt": "Be brief."},
    analysis={"interval": "1m", "metrics": [{"name": "errors", "builtin": "error-rate"}]},
)


def roll_out_pairers(fake: FakeKube) -> None:
    """What the Deployment controller writes once a quality judge's pairer is available."""
    for deployment in fake.list("apps/v1", "Deployment", NS):
        if deployment["metadata"]["name"].endswith("-pairer") and not deployment.get("status"):
            generation = deployment["metadata"].get("generation", 1)
            fake.system_replace_status(Ref.of(deployment), rolled_out(generation))


@pytest.fixture(scope="module")
def recorded() -> set[tuple[str, str, str]]:
    clock = [1_800_000_000.0]
    now = lambda: clock[0]  # noqa: E731
    fake = FakeKube(now=now)
    # the kserve router reads KServe's HTTPRoute: a KServe that splits (the run must promote)
    kserve = FakeKServe(fake, now=now, ready_after_s=60, gateway_routes="ready-canaries")
    rec = Recorder(fake)
    # the canaries' Gateway and its class: the controller reads both (KServe's is missing: 404)
    fake.create(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "eg"},
            "spec": {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"},
        }
    )
    fake.create(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": NS},
            "spec": {"gatewayClassName": "eg", "listeners": []},
        }
    )
    settings = Settings(
        progress_deadline_s=3600,
        promote_cleanup_s=0,
        rollback_cleanup_s=0,
        pairer_image="controlplane:test",
    )
    reconciler = Reconciler(rec, load_catalog(), settings)  # type: ignore[arg-type]
    elector = LeaderElector(rec, NAMESPACE, "canary-controller", "me", 15, now)  # type: ignore[arg-type]
    ctrl = Controller(
        rec,  # type: ignore[arg-type]
        reconciler,
        lambda url: NoPrometheus(),  # the canaries name no Prometheus: never called
        now,
        namespaces=[NS],
        elector=elector,
    )

    def settle(passes: int = 6) -> None:
        for _ in range(passes):
            clock[0] += 70
            kserve.tick()
            roll_out_pairers(fake)
            ctrl.poll(0.0)
            ctrl.run_once()

    runs = [(router, traffic, {}) for router, traffic in TRAFFIC.items()]
    runs.append(
        ("quality", TRAFFIC["gateway-api"], {"quality": {"sample": "5%", "tolerance": 0.1}})
    )
    for prefix, traffic, extra in runs:
        for verb in ("promote-full", "abort"):
            name = f"{prefix}-{verb}".replace("-full", "")
            model = {"name": f"{name}-llm", "maxModelLen": 4096}
            fake.create(canary_dict(name, NS, base=BASE, model=model, traffic=traffic, **extra))
            settle()
            record_intent(rec, NS, name, verb, "tester", clock=now)  # type: ignore[arg-type]
            settle()
            phase = fake.get(Ref("canary.controlplane.dev/v1alpha1", "ModelCanary", NS, name))[
                "status"
            ]["phase"]
            assert phase == ("promoted" if verb == "promote-full" else "rolled_back"), name
            fake.delete(Ref("canary.controlplane.dev/v1alpha1", "ModelCanary", NS, name))
            settle()
    elector.release()
    return rec.calls


def test_the_recorded_run_covers_the_controller(recorded: set[tuple[str, str, str]]) -> None:
    resources = {resource for _, _, resource in recorded}
    assert {
        "modelcanaries",
        "modelcanaries/status",
        "inferenceservices",
        "llminferenceservices",
        "httproutes",
        "virtualservices",
        "configmaps",
        "events",
        "leases",
        "gateways",
        "gatewayclasses",
    } <= resources
    assert ("delete", "serving.kserve.io", "inferenceservices") in recorded
    assert ("watch", "canary.controlplane.dev", "modelcanaries") in recorded
    # the quality judge's pairer: made and deleted, its pairs read through the Service proxy
    assert {("create", "apps", "deployments"), ("delete", "apps", "deployments")} <= recorded
    assert ("get", "", "services/proxy") in recorded


def test_every_recorded_call_is_granted(recorded: set[tuple[str, str, str]]) -> None:
    docs = render()
    rules: dict[Rule, set[str]] = {}
    for role in [*of_kind(docs, "ClusterRole"), *of_kind(docs, "Role")]:
        for key, verbs in granted(role).items():
            rules.setdefault(key, set()).update(verbs)
    missing = sorted(c for c in recorded if c[0] not in rules.get((c[1], c[2]), set()))
    assert not missing, f"calls the chart's RBAC does not grant: {missing}"
