"""The wheel holds the product and nothing of its test harness.

Builds the wheel the way a release would (``uv build --wheel``, with the pinned uv that ``make``
installs; the build backend, setuptools, comes from PyPI into uv's cache) from a copy of the
repository, lists its files with :mod:`zipfile` and expects every module of ``controlplane/``
there, and no ``harness/``, no fake and no loopback-cluster module (docs/architecture.md, "The
test harness"). The copy keeps a stale ``build/`` folder of the checkout out of the wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support.uv import pinned_uv

ROOT = Path(__file__).resolve().parents[1]

# what left the package for harness/ (issue #34): none of it may come back into the wheel.
# Module names of the loopback cluster (routing/ keeps its own kserve.py and llmisvc.py: routers)
LOOPBACK = {"kubeapi", "workloads", "upstream_crds", "promoperator", "gatewaystatus"}
LOOPBACK_IN_LOCAL = LOOPBACK | {"kserve", "llmisvc", "cli"}
# and what the harness defines, wherever a module holding it would be put
HARNESS_CODE = re.compile(
    r"^class (FakeKube|FakeKServe|EventLog|StaticProvider|LoopbackCluster|KubeSetupError)\b"
    r"|^def (start_cluster|start_workloads|start_kserve|start_llmisvc|start_operator)\(",
    flags=re.M,
)
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    ".kube-up",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=COPY_IGNORE)
    out = work / "dist"
    result = subprocess.run(
        [str(pinned_uv()), "build", "--wheel", "--out-dir", str(out), "--python", sys.executable],
        cwd=source,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("controlplane-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


@pytest.mark.binary
def test_the_wheel_ships_no_harness_no_fake_and_no_loopback_cluster(
    wheel: Path, wheel_files: list[str]
) -> None:
    modules = [name for name in wheel_files if name.endswith(".py")]
    assert not [name for name in wheel_files if name.startswith("harness/")]
    assert not [name for name in modules if "fake" in Path(name).name]
    assert not [name for name in modules if Path(name).stem in LOOPBACK]
    assert not [
        name
        for name in modules
        if name.startswith("controlplane/local/") and Path(name).stem in LOOPBACK_IN_LOCAL
    ]
    assert "controlplane/providers/static.py" not in modules
    with zipfile.ZipFile(wheel) as archive:
        defining = [name for name in modules if HARNESS_CODE.search(archive.read(name).decode())]
    assert defining == []
    assert {name.split("/", 1)[0] for name in wheel_files} == {
        "controlplane",
        next(name.split("/", 1)[0] for name in wheel_files if ".dist-info/" in name),
    }


@pytest.mark.binary
def test_the_wheel_ships_every_module_of_the_product(wheel_files: list[str]) -> None:
    tree = sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "controlplane").rglob("*.py")
        if "__pycache__" not in path.parts
    )
    assert sorted(name for name in wheel_files if name.endswith(".py")) == tree
    # the data the product reads at run time (package-data)
    assert "controlplane/local/data/four-week.yml" in wheel_files
    assert "controlplane/py.typed" in wheel_files


def test_the_pattern_finds_what_the_harness_defines() -> None:
    """The wheel's check is not vacuous: it finds every defining module of the harness."""
    found = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "harness").rglob("*.py")
        if HARNESS_CODE.search(path.read_text())
    }
    assert {
        "harness/kube/fake.py",
        "harness/kube/fake_kserve.py",
        "harness/kube/fake_watch.py",
        "harness/providers.py",
        "harness/cluster/kubeapi.py",
        "harness/cluster/workloads.py",
        "harness/cluster/kserve.py",
        "harness/cluster/llmisvc.py",
        "harness/cluster/promoperator.py",
    } <= found
