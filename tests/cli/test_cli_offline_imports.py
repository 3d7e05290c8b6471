"""The offline verbs load no heavy stack: ``canaryctl --help`` and ``canaryctl validate FILE``
import neither numpy, scipy, matplotlib, the Kubernetes client nor an HTTP client.

Checking a spec in CI or a pre-commit hook should start as fast as ``kubectl`` does; before the
sequential judge's spec rules moved to ``analysis/sequential/support.py``, validating imported
scipy through ``validation`` -> ``sequential.check`` -> ``eprocess``. Each case runs in a fresh
interpreter (this one has loaded everything already) and reports what it imported. Later,
``validate`` imported the controller's adoption code (hera, requests, numpy) for its
``--cluster`` option; it loads it only with ``--cluster`` now. ``simulate`` may load numpy but
not scipy (a spec without a sequential check), and ``list`` the Kubernetes client and none of
what it does not use (:data:`LIST_SPARED`). The seconds are bench/cli_start.py's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "scipy", "matplotlib", "kubernetes", "requests", "urllib3", "aiohttp", "torch")
PROBE = """
import json, sys
from controlplane.cli import main
try:
    code = main.main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
loaded = {{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})
print(json.dumps({{"code": code, "loaded": sorted(loaded)}}))
"""


def _imports(*argv: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(HEAVY=HEAVY), *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    last = done.stdout.strip().splitlines()[-1]
    result: dict[str, object] = json.loads(last)
    return result


@pytest.mark.binary
@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("validate", "canary/four-week.yml"),
        ("validate", "canary/gated.yml", "-o", "json"),
        (
            "validate",
            "canary/local-demo.yml",
            "canary/shadow-winrate.yml",
            "canary/cohort-tier1.yml",
        ),
        ("validate", "canary"),
    ],
    ids=["help", "validate", "validate-json", "validate-several", "validate-directory"],
)
def test_an_offline_verb_imports_no_heavy_stack(argv: tuple[str, ...]) -> None:
    found = _imports(*argv)
    assert found["code"] in (0, None)
    assert found["loaded"] == []


@pytest.mark.binary
def test_the_probe_sees_a_heavy_import() -> None:
    """The probe itself can fail: ``simulate --help`` is allowed numpy, and the probe sees it.
    It is not allowed scipy: only a ``judge: sequential`` check needs the sequential judges,
    which the evaluator imports when it meets one (a four-week replay spent 0.5 s on them)."""
    found = _imports("simulate", "canary/four-week.yml", "--help")
    assert found["code"] in (0, None)
    assert "numpy" in found["loaded"]  # type: ignore[operator]
    assert "scipy" not in found["loaded"]  # type: ignore[operator]


LIST_SPARED = (
    "kubernetes_validate",
    "jsonschema",
    "ruamel",
    "numpy",
    "scipy",
    "matplotlib",
    "hera",
    "rich",
)
"""What ``kubectl canary list`` does without: the spec models (the table reads the objects as
plain data; pydantic itself comes with the Kubernetes client), ruamel (only ``-o yaml`` writes
YAML), the catalogue, numpy or a rich view; nor ``kubernetes_validate`` and the jsonschema it
loads, which the Kubernetes client imports when installed for a method nothing here calls
(:func:`controlplane.kube.real._module` hides it while the client is first imported)."""

LIST_PROBE = """
import json, sys
from controlplane.cli import main
code = main.main(sys.argv[1:])
names = {{m.split(".")[0] for m in sys.modules}}
loaded = sorted(names & set({SPARED!r}))
modules = [m for m in {MODULES!r} if m in sys.modules]
print(json.dumps({{"code": code, "loaded": loaded, "modules": modules}}))
"""

LIST_MODULES = (
    "controlplane.kube.real",
    "controlplane.profiles.catalog",
    "controlplane.spec.models",
)


def _list_imports(tmp_path: Path, user: str) -> tuple[dict[str, Any], str]:
    """``list`` against an API server that is not there (a loopback port nobody listens on):
    it fails to connect, as it should, having imported only what it uses."""
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago, never listened on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "config"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        f"users: [{{name: u, user: {user}}}]\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LIST_PROBE.format(SPARED=LIST_SPARED, MODULES=LIST_MODULES),
            "list",
            "--kubeconfig",
            str(config),
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found, done.stderr


@pytest.mark.binary
def test_list_loads_the_client_and_nothing_it_does_not_use(tmp_path: Path) -> None:
    found, err = _list_imports(tmp_path, "{token: t}")
    assert found["code"] == 1, err  # the API server is unreachable
    assert "unreachable" in err
    assert "Traceback" not in err
    assert found["loaded"] == []
    assert found["modules"] == ["controlplane.kube.real"]


@pytest.mark.binary
def test_the_checkout_is_installed_without_an_import_hook() -> None:
    """``make setup`` installs the checkout in setuptools' "compat" editable mode (a ``.pth``
    naming the repository): the default mode's finder module imported pathlib and more before
    every ``canaryctl`` verb, 25-30 ms of each start (docs/benchmarks.md, "CLI start-up")."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; print(sorted(m for m in sys.modules if 'editable' in m))",
        ],
        cwd=ROOT.parent,  # not the checkout: only the installed .pth may make the package found
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"
    found = subprocess.run(
        [sys.executable, "-c", "import controlplane, sys; print(controlplane.__file__)"],
        cwd=ROOT.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(found.stdout.strip()).parent == ROOT / "controlplane"
