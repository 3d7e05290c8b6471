"""The base install works without the optional ``local-cpu`` extra (torch and what it brings).

A user who ``pip install controlplane`` without ``[local-cpu]`` gets every module of the product,
and the commands that need the extra say what to install instead of failing with a traceback.
This builds that install for real: a virtual environment synced from ``uv.lock`` with the
``dev`` extra and without ``local-cpu``, by the pinned uv ``make`` installs, offline from uv's
cache (the full install filled it), in a temporary folder; then, in it:

- every module of ``controlplane`` and ``harness`` imports, and mypy (strict, on a cache of
  its own) and the import layers pass: the extra's annotations are absent there, so a
  ``type: ignore`` that only torch's types need would be reported unused;
- ``canaryctl validate`` accepts every example in ``canary/``;
- the two commands that run torch in-process (``profile --in-process`` and ``up --engine
  transformers``) exit 1 with the package to install.

``.ci/run`` once ran lint and the whole fast tier a second time in such an environment; the
product imports the extra's modules in two places only
(:mod:`controlplane.sweep.inprocess`, :mod:`controlplane.local.engines.transformers_engine`), so
this check holds the same promise for seconds instead of minutes (docs/testing.md, "Without the
optional extra").
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from support.extras import LOCAL_CPU
from support.uv import pinned_uv

pytestmark = [
    pytest.mark.binary,
    pytest.mark.xdist_group("base-install"),
    pytest.mark.timeout(600),  # a bound on a hang: mypy from an empty cache on a loaded machine
]

ROOT = Path(__file__).resolve().parents[1]
EXTRA_ONLY = (*LOCAL_CPU, "guidellm", "tokenizers", "safetensors")
"""Modules the extra brings that the base install has not: none may be found there."""
SYNC = ("sync", "-q", "--locked", "--offline", "--extra", "dev")
"""The base install with the dev tools, from the lock and uv's cache alone."""
IN_PROCESS = ("profile", "--in-process", "--quantization", "bitsandbytes-nf4")
IMPORT_ALL = """
import importlib, pkgutil, sys
names = []
for root in ("controlplane", "harness"):
    package = importlib.import_module(root)
    for info in pkgutil.walk_packages(package.__path__, root + "."):
        if not info.name.endswith(".__main__"):  # runs a command line when imported
            importlib.import_module(info.name)
            names.append(info.name)
found = [n for n in sys.argv[1:] if importlib.util.find_spec(n) is not None]
print(len(names), "modules;", "found:", ",".join(found) or "none")
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base install's environment: ``uv sync --locked --extra dev``, no ``local-cpu``."""
    venv = tmp_path_factory.mktemp("base") / "venv"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
    }
    result = subprocess.run(
        [str(pinned_uv()), *SYNC, "--python", sys.executable],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return venv / "bin"


def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        list(argv), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_every_module_imports_without_the_extra(base: Path) -> None:
    result = run([str(base / "python"), "-c", IMPORT_ALL, *EXTRA_ONLY])
    assert result.returncode == 0, result.stdout + result.stderr
    count, found = result.stdout.strip().split(";")
    assert int(count.split()[0]) > 250, result.stdout  # the walk found the packages
    assert found.strip() == "found: none", result.stdout


def test_types_and_layers_check_without_the_extra(base: Path, tmp_path: Path) -> None:
    mypy = run([str(base / "mypy"), "--cache-dir", str(tmp_path), "controlplane", "harness"])
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
    layers = run([str(base / "lint-imports")])
    assert layers.returncode == 0, layers.stdout + layers.stderr


def test_the_examples_validate_without_the_extra(base: Path) -> None:
    examples = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "canary").glob("*.yml"))
    result = run([str(base / "canaryctl"), "validate", *examples])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(examples)} file(s) valid" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            [*IN_PROCESS, "--arch", "llama-3.1-8b"],
            "needs torch, which is not installed (pip install 'controlplane[local-cpu]')",
        ),
        (
            ["up", "canary/local-demo.yml", "--engine", "transformers"],
            "pip install 'controlplane[local-cpu]'",
        ),
    ],
)
def test_what_needs_the_extra_says_what_to_install(base: Path, argv: list[str], said: str) -> None:
    result = run([str(base / "canaryctl"), *argv])
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert said in out, out
    assert "Traceback" not in out, out
