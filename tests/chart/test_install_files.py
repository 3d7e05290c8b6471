"""The install files that cannot run here: the Dockerfile (no Docker daemon on this machine or in
CI) is checked for its rules, and every shell script under scripts/ passes shellcheck.
scripts/kind-up.sh and kind-config.yaml (no kind here) have their own tests:
tests/scripts/test_kind_up.py runs the script on stand-ins and applies what it installs to a
loopback API server."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml
from support.chart import CHART, ROOT

SCRIPT = ROOT / "scripts" / "kind-up.sh"
DOCKERFILE = ROOT / "Dockerfile"


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
    # the chart's args start with the verb: an entrypoint that names it too would run
    # `canaryctl controller controller ...` (the pod's first start on the real node said so)
    assert runtime[-2:] == ['ENTRYPOINT ["canaryctl"]', 'CMD ["controller"]']
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert re.search(r"^        args:\n        - controller$", deployment, re.M)
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
    # the package data are links: what they point to is sent and copied too (the first image
    # built here had none and its controller exited at start: "gpus.yaml is missing")
    for link in (p for p in (ROOT / "controlplane").rglob("*") if p.is_symlink()):
        target = link.resolve().relative_to(ROOT)
        assert any(target.is_relative_to(path) for path in copied), (link, target)


# ----------------------------------------------------------------------------- shell scripts


@pytest.mark.binary
def test_the_shell_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: make setup installs the Debian package 'shellcheck'"
    scripts = [str(path) for path in sorted(SCRIPT.parent.glob("*.sh"))]
    assert str(SCRIPT) in scripts
    done = subprocess.run([shellcheck, *scripts], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
