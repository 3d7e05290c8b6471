"""The layers are enforced: ``lint-imports`` (run by ``make lint``) fails on an import that
crosses them, and every package of controlplane is placed in them.

The crossing cases run ``lint-imports`` on a throwaway copy of the package with one module added
(a lower layer importing a higher one, one sibling importing another, I/O in the pure core, a
new package nobody placed), under the repository's own contracts, and expect it to fail naming
the contract; the same run on the unmodified copy passes, so a failure is the added module's.
"""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import controlplane

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
LAYERS = next(c for c in CONFIG["contracts"] if c["type"] == "layers")


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


def lint(tmp_path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the repository's contracts on a copy of the package plus ``extra``
    (path under controlplane/ -> source)."""
    shutil.copytree(
        ROOT / "controlplane",
        tmp_path / "controlplane",
        ignore=shutil.ignore_patterns("__pycache__", "data"),
    )
    for path, source in extra.items():
        target = tmp_path / "controlplane" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source)
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
        {"spec/_crossing.py": "from controlplane.analysis import resolution\n"},
        "layers: shells over the pure core BROKEN",
    ),
    "controller imports gitops (independent siblings)": (
        {"controller/_crossing.py": "from controlplane.gitops import source\n"},
        "layers: shells over the pure core BROKEN",
    ),
    "analysis imports a provider": (
        {"analysis/_crossing.py": "from controlplane.providers import prometheus\n"},
        "pure core does no I/O BROKEN",
    ),
    "analysis does HTTP": (
        {"analysis/_crossing.py": "import requests\n"},
        "pure core does no I/O BROKEN",
    ),
    "routing imports the kubernetes client (only kube/ may)": (
        {"routing/_crossing.py": "import kubernetes\n"},
        "only kube/ imports the kubernetes client BROKEN",
    ),
    "a new package nobody placed": (
        {"newpackage/__init__.py": ""},
        "layers: shells over the pure core BROKEN",
    ),
}


@pytest.mark.binary
@pytest.mark.parametrize("case", list(CROSSINGS))
def test_an_import_that_crosses_a_layer_fails_lint(tmp_path: Path, case: str) -> None:
    extra, broken = CROSSINGS[case]
    result = lint(tmp_path, extra)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout + result.stderr
