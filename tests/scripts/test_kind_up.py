"""scripts/kind-up.sh and kind-config.yaml, checked as far as a machine without kind or docker
allows.

The script is run for real, every step, with stand-ins for ``kind``, ``kubectl``, ``helm`` and
``docker`` on ``PATH`` (tests/scripts/fakebin.py): it must finish, and the calls it made are what
the tests read, so they see exactly the charts, versions, values and manifests it would install.
Every chart it installs that a Go module publishes is rendered by the real ``helm template``
(helm v3.19.5, built by ``make kube-tools``) from that module at the script's pinned version:
KServe's kserve-crd, kserve-resources and kserve-runtime-configs, Envoy Gateway's gateway-crds-helm
and gateway-helm, cert-manager's chart (assembled from its module the way its release build does),
and charts/controlplane with the values the script passes. The Gateway API CRDs it applies are
those of ``sigs.k8s.io/gateway-api`` at the pin (its standard-install.yaml is that module's
config/crd kustomization). Then all of it is applied, in the script's order, to a loopback
kube-apiserver of its own (:mod:`harness.cluster.kubeapi`; its own, because KServe's webhook
configurations would intercept the shared server's InferenceServices) with server-side apply and
``fieldValidation=Strict`` and read back: CRDs first, webhook configurations and admission policies
last. The example canary goes in as the script pipes it, and the objects the controller renders
for it are applied against the CRDs the script installed.

Not checked here: kube-prometheus-stack is published by no Go module, so it is not rendered; its
Prometheus Operator (v0.85.0 at the pinned chart version) is stood in for by that operator's CRDs
from its Go module (:data:`harness.cluster.upstream_crds.PROMETHEUS_OPERATOR`), which the
chart's PodMonitor, ServiceMonitor and PrometheusRule are validated against. ``helm template``
cannot run a chart's ``lookup`` (Envoy Gateway's Gateway API safe-upgrade policy is rendered as
on an empty cluster). Nothing is scheduled or reconciled: that a Gateway is Programmed, KServe's
controller Ready, the image built, is for the e2e suite on a real kind cluster (tests/e2e).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.chart import KUBE_VERSION as CHART_SCHEMA_VERSION
from support.realkube import running_cluster
from support.serverside import Refused, apply_strict, describe, lost_fields, read_back, resource

from controlplane.desired import desired_objects
from controlplane.errors import ControlPlaneError
from controlplane.profiles.catalog import load_catalog
from controlplane.validation import validated_file
from harness.cluster.kubeapi import KUBE_VERSION, LoopbackCluster, binary, wait_served
from harness.cluster.upstream_crds import (
    GATEWAY_API,
    KSERVE,
    PROMETHEUS_OPERATOR,
    Upstream,
    crds,
    module_dir,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "kind-up.sh"
KIND_CONFIG = ROOT / "kind-config.yaml"
FAKEBIN = Path(__file__).with_name("fakebin.py")

# kube-prometheus-stack version -> the Prometheus Operator it ships (its Chart.yaml appVersion in
# prometheus-community/helm-charts). Bumping the chart in the script fails
# test_pins_agree_with_the_loopback_server until this says which operator comes with it.
KPS_OPERATOR = {"77.6.2": "v0.85.0"}
# Envoy Gateway's controller name (its chart's envoy-gateway-config holds it too)
EG_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"

Obj = dict[str, Any]


# ----------------------------------------------------------------------------- the script's text


def pins() -> dict[str, str]:
    """NAME -> default of the script's pin block (``NAME="${NAME:-value}"`` lines)."""
    block = re.search(r"^# --- Pins\..*?^# --- end of pins$", SCRIPT.read_text(), re.M | re.S)
    assert block, "scripts/kind-up.sh lost its '# --- Pins.' ... '# --- end of pins' block"
    found = dict(re.findall(r'^([A-Z_]+)="\$\{\1:-([^}]*)\}"$', block.group(0), re.M))
    assert found, 'no NAME="${NAME:-value}" line in the pin block'
    return found


def defaults() -> dict[str, str]:
    """Every ``NAME="${NAME:-value}"`` default of the script (pins and names)."""
    return dict(re.findall(r'^([A-Z_]+)="\$\{\1:-([^}]*)\}"$', SCRIPT.read_text(), re.M))


def node_image_version(image: str) -> str:
    match = re.fullmatch(r"kindest/node:v(\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}", image)
    assert match, f"{image}: kindest/node:vX.Y.Z@sha256:<digest>, as kind's release notes give it"
    return match.group(1)


def minor(version: str) -> str:
    return ".".join(version.lstrip("v").split(".")[:2])


def kind_nodes(cluster: str) -> dict[str, dict[str, str]]:
    """Node name -> labels of the nodes kind creates from kind-config.yaml (kind names them
    <cluster>-control-plane, <cluster>-worker, <cluster>-worker2, ...)."""
    config = yaml.safe_load(KIND_CONFIG.read_text())
    nodes: dict[str, dict[str, str]] = {}
    seen: Counter[str] = Counter()
    for node in config["nodes"]:
        role = node["role"]
        seen[role] += 1
        suffix = "" if seen[role] == 1 else str(seen[role])
        nodes[f"{cluster}-{role}{suffix}"] = dict(node.get("labels") or {})
    return nodes


def module(path: str, version: str) -> Path:
    """The Go module's folder (``go mod download``); no Go or no module fails with one line."""
    try:
        return module_dir(Upstream(path, version, ()))
    except ControlPlaneError as exc:
        pytest.fail(str(exc), pytrace=False)


# ----------------------------------------------------------------------------- pure checks


def test_pins_are_exact_versions() -> None:
    found = pins()
    assert set(found) == {
        "KIND_VERSION",
        "KIND_NODE_IMAGE",
        "GATEWAY_API_VERSION",
        "ENVOY_GATEWAY_VERSION",
        "CERT_MANAGER_VERSION",
        "KSERVE_VERSION",
        "KUBE_PROMETHEUS_STACK_VERSION",
    }
    for name, value in found.items():
        if name.endswith("_VERSION"):
            assert re.fullmatch(r"v?\d+\.\d+\.\d+", value), f"{name}={value} is not one release"
    node_image_version(found["KIND_NODE_IMAGE"])
    text = SCRIPT.read_text()
    for name in found:  # every pin is used
        assert re.search(rf"\$\{{?{name}\b", text.split("# --- end of pins", 1)[1]), name


def test_pins_agree_with_the_loopback_server() -> None:
    """The kind cluster runs what the tests' API server has the CRDs of (one set of pins)."""
    found = pins()
    assert found["KSERVE_VERSION"] == KSERVE.version
    assert found["GATEWAY_API_VERSION"] == GATEWAY_API.version
    kps = found["KUBE_PROMETHEUS_STACK_VERSION"]
    assert kps in KPS_OPERATOR, (
        f"kube-prometheus-stack {kps}: add the Prometheus Operator it ships to KPS_OPERATOR"
    )
    assert KPS_OPERATOR[kps] == PROMETHEUS_OPERATOR.version
    node = node_image_version(found["KIND_NODE_IMAGE"])
    assert minor(node) == minor(KUBE_VERSION), (node, KUBE_VERSION)
    # tests/chart validates the chart against this Kubernetes version's OpenAPI schemas
    assert node == CHART_SCHEMA_VERSION


def test_kind_config_workers_carry_gpu_labels_the_catalogue_knows() -> None:
    config = yaml.safe_load(KIND_CONFIG.read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert "image" not in json.dumps(config), "the node image is pinned in the script only"
    workers = [n for n in config["nodes"] if n["role"] == "worker"]
    assert workers
    products = {g.product_label for g in load_catalog().gpus.values()}
    for worker in workers:
        labels = worker["labels"]
        assert all(isinstance(v, str) for v in labels.values()), labels
        assert labels["nvidia.com/gpu.present"] == "true"
        assert labels["nvidia.com/gpu.product"] in products
        assert int(labels["nvidia.com/gpu.count"]) >= 1


def gpu_demand(canary_file: Path) -> dict[str, int]:
    """Product label -> the most GPUs the canary's InferenceServices request at once, over
    every point of its rollout (start, each step, promoted, rolled back)."""
    catalog = load_catalog()
    most: dict[str, int] = {}
    for canary in validated_file(str(canary_file), catalog):
        points = [(0, None), *((s.weight, None) for s in canary.spec.steps)]
        points += [(0, "promoted"), (0, "rolled_back")]
        for weight, outcome in points:
            now: Counter[str] = Counter()
            for obj in desired_objects(canary, catalog, weight, False, outcome):  # type: ignore[arg-type]
                if obj["kind"] != "InferenceService":
                    continue
                predictor = obj["spec"]["predictor"]
                product = predictor["nodeSelector"]["nvidia.com/gpu.product"]
                gpus = int(predictor["model"]["resources"]["limits"]["nvidia.com/gpu"])
                now[product] += gpus * int(predictor.get("maxReplicas", 1))
            for product, count in now.items():
                most[product] = max(most.get(product, 0), count)
    return most


def test_the_example_canary_fits_the_kind_workers_gpus() -> None:
    """Every replica of the example canary finds a (fake) GPU, one spare for a surge pod."""
    capacity: Counter[str] = Counter()
    for labels in kind_nodes("controlplane").values():
        if "nvidia.com/gpu.product" in labels:
            capacity[labels["nvidia.com/gpu.product"]] += int(labels["nvidia.com/gpu.count"])
    demand = gpu_demand(ROOT / defaults()["EXAMPLE_CANARY"])
    assert demand
    for product, count in demand.items():
        assert count + 1 <= capacity[product], (product, count, dict(capacity))


# ----------------------------------------------------------------------------- the script, run


@pytest.mark.binary
def test_kind_up_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: make setup installs the Debian package 'shellcheck'"
    done = subprocess.run(
        [shellcheck, "--external-sources", "--severity=style", str(SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.binary
def test_pins_match_the_upstream_modules() -> None:
    """kind's node image is the one its release names; Envoy Gateway, KServe and cert-manager are
    built against the pinned Gateway API and the node's Kubernetes minor."""
    found = pins()
    kind_src = module("sigs.k8s.io/kind", found["KIND_VERSION"])
    image = re.search(
        r'const Image = "([^"]+)"', (kind_src / "pkg/apis/config/defaults/image.go").read_text()
    )
    assert image, "kind's pkg/apis/config/defaults/image.go names no image"
    assert image.group(1) == found["KIND_NODE_IMAGE"]

    def requires(root: Path, path: str) -> str:
        found_ = re.search(
            rf"^\s*(?:require\s+)?{re.escape(path)} (v\S+)", (root / "go.mod").read_text(), re.M
        )
        assert found_, f"{root}/go.mod requires no {path}"
        return found_.group(1)

    envoy = module("github.com/envoyproxy/gateway", found["ENVOY_GATEWAY_VERSION"])
    kserve = module("github.com/kserve/kserve", found["KSERVE_VERSION"])
    for root in (envoy, kserve):
        assert requires(root, "sigs.k8s.io/gateway-api") == found["GATEWAY_API_VERSION"], root
    cert_manager = module("github.com/cert-manager/cert-manager", found["CERT_MANAGER_VERSION"])
    node = node_image_version(found["KIND_NODE_IMAGE"])
    assert minor(requires(cert_manager, "k8s.io/api").replace("v0.", "1.")) == minor(node)


@dataclass
class Install:
    """What one call of the script installs: its objects, and the namespace Helm would give the
    namespaced ones that name none."""

    source: str
    objects: list[Obj]
    namespace: str | None = None


@dataclass
class Run:
    calls: list[dict[str, Any]]
    output: str
    installs: list[Install] = field(default_factory=list)
    unrendered: list[str] = field(default_factory=list)
    example: list[Obj] = field(default_factory=list)

    def helm(self, release: str) -> dict[str, Any]:
        (entry,) = [c for c in self.calls if c["tool"] == "helm" and c.get("release") == release]
        return entry

    def objects(self) -> list[Obj]:
        return [obj for install in self.installs for obj in install.objects]

    def find(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        hits = [
            o
            for install in self.installs
            for o in install.objects
            if o["kind"] == kind
            and o["metadata"]["name"] == name
            and (namespace is None or namespace_of(o, install) == namespace)
        ]
        assert hits, f"the script installs no {kind} {namespace or ''}/{name}"
        return hits[-1]


# kinds of the installed objects that are cluster-scoped (the loopback test holds this against
# the API server's discovery, so it cannot be wrong unnoticed)
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "GatewayClass",
    "ClusterServingRuntime",
    "ClusterStorageContainer",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


def namespace_of(obj: Obj, install: Install) -> str | None:
    if obj["kind"] in CLUSTER_SCOPED:
        return None
    return obj["metadata"].get("namespace") or install.namespace


class Yaml12(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML with YAML 1.2 floats (``8.0e9``), as kubectl and helm (go-yaml) read them."""


Yaml12.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def documents(text: str) -> list[Obj]:
    docs = [d for d in yaml.load_all(text, Loader=Yaml12) if isinstance(d, dict) and d.get("kind")]
    # `helm install` does not install a chart's test hooks
    return [
        d
        for d in docs
        if "test" not in (d["metadata"].get("annotations") or {}).get("helm.sh/hook", "")
    ]


def gateway_api_standard_install(version: str) -> list[Obj]:
    """standard-install.yaml of a Gateway API release: ``kustomize build config/crd`` of its
    module (the CRDs and the safe-upgrades admission policy)."""
    root = module("sigs.k8s.io/gateway-api", version) / "config" / "crd"
    files = yaml.safe_load((root / "kustomization.yaml").read_text())["resources"]
    return [doc for name in files for doc in documents((root / name).read_text())]


def local_charts(work: Path, found: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Chart reference the script names -> a local folder holding that chart at that version."""
    charts: dict[str, dict[str, Any]] = {}
    kserve = module("github.com/kserve/kserve", found["KSERVE_VERSION"]) / "charts"
    for name in ("kserve-crd", "kserve-resources", "kserve-runtime-configs"):
        chart = yaml.safe_load((kserve / name / "Chart.yaml").read_text())
        assert chart["version"] == found["KSERVE_VERSION"], (name, chart["version"])
        charts[f"oci://ghcr.io/kserve/charts/{name}"] = {
            "dir": str(kserve / name),
            "version": found["KSERVE_VERSION"],
        }
    # Envoy Gateway's release fills the chart's values.tmpl.yaml with its image
    envoy_version = found["ENVOY_GATEWAY_VERSION"]
    envoy = module("github.com/envoyproxy/gateway", envoy_version) / "charts"
    values = work / "gateway-helm-values.yaml"
    values.write_text(
        (envoy / "gateway-helm" / "values.tmpl.yaml")
        .read_text()
        .replace("${GatewayImage}", f"docker.io/envoyproxy/gateway:{envoy_version}")
        .replace("${GatewayImagePullPolicy}", "IfNotPresent")
    )
    for name, extra in (("gateway-crds-helm", []), ("gateway-helm", [str(values)])):
        charts[f"oci://docker.io/envoyproxy/{name}"] = {
            "dir": str(envoy / name),
            "version": envoy_version,
            "values": extra,
        }
    # cert-manager's release build: Chart.yaml from its template, the CRDs into templates/
    cm_version = found["CERT_MANAGER_VERSION"]
    cm = module("github.com/cert-manager/cert-manager", cm_version)
    chart = work / "cert-manager"
    shutil.copytree(cm / "deploy" / "charts" / "cert-manager", chart)
    for path in (chart, *chart.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    text = (chart / "Chart.template.yaml").read_text()
    text = re.sub(r"^version: .*$", f"version: {cm_version}", text, flags=re.M)
    text = re.sub(r"^appVersion: .*$", f"appVersion: {cm_version}", text, flags=re.M)
    (chart / "Chart.yaml").write_text(text)
    sources = sorted((cm / "deploy" / "crds").glob("*.yaml"))
    (chart / "templates" / "crds.yaml").write_text("\n---\n".join(p.read_text() for p in sources))
    charts["oci://quay.io/jetstack/charts/cert-manager"] = {
        "dir": str(chart),
        "version": cm_version,
    }
    charts["charts/controlplane"] = {"dir": str(ROOT / "charts" / "controlplane")}
    return charts


def installs_of(
    calls: list[dict[str, Any]], found: dict[str, str]
) -> tuple[list[Install], list[str]]:
    installs: list[Install] = []
    unrendered: list[str] = []
    for call in calls:
        argv = call["argv"]
        if call["tool"] == "kubectl" and argv[:1] == ["apply"]:
            assert "--server-side" in argv, f"kubectl {' '.join(argv)}: apply server-side"
            source = argv[argv.index("-f") + 1]
            if source == "-":
                installs.append(Install("kubectl apply -f -", documents(call["stdin"])))
                continue
            version = found["GATEWAY_API_VERSION"]
            url = (
                "https://github.com/kubernetes-sigs/gateway-api/releases/download/"
                f"{version}/standard-install.yaml"
            )
            assert source == url, f"kubectl apply -f {source}: no local copy to check it against"
            installs.append(Install(source, gateway_api_standard_install(version)))
        elif call["tool"] == "helm" and argv[0] == "upgrade":
            flags = dict(call["flags"])
            namespace = flags.get("--namespace") or flags.get("-n")
            objects = [] if call["rendered"] is None else documents(call["rendered"])
            if call["rendered"] is None:
                unrendered.append(call["chart"])
            if "--create-namespace" in flags:
                ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
                objects.insert(0, ns)
            installs.append(Install(f"helm {call['release']}", objects, namespace))
    return installs, unrendered


@pytest.fixture(scope="module")
def kind_up(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """scripts/kind-up.sh, every step, with the stand-ins on PATH and the pinned defaults."""
    try:
        helm = binary("helm")
    except ControlPlaneError as exc:
        pytest.fail(str(exc), pytrace=False)
    found = pins()
    work = tmp_path_factory.mktemp("kind-up")
    bindir = work / "bin"
    bindir.mkdir()
    for tool in ("kind", "kubectl", "helm", "docker"):
        wrapper = bindir / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKEBIN}" {tool} "$@"\n')
        wrapper.chmod(0o755)
    log = work / "calls.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in defaults() and k != "STEPS"}
    env.update(
        PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}",
        FAKE_LOG=str(log),
        FAKE_HELM=str(helm),
        FAKE_CHARTS=json.dumps(local_charts(work, found)),
        FAKE_NODES=json.dumps(kind_nodes(defaults()["CLUSTER"])),
        FAKE_KIND_VERSION=found["KIND_VERSION"],
        FAKE_KUBE_VERSION=node_image_version(found["KIND_NODE_IMAGE"]),
    )
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        env=env,
        cwd=work,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    errors = [c["error"] for c in calls if c.get("error")]
    said = f"{errors}\n{done.stdout[-3000:]}\n{done.stderr}"
    assert done.returncode == 0, said
    assert not errors, said
    installs, unrendered = installs_of(calls, found)
    return Run(calls, done.stdout, installs, unrendered, rendered_example(calls, work))


@pytest.mark.binary
def test_the_script_runs_every_step(kind_up: Run) -> None:
    found = pins()
    (create,) = [c["argv"] for c in kind_up.calls if c["argv"][:2] == ["create", "cluster"]]
    assert create[create.index("--image") + 1] == found["KIND_NODE_IMAGE"]
    assert create[create.index("--config") + 1] == "kind-config.yaml"
    releases = [
        c["release"] for c in kind_up.calls if c["tool"] == "helm" and c["argv"][0] == "upgrade"
    ]
    assert releases == [
        "eg",
        "cert-manager",
        "kserve-crd",
        "kserve-resources",
        "kserve-runtime-configs",
        defaults()["PROM_RELEASE"],
        defaults()["RELEASE"],
    ]
    # every chart but our own comes from an OCI registry at a pinned version: no helm repo state
    for call in kind_up.calls:
        if call["tool"] == "helm":
            flags = dict(call["flags"])
            if call["chart"] != "charts/controlplane":
                assert call["chart"].startswith("oci://"), call["chart"]
                assert flags["--version"] in found.values(), call["argv"]
    assert kind_up.unrendered == ["oci://ghcr.io/prometheus-community/charts/kube-prometheus-stack"]
    # the GPU step patched each GPU worker kind-config.yaml declares
    patched = [c["argv"][2] for c in kind_up.calls if c["argv"][:2] == ["patch", "node"]]
    nodes = kind_nodes(defaults()["CLUSTER"])
    assert patched == [n for n, labels in nodes.items() if labels.get("nvidia.com/gpu.present")]


@pytest.mark.binary
def test_kserve_routes_through_a_gateway_the_script_creates(kind_up: Run) -> None:
    """KServe's config names a Gateway the script installs, of a class Envoy Gateway controls,
    in Standard mode with Gateway API on; the Hugging Face runtime the controller renders is
    there."""
    config = kind_up.find("ConfigMap", "inferenceservice-config", "kserve")
    ingress = json.loads(config["data"]["ingress"])
    assert ingress["enableGatewayApi"] is True
    assert json.loads(config["data"]["deploy"])["defaultDeploymentMode"] == "Standard"
    namespace, _, name = ingress["kserveIngressGateway"].partition("/")
    assert (namespace, name) == ("kserve", "kserve-ingress-gateway")  # KServe's default
    gateway = kind_up.find("Gateway", name, namespace)
    gateway_class = kind_up.find("GatewayClass", gateway["spec"]["gatewayClassName"])
    assert gateway_class["spec"]["controllerName"] == EG_CONTROLLER
    eg_config = yaml.safe_load(
        kind_up.find("ConfigMap", "envoy-gateway-config", "envoy-gateway-system")["data"][
            "envoy-gateway.yaml"
        ]
    )
    assert eg_config["gateway"]["controllerName"] == EG_CONTROLLER
    ref = gateway_class["spec"]["parametersRef"]
    proxy = kind_up.find(ref["kind"], ref["name"], ref["namespace"])
    # kind has no load balancer: an address-less Gateway is never Programmed
    assert proxy["spec"]["provider"]["kubernetes"]["envoyService"]["type"] == "ClusterIP"

    # the example canary, as the script applies it, and what the controller renders for it
    (canary,) = [o for o in kind_up.objects() if o["kind"] == "ModelCanary"]
    assert canary["metadata"]["namespace"] == defaults()["CANARY_NAMESPACE"]
    rendered = kind_up.example
    runtimes = {
        o["metadata"]["name"]: {f["name"] for f in o["spec"]["supportedModelFormats"]}
        for o in kind_up.objects()
        if o["kind"] == "ClusterServingRuntime"
    }
    isvcs = [o for o in rendered if o["kind"] == "InferenceService"]
    assert isvcs
    for isvc in isvcs:
        model = isvc["spec"]["predictor"]["model"]
        assert model["modelFormat"]["name"] in runtimes.get(model["runtime"], set()), model
    for route in (o for o in rendered if o["kind"] == "HTTPRoute"):
        for parent in route["spec"]["parentRefs"]:
            gw = kind_up.find("Gateway", parent["name"], parent.get("namespace"))
            assert gw["spec"]["gatewayClassName"] == gateway_class["metadata"]["name"]
            allowed = {l_["allowedRoutes"]["namespaces"]["from"] for l_ in gw["spec"]["listeners"]}
            assert allowed == {"All"}, (parent, allowed)


def rendered_example(calls: list[dict[str, Any]], work: Path) -> list[Obj]:
    """What the controller renders first for the canary the script applies (candidate at 0 %)."""
    (call,) = [c for c in calls if c.get("stdin") and "kind: ModelCanary" in c["stdin"]]
    path = work / "example-canary.yml"
    path.write_text(call["stdin"])
    catalog = load_catalog()
    return [
        o for c in validated_file(str(path), catalog) for o in desired_objects(c, catalog, 0, False)
    ]


@pytest.mark.binary
def test_the_chart_values_line_up_with_the_other_steps(kind_up: Run) -> None:
    names = defaults()
    built = [c["argv"] for c in kind_up.calls if c["tool"] == "docker"]
    (build,) = [a for a in built if a[:1] == ["build"]]
    image = build[build.index("-t") + 1]
    (load,) = [c["argv"] for c in kind_up.calls if c["argv"][:2] == ["load", "docker-image"]]
    assert load[2] == image
    sets = dict(v.split("=", 1) for k, v in kind_up.helm(names["RELEASE"])["flags"] if k == "--set")
    assert f"{sets['image.repository']}:{sets['image.tag']}" == image
    kps = kind_up.helm(names["PROM_RELEASE"])
    kps_sets = dict(v.split("=", 1) for k, v in kps["flags"] if k == "--set")
    kps_ns = dict(kps["flags"])["--namespace"]
    # kube-prometheus-stack names its Prometheus Service <fullname>-prometheus, port 9090, and
    # selects monitors and rules by the label release=<its release name>
    url = f"http://{kps_sets['fullnameOverride']}-prometheus.{kps_ns}:9090"
    assert sets["controller.prometheusUrl"] == url
    for monitor in ("podMonitor", "serviceMonitor", "prometheusRule"):
        assert sets[f"{monitor}.labels.release"] == names["PROM_RELEASE"]
    assert sets["dashboards.namespace"] == kps_ns
    assert kps_sets["grafana.sidecar.dashboards.searchNamespace"] == "ALL"
    deployment = kind_up.find("Deployment", names["RELEASE"], names["NAMESPACE"])
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image
    assert container["imagePullPolicy"] == "IfNotPresent"  # kind load, no registry


# ----------------------------------------------------------------------------- on the API server


def sendable(obj: Obj) -> Obj:
    """``obj`` less what the server owns and drops from an apply: ``status`` (the placeholder
    stanza controller-gen writes into CRDs) and a null ``creationTimestamp``."""
    meta = {
        k: v for k, v in obj["metadata"].items() if not (k == "creationTimestamp" and v is None)
    }
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?")
SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
SUFFIX |= {"m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
SUFFIX |= {"E": 10**18, None: 1}


def quantity(value: Any) -> Decimal | None:
    found = QUANTITY.fullmatch(value) if isinstance(value, str) else None
    return Decimal(found.group(1)) * SUFFIX[found.group(2)] if found else None


def as_stored(sent: Any, got: Any) -> Any:
    """``sent`` as the server stores it without losing anything: quantities in canonical form
    (``1024Mi`` is ``1Gi``), and empty lists and maps left out (Go's omitempty)."""
    if isinstance(sent, dict) and isinstance(got, dict):
        return {
            k: as_stored(v, got.get(k))
            for k, v in sent.items()
            if not (v in ([], {}) and k not in got)
        }
    if isinstance(sent, list) and isinstance(got, list) and len(sent) == len(got):
        return [as_stored(s, g) for s, g in zip(sent, got, strict=True)]
    if quantity(sent) is not None and quantity(sent) == quantity(got):
        return got
    return sent


def admission(obj: Obj) -> bool:
    return obj["kind"] in {
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    yield from running_cluster(tmp_path_factory.mktemp("kind-up-kube"))


@pytest.mark.binary
def test_everything_it_installs_applies_strictly(
    kind_up: Run, own_cluster: LoopbackCluster
) -> None:
    cluster = own_cluster
    problems: list[str] = []

    def put(obj: Obj, where: str) -> None:
        obj = sendable(obj)
        try:
            answers = [apply_strict(cluster, obj), read_back(cluster, obj)]
        except Refused as exc:
            problems.append(f"{where}: {exc}")
            return
        lost = [p for got in answers for p in lost_fields(as_stored(obj, got), got)]
        problems.extend(f"{where}: {describe(obj)} {p}" for p in dict.fromkeys(lost))

    # the CRDs, the script's and the Prometheus Operator's standing in for kube-prometheus-stack's
    installed = [
        (install.source, o)
        for install in kind_up.installs
        for o in install.objects
        if o["kind"] == "CustomResourceDefinition"
    ]
    installed += [("prometheus-operator CRDs", o) for o in crds(PROMETHEUS_OPERATOR)]
    for source, crd in installed:
        put(crd, source)
    assert not problems, "\n".join(problems)
    wait_served(cluster, [crd for _, crd in installed], timeout=120.0)

    later: list[tuple[str, Obj]] = []
    kinds: dict[str, bool] = {}
    ordered: list[tuple[str, Obj]] = []
    for install in kind_up.installs:
        for obj in install.objects:
            if obj["kind"] == "CustomResourceDefinition":
                continue
            res = resource(cluster, obj["apiVersion"], obj["kind"])
            kinds[obj["kind"]] = res.namespaced
            if res.namespaced and not obj["metadata"].get("namespace"):
                obj = {**obj, "metadata": {**obj["metadata"], "namespace": install.namespace}}
            item = (install.source, obj)
            (later if admission(obj) else ordered).append(item)
    ordered.sort(key=lambda item: item[1]["kind"] != "Namespace")  # stable: namespaces first
    ordered += [("rendered for the example canary", o) for o in kind_up.example]
    for source, obj in ordered + later:
        put(obj, source)
    assert not problems, "\n".join(problems)
    assert {k for k, namespaced in kinds.items() if not namespaced} <= CLUSTER_SCOPED
    assert not {k for k, namespaced in kinds.items() if namespaced} & CLUSTER_SCOPED
    assert len(ordered) + len(later) > 100  # what the charts render: not a silent empty run
    print(f"{len(installed)} CRDs and {len(ordered) + len(later)} objects applied")


@pytest.mark.binary
def test_the_gpu_patch_gives_each_worker_its_gpus(
    kind_up: Run, own_cluster: LoopbackCluster
) -> None:
    """The JSON patch the gpu step sends, on Nodes shaped like kind's workers."""
    nodes = kind_nodes(defaults()["CLUSTER"])
    for name, labels in nodes.items():
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}
        own_cluster.request("POST", "/api/v1/nodes", node)
        status = {"status": {"capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"}}}
        own_cluster.request(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            status,
            content_type="application/merge-patch+json",
        )
    for call in kind_up.calls:
        argv = call["argv"]
        if argv[:2] != ["patch", "node"]:
            continue
        assert argv[3:6] == ["--subresource=status", "--type=json", "-p"], argv
        own_cluster.request(
            "PATCH",
            f"/api/v1/nodes/{argv[2]}/status",
            json.loads(argv[6]),
            content_type="application/json-patch+json",
        )
    for name, labels in nodes.items():
        capacity = own_cluster.request("GET", f"/api/v1/nodes/{name}")["status"]["capacity"]
        assert capacity.get("nvidia.com/gpu") == labels.get("nvidia.com/gpu.count"), name
