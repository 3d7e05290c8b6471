"""The install files that cannot run here: the Dockerfile (no Docker daemon on this machine or in
CI) is checked for its rules, and scripts/kind-up.sh + kind-config.yaml (no kind here) are
syntax-checked (bash -n, shellcheck) and checked for pinned versions and GPU
labels that the controller's GPU catalogue knows."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml
from support.chart import CHART, KUBE_VERSION, ROOT

from controlplane.profiles.catalog import load_catalog

SCRIPT = ROOT / "scripts" / "kind-up.sh"
KIND_CONFIG = ROOT / "kind-config.yaml"
DOCKERFILE = ROOT / "Dockerfile"


def script_defaults() -> dict[str, str]:
    return dict(re.findall(r'^([A-Z_]+)="\$\{[A-Z_]+:-([^}]*)\}"', SCRIPT.read_text(), re.M))


# ----------------------------------------------------------------------------- Dockerfile


def stages() -> list[tuple[str, list[str]]]:
    """(FROM line, instructions) per stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            found.append((line, []))
        elif found:
            found[-1][1].append(line)
    return found


def test_dockerfile_is_multi_stage_with_a_wheel_builder() -> None:
    built = stages()
    assert len(built) == 2
    (builder_from, builder), (_runtime_from, runtime) = built
    assert builder_from.endswith(" AS builder")
    assert any("pip wheel" in i for i in builder)
    assert any("--from=builder" in i or "from=builder" in i for i in runtime)
    assert not any(i.upper().startswith("COPY") and "controlplane" in i for i in runtime), (
        "the runtime stage installs wheels, it does not copy sources"
    )


def test_dockerfile_base_image_is_pinned() -> None:
    (arg,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    pinned = re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", arg)
    assert pinned, f"{arg}: pin a full patch version (or a digest), never a floating tag"
    assert all(f.split()[1] == "${PYTHON_IMAGE}" for f, _ in stages())


def test_dockerfile_runtime_is_non_root_without_build_tools() -> None:
    _, runtime = stages()[-1]
    users = [i.split()[1] for i in runtime if i.upper().startswith("USER ")]
    assert users
    assert users[-1] == "65532:65532"
    joined = "\n".join(runtime)
    for tool in ("apt-get install", "gcc", "build-essential", "git "):
        assert tool not in joined, tool
    assert "pip uninstall -y pip" in joined
    assert runtime[-1] == 'ENTRYPOINT ["canaryctl", "controller"]'
    pod = yaml.safe_load((CHART / "values.yaml").read_text())["podSecurityContext"]
    assert pod["runAsUser"] == 65532
    assert pod["runAsGroup"] == 65532


def test_dockerignore_sends_only_what_the_image_builds_from() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for _, instructions in stages():
        for i in instructions:
            if i.startswith("COPY ") and "--from" not in i:
                copied.update(i.split()[1:-1])
    assert copied <= allowed
    assert all((ROOT / path).exists() for path in copied)


# ----------------------------------------------------------------------------- kind


@pytest.mark.binary
def test_kind_up_script_parses() -> None:
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.binary
def test_the_shell_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: make setup installs the Debian package 'shellcheck'"
    scripts = [str(path) for path in sorted(SCRIPT.parent.glob("*.sh"))]
    assert str(SCRIPT) in scripts
    done = subprocess.run([shellcheck, *scripts], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_kind_up_pins_every_version() -> None:
    defaults = script_defaults()
    versions = {k: v for k, v in defaults.items() if k.endswith("_VERSION")}
    assert set(versions) == {
        "GATEWAY_API_VERSION",
        "CERT_MANAGER_VERSION",
        "KSERVE_VERSION",
        "KUBE_PROMETHEUS_STACK_VERSION",
    }
    for name, value in versions.items():
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", value), f"{name}={value} is not pinned"
    image = defaults["KIND_NODE_IMAGE"]
    match = re.fullmatch(r"kindest/node:v(\d+\.\d+)\.\d+", image)
    assert match, image
    # the chart's objects are validated against this Kubernetes version's schemas
    assert match.group(1) == KUBE_VERSION.rsplit(".", 1)[0]
    assert defaults["KSERVE_DEPLOYMENT_MODE"] in ("Standard", "RawDeployment")


def test_kind_workers_carry_gpu_labels_the_catalogue_knows() -> None:
    config = yaml.safe_load(KIND_CONFIG.read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    workers = [n for n in config["nodes"] if n["role"] == "worker"]
    assert workers
    products = {g.product_label for g in load_catalog().gpus.values()}
    for worker in workers:
        labels = worker["labels"]
        assert labels["nvidia.com/gpu.product"] in products
        assert int(labels["nvidia.com/gpu.count"]) >= 1  # the fake capacity kind-up.sh patches
        assert all(isinstance(v, str) for v in labels.values())
    # the example canary the script applies fits a worker's GPU
    example = ROOT / script_defaults()["EXAMPLE_CANARY"]
    spec = yaml.safe_load(example.read_text())["spec"]
    catalog = load_catalog()
    worker_products = {w["labels"]["nvidia.com/gpu.product"] for w in workers}
    for variant in ("stable", "candidate"):
        gpu = catalog.gpus[spec[variant]["gpu"]]
        assert gpu.product_label in worker_products, (variant, gpu.product_label)
