"""Kubernetes scale benchmark: one controller and N ModelCanaries, on FakeKube and on a real
kube-apiserver side by side, measured tick by tick.

Owns the "## Kube scale" section of ``docs/benchmarks-derivation.md``. For each N (1,000 and 10,000)
and each backend — the in-memory FakeKube, and etcd + kube-apiserver v1.34 on loopback
(:func:`harness.cluster.kubeapi.start_cluster` with every pinned CRD, a fresh server per N) — it
creates N canaries (as the user: not counted) and drives one controller, built as ``canaryctl
controller`` builds it, through the ticks of a rollout's first hours on an injected clock
(``tests/support/kube_fleet.py``; KServe is FakeKServe on the fake and the test stand-in that writes
the same Ready statuses on the real server, both on their own clients):

- ``deploy``: the first pass (finalizer, initial status, serving objects, route, Events);
- ``readiness``: the pass that finds the candidates Ready and starts step 1 (weights set and
  verified);
- ``quiet``: a pass with nothing due (must send nothing and write no status);
- ``resync``: a restarted controller lists and reconciles every canary (nothing changed: no
  status write);
- ``evaluation``: every canary's first analysis (no Prometheus configured: the result is an
  unavailable provider, recorded in the status, so one write per canary).

Per tick: API requests the controller sent (a counting proxy around its client: one call is one
HTTP request on the real server; the watch stream, one long request, is not a per-tick cost),
ModelCanary status writes, the controller's CPU time for the pass, and after it the bench
process' RSS (the controller; on the fake it also holds the cluster) and the kube-apiserver's and
etcd's RSS. Wall time is shown for the real server only as an indication (2 cores shared by the
server, etcd and the controller).

Run ``python bench/kube_scale.py`` (1,000 and 10,000) or ``--sizes 1000``; ``--no-write`` prints
only. ``make kube-tools`` builds the server binaries first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
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

# tests/support (the fleet), and the test harness beside the package (harness/: not installed)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.kube_fleet import Fleet, Tick

from harness.cluster.kubeapi import KUBE_VERSION, LoopbackCluster, start_cluster
from harness.cluster.upstream_crds import all_crds

SECTION = "## Kube scale"
FIXED = {"mode": "fixed"}
"""The fleet's ``spec.capacity``: fixed replicas, as measured before the capacity plan became
the default (its resync reads are in tests/controller/test_controller_quiet_ticks.py)."""
DAY = 86400.0


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size of a process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Row:
    backend: str
    size: int
    tick: str
    result: Tick
    controller_rss: float
    apiserver_rss: float | None
    etcd_rss: float | None


def measure(fleet: Fleet, backend: str, cluster: LoopbackCluster | None, rows: list[Row]) -> None:
    def record(name: str, tick: Tick) -> None:
        server = etcd = None
        if cluster is not None:
            etcd, server = (rss_mib(p.pid) for p in cluster.processes)
        rows.append(Row(backend, fleet.size, name, tick, rss_mib(), server, etcd))
        r = rows[-1]
        print(
            f"{backend:5} {fleet.size:6} {name:10} requests={tick.requests:7} "
            f"writes={tick.status_writes:6} cpu={tick.cpu_s:7.2f}s wall={tick.wall_s:7.2f}s "
            f"rss={r.controller_rss:7.0f} apiserver={server or 0:6.0f} etcd={etcd or 0:5.0f}",
            flush=True,
        )

    began = time.perf_counter()
    fleet.create_all(workers=8 if cluster is not None else 1)
    print(f"{backend} {fleet.size}: created in {time.perf_counter() - began:.0f}s", flush=True)
    record("deploy", fleet.tick())
    while fleet.stages() != {"steps": fleet.size}:
        wake = fleet.next_wake()
        if wake is None or wake > fleet.start + DAY:
            raise SystemExit(f"{backend} {fleet.size}: stuck at {fleet.stages()}")
        fleet.clock.t = max(fleet.clock.t, wake)
        tick = fleet.tick()
        if tick.reconciles:
            record("readiness", tick)
    wake = fleet.next_wake()
    assert wake is not None
    fleet.clock.t = wake - 60
    record("quiet", fleet.tick())
    record("resync", fleet.restart())
    fleet.clock.t = wake
    record("evaluation", fleet.tick())


def fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def coverage(rows: list[Row]) -> str:
    """Which sizes each backend ran, and why the fake may have stopped short."""
    sizes = {b: sorted({r.size for r in rows if r.backend == b}) for b in ("fake", "real")}
    text = "Sizes run: " + "; ".join(
        f"{b} {', '.join(f'{n:,}' for n in ns) or 'none'}" for b, ns in sizes.items()
    )
    missing = sorted(set(sizes["real"]) - set(sizes["fake"]))
    if missing:
        text += (
            f". FakeKube was not run at {', '.join(f'{n:,}' for n in missing)} (`--fake-max`): "
            "its calls scan every stored object, so a pass grows with the square of N (its "
            "10,000-canary deploy pass had not finished after 12 minutes of CPU here)"
        )
    return text + "."


def section(rows: list[Row], cmd: str) -> str:
    lines = [
        f"Measured {today()} on {machine_summary(('kubernetes',))}; kube-apiserver "
        f"{KUBE_VERSION} + etcd on loopback (2 cores shared by both and the controller). "
        f"Reproduce: `{cmd}` (after `make kube-tools`). Written by `bench/kube_scale.py`.",
        "",
        "One controller, N ModelCanaries (two-step rollouts, no Prometheus), one row per loop "
        "pass: API requests the controller sent (a counting proxy: one call is one HTTP request "
        "on the real server), ModelCanary status writes, CPU time of the pass, and RSS after it "
        "(controller = the bench process, which on the fake also holds the cluster, and which "
        "ran the fake first: Python keeps that memory). Wall time on the real server is "
        f"indicative only. {coverage(rows)}",
        "",
        "| backend | N | tick | reconciles | requests | per canary | status writes | "
        "CPU s | wall s | controller RSS MiB | apiserver RSS MiB | etcd RSS MiB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t = r.result
        per = t.requests / r.size
        wall = fmt(t.wall_s, 2) if r.backend == "real" else "–"
        lines.append(
            f"| {r.backend} | {r.size:,} | {r.tick} | {t.reconciles:,} | {t.requests:,} | "
            f"{per:.2f} | {t.status_writes:,} | {t.cpu_s:.2f} | {wall} | "
            f"{fmt(r.controller_rss)} | {fmt(r.apiserver_rss)} | {fmt(r.etcd_rss)} |"
        )
    lines += [
        "",
        "A quiet pass sends nothing and writes nothing at every size, on both backends "
        "(tests/controller/test_controller_quiet_ticks.py asserts it with 10 and 20 canaries, "
        "with the resync's one read per canary and no write). The fleet keeps fixed replicas "
        "(`capacity: {mode: fixed}`); under the capacity plan, the default, a resync also reads "
        "each canary's two serving objects and two Deployments, five reads a canary, and writes "
        "nothing (the same test asserts it).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument(
        "--fake-max",
        type=int,
        default=None,
        help="run FakeKube only for sizes up to this (its per-call scans make 10,000 slow)",
    )
    args = parser.parse_args(argv)
    start = float(int(time.time()) // 3600 * 3600)
    rows: list[Row] = []
    crds = all_crds()
    for size in args.sizes:
        if args.fake_max is None or size <= args.fake_max:
            fake = Fleet(size, start, capacity=FIXED)
            measure(fake, "fake", None, rows)
            del fake
        with tempfile.TemporaryDirectory(prefix="kube-scale-") as tmp:
            cluster = start_cluster(Path(tmp) / "kube", crds=crds)
            try:
                real = Fleet(size, start, kubeconfig=str(cluster.kubeconfig), capacity=FIXED)
                measure(real, "real", cluster, rows)
                del real
            finally:
                cluster.stop()
    cmd = "python bench/kube_scale.py"
    if args.sizes != [1000, 10000]:
        cmd += " --sizes " + " ".join(str(n) for n in args.sizes)
    if args.fake_max is not None:
        cmd += f" --fake-max {args.fake_max}"
    text = section(rows, cmd)
    print(text)
    if not args.no_write:
        replace_section(args.output, SECTION, text)
        print(f"\nwrote the '{SECTION}' section of {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
