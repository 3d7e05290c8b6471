"""CLI start-up benchmark: canaryctl's verbs against ``kubectl version --client``, side by side.

Owns the "## CLI start-up" section of ``docs/benchmarks-derivation.md``. Issue 41 asks
``--help``, ``list`` and ``validate FILE`` to start within 3x of ``kubectl version --client``
(kubectl v1.34.10, built by ``make kube-tools``). Each round runs every command once, in a
shuffled order, as a user does: the installed entry point (``canaryctl`` in the environment's
``bin``), a new process each time, wall time from ``fork`` to exit, with Python's bytecode cache
written and used (as an installed package runs; ``PYTHONDONTWRITEBYTECODE`` is dropped from the
children's environment). The table gives the median and the slowest over ``--rounds`` and the
ratio of the medians to kubectl's; two floors show what a verb that uses pydantic, or the
Kubernetes client, cannot start below: the interpreter importing them. ``canaryctl list`` asks
an API server: here a loopback HTTP server in this process that answers discovery as
kube-apiserver does and lists two ModelCanaries (the four-week example), through a kubeconfig
in a temporary directory.

Run ``python bench/cli_start.py`` (``--rounds N``, ``--no-write`` prints only).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

try:
    from bench.common import BENCHMARKS_MD, machine_summary, replace_section, today
except ImportError:  # run as a script: bench/ is on sys.path
    from common import (  # type: ignore[no-redef]
        BENCHMARKS_MD,
        machine_summary,
        replace_section,
        today,
    )

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: harness/

from harness.cluster.kubeapi import binary

SECTION = "## CLI start-up"
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FOUR_WEEK = "canary/four-week.yml"


GROUP, VERSION = "canary.controlplane.dev", "v1alpha1"
LIST_PATH = f"/apis/{GROUP}/{VERSION}/namespaces/ml-serving/modelcanaries"


def _discovery() -> dict[str, Any]:
    """What kube-apiserver answers to the discovery the Kubernetes client sends."""
    group_version = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
    return {
        "/version": {"major": "1", "minor": "34", "gitVersion": "v1.34.10"},
        "/api": {"kind": "APIVersions", "versions": ["v1"]},
        "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": []},
        "/apis": {
            "kind": "APIGroupList",
            "groups": [
                {"name": GROUP, "versions": [group_version], "preferredVersion": group_version}
            ],
        },
        f"/apis/{GROUP}/{VERSION}": {
            "kind": "APIResourceList",
            "groupVersion": f"{GROUP}/{VERSION}",
            "resources": [
                {
                    "name": "modelcanaries",
                    "namespaced": True,
                    "kind": "ModelCanary",
                    "verbs": ["get", "list"],
                }
            ],
        },
    }


def _canaries() -> dict[str, Any]:
    """A ``ModelCanaryList`` of the four-week example under two names, as the server holds it."""
    from ruamel.yaml import YAML

    spec = YAML(typ="safe", pure=True).load((REPO / FOUR_WEEK).read_text(encoding="utf-8"))
    items = []
    for name in ("support-triage", "support-triage-b"):
        meta = {"name": name, "namespace": "ml-serving", "uid": name, "resourceVersion": "1"}
        meta["creationTimestamp"] = "2026-11-01T00:00:00Z"
        items.append({"metadata": meta, "spec": spec["spec"]})
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelCanaryList",
        "metadata": {"resourceVersion": "2"},
        "items": items,
    }


@contextmanager
def api_server() -> Iterator[Path]:
    """A loopback API server for ``canaryctl list``; yields the kubeconfig that points at it."""
    answers = {**_discovery(), LIST_PATH: _canaries()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            body = answers.get(self.path.split("?", 1)[0])
            data = json.dumps(body if body is not None else {"kind": "Status", "code": 404})
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data.encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "kubeconfig"
            config.write_text(
                json.dumps(
                    {
                        "apiVersion": "v1",
                        "kind": "Config",
                        "current-context": "bench",
                        "clusters": [
                            {
                                "name": "bench",
                                "cluster": {"server": f"http://127.0.0.1:{server.server_port}"},
                            }
                        ],
                        "contexts": [
                            {
                                "name": "bench",
                                "context": {
                                    "cluster": "bench",
                                    "user": "bench",
                                    "namespace": "ml-serving",
                                },
                            }
                        ],
                        "users": [{"name": "bench", "user": {"token": "bench"}}],
                    }
                )
            )
            yield config
    finally:
        server.shutdown()
        server.server_close()


def commands(kubeconfig: Path) -> list[tuple[str, list[str]]]:
    """(label, argv): kubectl first (the reference), then canaryctl's verbs."""
    canaryctl = str(BIN / "canaryctl")
    return [
        ("kubectl version --client", [str(binary("kubectl")), "version", "--client"]),
        ("canaryctl --help", [canaryctl, "--help"]),
        (
            "canaryctl validate canary/four-week.yml",
            [canaryctl, "validate", "canary/four-week.yml"],
        ),
        ("canaryctl schema", [canaryctl, "schema"]),
        ("canaryctl list", [canaryctl, "list", "--kubeconfig", str(kubeconfig)]),
        # what no verb that uses them can start below: the interpreter with pydantic (import,
        # one model built and validated), and with the Kubernetes client
        ("floor: python, pydantic, one model", [sys.executable, "-c", PYDANTIC_FLOOR]),
        ("floor: python, kubernetes client", [sys.executable, "-c", KUBE_FLOOR]),
    ]


PYDANTIC_FLOOR = "from pydantic import BaseModel\nclass M(BaseModel):\n    x: int\nM(x=1)"
KUBE_FLOOR = "import kubernetes.client, kubernetes.config"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _once(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, check=False, timeout=120, env=_env())
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-400:]}")
    return elapsed


def measure(rounds: int, kubeconfig: Path, seed: int = 41) -> dict[str, list[float]]:
    """Seconds per command, ``rounds`` each, interleaved in a shuffled order every round."""
    cmds = commands(kubeconfig)
    times: dict[str, list[float]] = {label: [] for label, _ in cmds}
    rng = random.Random(seed)
    for _label, argv in cmds:  # one warm-up each: the page cache, not the interpreter's
        _once(argv)
    for _ in range(rounds):
        order = list(cmds)
        rng.shuffle(order)
        for label, argv in order:
            times[label].append(_once(argv))
    return times


def table(times: dict[str, list[float]]) -> str:
    ref = statistics.median(next(iter(times.values())))
    rows = ["| command | median | slowest | x kubectl |", "|---|---:|---:|---:|"]
    for label, values in times.items():
        med = statistics.median(values)
        rows.append(
            f"| `{label}` | {med * 1000:.0f} ms | {max(values) * 1000:.0f} ms | {med / ref:.1f}x |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the docs")
    args = parser.parse_args(argv)
    with api_server() as kubeconfig:
        times = measure(args.rounds, kubeconfig)
    body = (
        f"Whole-process wall time of each command, {args.rounds} interleaved rounds in a shuffled "
        f"order after one warm-up each (bytecode cached, as an installed package runs; `list` "
        f"against a loopback server answering as kube-apiserver does); {today()}; "
        f"{machine_summary(())}.\n\n"
        f"{table(times)}\n\n"
        "Target (issue 41): within 3x of `kubectl version --client`. Reproduce: "
        "`python bench/cli_start.py` (after `make kube-tools`, which builds kubectl)."
    )
    print(body)
    if not args.no_write:
        replace_section(BENCHMARKS_MD, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
