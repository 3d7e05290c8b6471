"""CLI start-up benchmark: canaryctl's verbs against ``kubectl version --client``, side by side.

Owns the "## CLI start-up" section of ``docs/benchmarks-derivation.md``. The target: ``canaryctl
validate FILE`` (the spec's pydantic models, the controller's validator) and ``kubectl canary
list`` (the official Kubernetes client) each start and finish within 0.5 s on a quiet machine;
``kubectl version --client`` (v1.34.10, built by ``make kube-tools``) is measured beside them for
scale. Each round runs every command once, in a shuffled order, as a user does: the installed
entry point (``canaryctl`` in the environment's ``bin``), a new process each time, wall time from
``fork`` to exit, with Python's bytecode cache written and used (as an installed package runs;
``PYTHONDONTWRITEBYTECODE`` is dropped from the children's environment). The table gives the
median and the slowest over ``--rounds`` and the ratio of the medians to kubectl's; the floors
show what no verb can start below: the interpreter alone, and the interpreter importing pydantic
(one model, or the spec's models) or the Kubernetes client. ``canaryctl list`` asks the real
kube-apiserver v1.34.10 on loopback (:func:`harness.cluster.kubeapi.start_cluster`, the
ModelCanary CRD installed, the four-week example under two names) with the admin's token. The
load average before and after the run is written beside the table.

Run ``python bench/cli_start.py`` (``--rounds N``, ``--no-write`` prints only).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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

from harness.cluster.kubeapi import binary, start_cluster
from harness.cluster.upstream_crds import own_crd

SECTION = "## CLI start-up"
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FOUR_WEEK = "canary/four-week.yml"
NAMESPACE = "ml-serving"
CANARIES = ("support-triage", "support-triage-b")

Command = tuple[str, list[str], dict[str, str]]
"""(label, argv, environment variables added to the run's)."""


@contextmanager
def api_server() -> Iterator[Path]:
    """The real kube-apiserver with two ModelCanaries in :data:`NAMESPACE`; yields the admin's
    kubeconfig."""
    from controlplane.spec.constants import API_VERSION, PLURAL
    from controlplane.spec.load import parse_text  # the spec's YAML dialect: 8.0e9 is a number

    document = parse_text((REPO / FOUR_WEEK).read_text(encoding="utf-8"), FOUR_WEEK)[0]
    assert isinstance(document.data, dict)
    spec = document.data["spec"]
    with tempfile.TemporaryDirectory() as tmp:
        cluster = start_cluster(Path(tmp) / "kube", crds=[own_crd()])
        try:
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
            cluster.request("POST", "/api/v1/namespaces", namespace)
            for name in CANARIES:
                obj = {
                    "apiVersion": API_VERSION,
                    "kind": "ModelCanary",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": spec,
                }
                path = f"/apis/{API_VERSION}/namespaces/{NAMESPACE}/{PLURAL}"
                cluster.request("POST", path, obj)
            yield cluster.kubeconfig
        finally:
            cluster.stop()


def commands(kubeconfig: Path) -> list[Command]:
    """kubectl first (the reference), then canaryctl's verbs, then the floors."""
    canaryctl = str(BIN / "canaryctl")
    listing = [canaryctl, "list", "-n", NAMESPACE]
    return [
        ("kubectl version --client", [str(binary("kubectl")), "version", "--client"], {}),
        ("canaryctl --help", [canaryctl, "--help"], {}),
        (f"canaryctl validate {FOUR_WEEK}", [canaryctl, "validate", FOUR_WEEK], {}),
        ("canaryctl schema", [canaryctl, "schema"], {}),
        ("canaryctl list", [*listing, "--kubeconfig", str(kubeconfig)], {}),
        # what no verb can start below: the interpreter, with pydantic (import, one model built
        # and validated; the spec's models, which validate builds), with the Kubernetes client
        ("floor: python", [sys.executable, "-c", "pass"], {}),
        ("floor: python, pydantic, one model", [sys.executable, "-c", PYDANTIC_FLOOR], {}),
        ("floor: python, the spec's models", [sys.executable, "-c", MODELS_FLOOR], {}),
        ("floor: python, kubernetes client", [sys.executable, "-c", KUBE_FLOOR], {}),
    ]


PYDANTIC_FLOOR = "from pydantic import BaseModel\nclass M(BaseModel):\n    x: int\nM(x=1)"
MODELS_FLOOR = "import controlplane.spec.models"
KUBE_FLOOR = "import kubernetes.client, kubernetes.config"


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("KUBECONFIG", None)
    return {**env, **extra}


def _once(argv: list[str], extra: dict[str, str]) -> float:
    env = _env(extra)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, check=False, timeout=120, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-400:]}")
    return elapsed


def measure(rounds: int, cmds: list[Command], seed: int = 41) -> dict[str, list[float]]:
    """Seconds per command, ``rounds`` each, interleaved in a shuffled order every round."""
    times: dict[str, list[float]] = {label: [] for label, _, _ in cmds}
    rng = random.Random(seed)
    for _label, argv, extra in cmds:  # one warm-up each: the page cache, not the interpreter's
        _once(argv, extra)
    for _ in range(rounds):
        order = list(cmds)
        rng.shuffle(order)
        for label, argv, extra in order:
            times[label].append(_once(argv, extra))
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
        before = os.getloadavg()
        times = measure(args.rounds, commands(kubeconfig))
        after = os.getloadavg()
    load = (
        f"load average (1, 5, 15 min) {before[0]:.1f} / {before[1]:.1f} / {before[2]:.1f} "
        f"before and {after[0]:.1f} / {after[1]:.1f} / {after[2]:.1f} after, on "
        f"{os.cpu_count()} CPUs"
    )
    body = (
        f"Whole-process wall time of each command, {args.rounds} interleaved rounds in a shuffled "
        f"order after one warm-up each (bytecode cached, as an installed package runs; `list` "
        f"against the real kube-apiserver on loopback, the admin's token); {today()}; "
        f"{machine_summary(('pydantic', 'kubernetes'))}; {load}.\n\n"
        f"{table(times)}\n\n"
        "Target: `canaryctl validate FILE` and `kubectl canary list` each within 0.5 s on a quiet "
        "machine. Reproduce: `python bench/cli_start.py` (after `make kube-tools`, which builds "
        "kubectl and kube-apiserver)."
    )
    print(body)
    if not args.no_write:
        replace_section(BENCHMARKS_MD, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
