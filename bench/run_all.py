"""Run every benchmark: each rewrites its section of docs/benchmarks-derivation.md (make bench)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = [
    ["replay.py"],
    ["blast_radius.py"],
    # the verdict on the ten seeds docs/judges-derivation.md reports: chosen after the code was
    # final, the first ten 24-bit words of the SHA-256 of the full hash of its last commit,
    # cf4d617: python3 -c "import hashlib,sys; h=hashlib.sha256(sys.argv[1].encode()).hexdigest();
    # print(','.join(str(int(h[6*i:6*i+6],16)) for i in range(10)))" "$(git rev-parse cf4d617)";
    # 20261123-32 and 20261201-10 judged earlier code
    [
        "blast_seeds.py",
        "--seeds",
        "7696809,8554686,5288656,550577,6092949,1072807,10959753,10480617,11991946,8025587",
        "--runs",
        "400",
        "--write",
    ],
    ["scale.py"],
    # the four-week schedule on canaryctl up, fixed and planned replicas: about 5 minutes
    ["capacity.py"],
    # make demo's verdict 20 times (and 3 with a fault) beside a CPU-heavy job: about 35 minutes
    ["demo_busy_host.py"],
    ["hostile_input.py"],
    # the simulated engine fitted to the real vLLM on the tiny model (make vllm): about 3 minutes
    ["calibrate_engine.py"],
    ["cli_start.py"],
    # what a loopback API server spends on each set of CRDs (make kube-tools): about 5 minutes
    ["crd_install.py"],
    # the dashboard's list of 1,000 canaries in Chromium (make dashboard, make browser): a minute
    ["dashboard_load.py"],
    ["test_suite.py"],
    # 1,000 canaries on both backends and 10,000 on the real server: about 40 minutes on 2 cores
    ["kube_scale.py", "--fake-max", "1000"],
    # whole canaries on a real node, KServe, Traefik and Prometheus: about 10 minutes on 2 cores
    ["real_rollout.py"],
    # conversations pinned and split per request on the real vLLM (make vllm): about 6 minutes
    ["real_sessions.py"],
    # the simulated judge on pinned conversations, 200 runs a row: about 3 minutes
    ["sessions_judge.py"],
    # the quality judge on the real vLLM (make vllm): 20 A/A runs and 10 of each twin, about
    # 30 minutes on 2 cores
    ["quality_real.py"],
    # the contest with the real Flagger and Argo Rollouts on the same node and traffic
    # (scripts/build-peers.sh first): every tool on every candidate its registered number of
    # runs at pace 6, as docs/peers.md registers it: about nine hours on 2 cores
    ["peers.py"],
]


def main() -> int:
    for script, *args in SCRIPTS:
        print(f"== bench/{script} {' '.join(args)}".rstrip(), flush=True)
        code = subprocess.call([sys.executable, str(BENCH / script), *args])
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
