"""CRD install benchmark: what the loopback API server spends to serve each set of CRDs.

Owns the "## Loopback API server CRDs" section of ``docs/benchmarks-derivation.md``. Every test
cluster starts a kube-apiserver v1.34.10 (:func:`harness.cluster.kubeapi.start_cluster`) and
installs its CRDs; a ``make test`` starts about 16. Compared side by side, in one run, each on a
fresh API server with nothing but that install:

- ``every CRD, read back``: :func:`harness.cluster.upstream_crds.all_crds` as setup installed
  them before 2026-11-29: each CRD also read whole every 50 ms until Established (a thread
  doing what the loop after the applies did);
- ``every CRD``: :func:`harness.cluster.kubeapi.install_crds` as it is (server-side apply, then
  :func:`~harness.cluster.kubeapi.wait_served`), what ``make kube-up``, the session cluster and
  the LLMInferenceService cluster pay;
- ``no LLMInferenceService``: :func:`harness.cluster.upstream_crds.serving_crds`, what the
  KServe cluster, the real-node stacks and the second API server without Istio pay.

For each: the API server's CPU seconds (user + system, ``/proc/<pid>/stat``) from the first
apply to the last resource served, and the wall seconds of the install. Expected: the reads cost
a few seconds of CPU; the two LLMInferenceService CRDs (0.8 MB each) about half of the rest.
Each round runs the three in a shuffled order; the table gives the median and the range over
``--rounds`` (3 by default), and the load average before and after.

Run ``python bench/crd_install.py`` (``--rounds N``, ``--no-write`` prints only; ``make
kube-tools`` first). Takes about five minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    from bench.common import machine_summary, publish, today
except ImportError:  # run as a script: bench/ is on sys.path
    from common import machine_summary, publish, today  # type: ignore[no-redef]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: harness/

from harness.cluster.kubeapi import LoopbackCluster, install_crds, start_cluster
from harness.cluster.upstream_crds import all_crds, serving_crds

SECTION = "## Loopback API server CRDs"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"


def read_until_established(
    cluster: LoopbackCluster, names: list[str], done: threading.Event
) -> None:
    """What setup did before: each CRD in turn read whole every 50 ms until Established."""
    for name in names:
        while not done.is_set():
            try:
                status = cluster.request("GET", CRD_PATH + name).get("status") or {}
            except OSError:
                status = {}
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            if conditions.get("Established") == "True":
                break
            time.sleep(0.05)


def read_back(cluster: LoopbackCluster, crds: list[dict[str, Any]]) -> None:
    done = threading.Event()
    names = [c["metadata"]["name"] for c in crds]
    reader = threading.Thread(target=read_until_established, args=(cluster, names, done))
    reader.start()
    try:
        install_crds(cluster, crds)
        reader.join(timeout=90)
    finally:
        done.set()
        reader.join()


CASES: dict[str, tuple[Callable[[], list[dict[str, Any]]], bool]] = {
    "every CRD, read back": (all_crds, True),
    "every CRD": (all_crds, False),
    "no LLMInferenceService": (serving_crds, False),
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def apiserver_pid(folder: str) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"kube-apiserver") and folder.encode() in b" ".join(argv):
                return int(entry.name)
    raise RuntimeError(f"no kube-apiserver of {folder}")


def measure(case: str) -> tuple[float, float, int]:
    """(API server CPU s, wall s, CRDs) of one install of ``case`` on a fresh server."""
    crds_of, reads = CASES[case]
    crds = crds_of()
    with tempfile.TemporaryDirectory() as folder, start_cluster(Path(folder)) as cluster:
        pid = apiserver_pid(folder)
        time.sleep(2.0)  # past the server's own start
        before, start = cpu_seconds(pid), time.monotonic()
        if reads:
            read_back(cluster, crds)
        else:
            install_crds(cluster, crds)
        return cpu_seconds(pid) - before, time.monotonic() - start, len(crds)


METHOD = (
    "Each install on a fresh kube-apiserver v1.34.10 on loopback with nothing else on it: "
    "`every CRD, read back` is every CRD with each also read whole every 50 ms until "
    "Established (setup before 2026-11-29); `every CRD` is `install_crds` as it is (what "
    "`make kube-up`, the session cluster and the LLMInferenceService cluster pay); "
    "`no LLMInferenceService` is `serving_crds()` (what the KServe cluster, the real-node "
    "stacks and the second server without Istio pay). CPU: the API server's user and system "
    "seconds from the first apply to the last resource served. Expected before the run: the "
    "reads cost a few seconds of CPU, and KServe's two LLMInferenceService CRDs (0.8 MB each) "
    "about half of the rest."
)


def render(runs: dict[str, list[tuple[float, float, int]]], loads: tuple[str, str]) -> str:
    lines = [
        METHOD,
        "",
        f"Measured {today()} on {machine_summary(())}; kube-apiserver v1.34.10 on loopback, "
        f"{len(next(iter(runs.values())))} rounds, load average {loads[0]} before and "
        f"{loads[1]} after.",
        "",
        "Command: `python bench/crd_install.py`",
        "",
        "| install | CRDs | API server CPU s, median (range) | wall s, median (range) |",
        "|---|---:|---:|---:|",
    ]
    for case, got in runs.items():
        cpu = [c for c, _, _ in got]
        wall = [w for _, w, _ in got]
        lines.append(
            f"| {case} | {got[0][2]} | {statistics.median(cpu):.1f} "
            f"({min(cpu):.1f} to {max(cpu):.1f}) | {statistics.median(wall):.1f} "
            f"({min(wall):.1f} to {max(wall):.1f}) |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the docs")
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, float, int]]] = {case: [] for case in CASES}
    load_before = f"{os.getloadavg()[0]:.1f}"
    for _ in range(args.rounds):
        for case in random.sample(list(CASES), len(CASES)):
            runs[case].append(measure(case))
    publish(args, SECTION, render(runs, (load_before, f"{os.getloadavg()[0]:.1f}")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
