"""The layers are enforced: ``lint-imports`` (run by ``make lint``) fails on an import that
crosses them, and every package of controlplane -- and of the test harness beside it -- is placed
in them.

The crossing cases run ``lint-imports`` on a throwaway copy of the package and the harness with
one module added or one import appended (a lower layer importing a higher one, one sibling
importing another, I/O in the pure core, the product importing the harness, a crossing inside a
package, a new package nobody placed), under the repository's own contracts, and expect it to fail
naming the contract; the same run on the unmodified copy passes, so a failure is the change's.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import controlplane
import harness

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
LAYERS = next(c for c in CONFIG["contracts"] if c["type"] == "layers")
NESTED = [
    c for c in CONFIG["contracts"] if c["type"] == "layers" and c["containers"] != ["controlplane"]
]


def placed() -> set[str]:
    return {name.strip() for layer in LAYERS["layers"] for name in layer.split("|")}


def test_every_package_and_top_level_module_is_placed_in_one_layer() -> None:
    children = {info.name for info in pkgutil.iter_modules(controlplane.__path__)}
    assert placed() == children
    names = [name.strip() for layer in LAYERS["layers"] for name in layer.split("|")]
    assert len(names) == len(set(names))
    assert LAYERS["containers"] == ["controlplane"]
    assert LAYERS["exhaustive"] is True  # lint-imports itself refuses an unplaced package
    assert not any(c.get("ignore_imports") for c in CONFIG["contracts"])
    assert not any(c.get("allow_indirect_imports") for c in CONFIG["contracts"])


def test_the_harness_is_a_root_package_the_product_never_imports() -> None:
    assert CONFIG["root_packages"] == ["controlplane", "harness"]
    forbidden = [c for c in CONFIG["contracts"] if c["type"] == "forbidden"]
    assert any(
        c["source_modules"] == ["controlplane"] and c["forbidden_modules"] == ["harness"]
        for c in forbidden
    )


def packages() -> set[str]:
    """Every package of the product and of the harness, subpackages included."""
    found = {"harness"}
    for root in (controlplane, harness):
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{root.__name__}."):
            if info.ispkg:
                found.add(info.name)
    return found


def test_every_package_has_a_nested_contract_that_places_every_module() -> None:
    containers = {c["containers"][0] for c in NESTED}
    assert containers == packages()
    assert {
        "harness.cluster",
        "harness.node",
        "controlplane.analysis.sequential",
        "controlplane.promql",
    } <= containers
    for contract in NESTED:
        (container,) = contract["containers"]
        package = importlib.import_module(container)
        children = {info.name for info in pkgutil.iter_modules(package.__path__)}
        names = [name.strip() for layer in contract["layers"] for name in layer.split("|")]
        assert sorted(names) == sorted(children), container
        assert contract["exhaustive"] is True, container
    assert {info.name for info in pkgutil.iter_modules(harness.__path__)} == {
        "__main__",
        "cli",
        "node",
        "peers",
        "cluster",
        "kube",
        "providers",
        "servers",
        "tiny_model",
        "virtual_host",
        "tools",
        "vllm_cpu",
    }


def test_no_import_cycle_between_modules_or_packages() -> None:
    """No circle anywhere: between modules (imports inside functions and under TYPE_CHECKING
    count), nor between the packages of one parent."""
    import grimp

    graph = grimp.build_graph("controlplane", "harness")
    modules = sorted(graph.modules)
    for module in modules:
        for other in graph.find_modules_directly_imported_by(module):
            assert not graph.chain_exists(importer=other, imported=module), (module, other)
    for package in sorted(packages() | {"controlplane"}):
        children = sorted(graph.find_children(package))
        for a in children:
            for b in children:
                if a < b and graph.chain_exists(importer=a, imported=b, as_packages=True):
                    assert not graph.chain_exists(importer=b, imported=a, as_packages=True), (a, b)


def lint(tmp_path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the repository's contracts on a copy of the package and the harness
    plus ``extra`` (path under the repository -> source; appended to a module that exists)."""
    for package in ("controlplane", "harness"):
        shutil.copytree(
            ROOT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "data"),
        )
    for path, source in extra.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        before = target.read_text() if target.exists() else ""
        target.write_text(before + source)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.binary
def test_the_unmodified_copy_keeps_every_contract(tmp_path: Path) -> None:
    result = lint(tmp_path, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout


CROSSINGS = {
    "spec imports analysis (a lower layer importing a higher one)": (
        {"controlplane/spec/_crossing.py": "from controlplane.analysis import resolution\n"},
        "layers: shells over the pure core BROKEN",
    ),
    "controller imports gitops (independent siblings)": (
        {"controlplane/controller/_crossing.py": "from controlplane.gitops import source\n"},
        "layers: shells over the pure core BROKEN",
    ),
    "analysis imports a provider": (
        {"controlplane/analysis/_crossing.py": "from controlplane.providers import prometheus\n"},
        "pure core does no I/O BROKEN",
    ),
    "analysis does HTTP": (
        {"controlplane/analysis/_crossing.py": "import requests\n"},
        "pure core does no I/O BROKEN",
    ),
    "routing imports the kubernetes client (only kube/ may)": (
        {"controlplane/routing/_crossing.py": "import kubernetes\n"},
        "only kube/ imports the kubernetes client BROKEN",
    ),
    "a new package nobody placed": (
        {"controlplane/newpackage/__init__.py": ""},
        "layers: shells over the pure core BROKEN",
    ),
    "the product imports the harness": (
        {"controlplane/cli/_crossing.py": "from harness.kube import fake\n"},
        "controlplane does not import the harness BROKEN",
    ),
    "the controller's children import the reconcile (inside a package)": (
        {"controlplane/controller/children.py": "from controlplane.controller import reconcile\n"},
        "controller: the loop over the reconcile over its effects BROKEN",
    ),
    "the spec's messages import the loader (the old cycle)": (
        {"controlplane/spec/pydantic_errors.py": "from controlplane.spec import load\n"},
        "spec: the loader and the rules over the messages over the models BROKEN",
    ),
    "a new PromQL module nobody placed (inside a package)": (
        {"controlplane/promql/newmodule.py": ""},
        "promql: the grouped form over the per-canary queries over the metric contract BROKEN",
    ),
    "the status document imports the controller": (
        {"controlplane/status/document.py": "from controlplane.controller import reconcile\n"},
        "layers: shells over the pure core BROKEN",
    ),
    "the API server module imports the add-ons it starts (the harness's old cycle)": (
        {"harness/cluster/kubeapi.py": "from harness.cluster import kserve\n"},
        "harness.cluster: the add-ons over the API server BROKEN",
    ),
    "the fakes import the loopback cluster (harness siblings)": (
        {"harness/kube/fake.py": "from harness.cluster import kubeapi\n"},
        "harness: the command line over the node over cluster, fakes and stand-ins BROKEN",
    ),
    "the loopback cluster imports the real node that runs on it": (
        {"harness/cluster/workloads.py": "from harness.node import node\n"},
        "harness: the command line over the node over cluster, fakes and stand-ins BROKEN",
    ),
    "a new harness module nobody placed": (
        {"harness/newmodule.py": ""},
        "harness: the command line over the node over cluster, fakes and stand-ins BROKEN",
    ),
}


@pytest.mark.binary
@pytest.mark.parametrize("case", list(CROSSINGS))
def test_an_import_that_crosses_a_layer_fails_lint(tmp_path: Path, case: str) -> None:
    extra, broken = CROSSINGS[case]
    result = lint(tmp_path, extra)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout + result.stderr
