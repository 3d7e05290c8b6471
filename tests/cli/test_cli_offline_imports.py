"""The offline verbs load no heavy stack: ``canaryctl --help`` and ``canaryctl validate FILE``
import neither numpy, scipy, matplotlib, the Kubernetes client nor an HTTP client.

Checking a spec in CI or a pre-commit hook should start as fast as ``kubectl`` does (issue 41);
before the sequential judge's spec rules moved to ``analysis/sequential/support.py``, validating
imported scipy through ``validation`` -> ``sequential.check`` -> ``eprocess``. Each case runs in a
fresh interpreter (this one has loaded everything already) and reports what it imported.
Later, ``validate`` imported the controller's adoption code (hera, requests, numpy) for its
``--cluster`` option; it loads it only with ``--cluster`` now. ``simulate`` may load numpy but
not scipy (a spec without a sequential check), and ``list`` none of what it does not use
(:data:`LIST_SPARED`): since it asks the API server with the standard library for the users it
can (:mod:`controlplane.kube.direct`), not even the Kubernetes client or pydantic. Nor does
``validate`` of a valid file load pydantic (:data:`VALIDATE_SPARED`): it checks the file with the
models' generated fast copy and hands only a file with a problem to the models. The seconds
are bench/cli_start.py's.
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
    ],
    ids=["help", "validate", "validate-json"],
)
def test_an_offline_verb_imports_no_heavy_stack(argv: tuple[str, ...]) -> None:
    found = _imports(*argv)
    assert found["code"] in (0, None)
    assert found["loaded"] == []


VALIDATE_SPARED = ("pydantic", "numpy", "scipy", "kubernetes", "logging", "hashlib", "decimal")
"""What ``canaryctl validate`` does without for a valid file: the spec's pydantic models too
(it checks the file with their generated fast copy, :func:`controlplane.validation.fast_file`,
and reads the packaged catalogue as it is); only a file with a problem is handed to the models,
whose messages are the only ones."""

VALIDATE_PROBE = """
import json, sys
from controlplane.cli import main
code = main.main(sys.argv[1:])
names = {{m.split(".")[0] for m in sys.modules}}
print(json.dumps({{"code": code, "loaded": sorted(names & set({SPARED!r}))}}))
"""


def _validate_imports(*argv: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", VALIDATE_PROBE.format(SPARED=VALIDATE_SPARED), "validate", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.binary
@pytest.mark.parametrize(
    "argv",
    [
        ("canary/four-week.yml",),
        ("canary/gated.yml", "-o", "json"),
        ("canary/local-demo.yml", "canary/shadow-winrate.yml", "canary/cohort-tier1.yml"),
        ("canary",),
    ],
    ids=["four-week", "json", "several", "directory"],
)
def test_validate_of_valid_files_loads_no_pydantic(argv: tuple[str, ...]) -> None:
    found = _validate_imports(*argv)
    assert found["code"] == 0
    assert found["loaded"] == []


@pytest.mark.binary
def test_validate_of_a_bad_file_asks_the_models(tmp_path: Path) -> None:
    """The probe can fail: a file with a problem goes to the pydantic models for its message."""
    bad = tmp_path / "bad.yml"
    text = (ROOT / "canary" / "four-week.yml").read_text(encoding="utf-8")
    bad.write_text(text.replace("weight: 5", "weight: 500", 1), encoding="utf-8")
    found = _validate_imports(str(bad))
    assert found["code"] == 2
    assert "pydantic" in found["loaded"]  # it brings decimal, hashlib and logging along


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
    "kubernetes",
    "kubernetes_validate",
    "jsonschema",
    "pydantic",
    "ruamel",
    "requests",
    "urllib3",
    "numpy",
    "scipy",
    "matplotlib",
    "hera",
    "rich",
    "logging",
    "hashlib",
)
"""What ``kubectl canary list`` does without for a kubeconfig it reads itself (a token, a client
certificate, an exec plugin: :mod:`controlplane.kube.direct`): the Kubernetes client (and the
requests, urllib3 and oauthlib it brings) and its adapter :mod:`controlplane.kube.real` (what
both read of an answer is :mod:`controlplane.kube.answers`), pydantic and the spec models (the
table reads the objects as plain data), ruamel (only ``-o yaml`` writes YAML), the catalogue,
numpy or a rich view; nor :mod:`hashlib` (only Event names need it), :mod:`logging` (only HTTP
client libraries need their loggers quieted) or ``urllib.request`` (only a ``*_proxy`` variable
needs its ``getproxies``). A user the direct path does not handle (an ``auth-provider``) still
gets the client."""

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
    "kubernetes.client",
    "urllib.request",
    "controlplane.kube.direct",
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
def test_list_loads_neither_the_client_nor_pydantic(tmp_path: Path) -> None:
    found, err = _list_imports(tmp_path, "{token: t}")
    assert found["code"] == 1, err  # the API server is unreachable
    assert "unreachable" in err
    assert found["loaded"] == []
    assert found["modules"] == ["controlplane.kube.direct"]


@pytest.mark.binary
def test_list_falls_back_to_the_client_for_an_auth_provider(tmp_path: Path) -> None:
    """The probe sees the client when ``list`` needs it: an ``auth-provider`` user (here one
    the client knows no longer, so it says so) goes to the Kubernetes client, never the direct
    path's own reading."""
    found, err = _list_imports(tmp_path, "{auth-provider: {name: gone, config: {}}}")
    assert found["code"] == 1, err
    assert "kubernetes" in found["loaded"]
    assert "kubernetes.client" in found["modules"]
    assert "Traceback" not in err


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
