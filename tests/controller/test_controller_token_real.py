"""Issue 33, "the controller's token sent to a spec-chosen URL", reproduced on the real process.

The auditor's setup: ``canaryctl controller`` runs as its own process against the real loopback
kube-apiserver, with ``--argo-token-file`` holding a known token (in a pod: its ServiceAccount
token); a tenant's canary has a gate whose ``argoServer`` is a loopback HTTP server that records
every request. Before the fix that server received ``Authorization: Bearer <token>`` once the
candidate was ready. Now, with the server in no allow-list, the canary is ``invalid``, nothing is
deployed, and the server receives no request at all while the candidates would have become ready;
with the server in ``--allow-argo-server`` the same canary runs its gate there (the control: the
setup does reach the gate). A gate whose Workflow names ``namespace: kube-system`` (with
``clusterScope: true``) is refused in both runs, and no request ever names another namespace.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support.api import canary
from support.canaries import MODEL

from controlplane.kube.client import canary_ref
from controlplane.kube.real import RealKube
from harness.cluster.kubeapi import LoopbackCluster
from harness.kube.isvc_standin import IsvcStandin
from harness.servers.argo_fake import running_argo

pytestmark = [pytest.mark.binary, pytest.mark.timeout(300)]

TOKEN = "sa-token-of-the-controller-7d1e"  # a known token, as the auditor used
ISVC = ("serving.kserve.io/v1beta1", "InferenceService")
# Long enough for an unfixed controller to deploy, see the candidate Ready and submit the gate
# (it did in about 5 s here; the allowed run below does the same).
WATCH_S = 20.0


# The one gate of these tests' canaries, before step 1 (a test adds where its Argo Server is).
GATE = {
    "name": "eval",
    "before": "first-step",
    "workflowTemplate": {"name": "llm-eval"},
    "timeout": "1h",
}


@contextmanager
def controller(
    loopback: LoopbackCluster, namespace: str, tmp: Path, *flags: str
) -> Iterator[Callable[[], str]]:
    """``canaryctl controller`` as a child process on the loopback server; yields the reader of
    its log. Stopped with SIGTERM (the controller's clean stop), then killed if it lingers."""
    token_file = tmp / "sa-token"
    token_file.write_text(TOKEN + "\n")
    log_path = tmp / f"controller-{time.monotonic_ns()}.log"
    argv = [
        sys.executable,
        "-c",
        "import sys; from controlplane.cli.main import main; sys.exit(main())",
        "controller",
        f"--kubeconfig={loopback.kubeconfig}",
        f"--namespace={namespace}",
        f"--argo-token-file={token_file}",
        "--api-port=0",
        "--tick=0s",
        "--interval-override=2s",  # readiness is looked at every 2 s, not every minute
        *flags,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield lambda: log_path.read_text(errors="replace")[-4000:]
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def drive(kube: RealKube, namespace: str, done: Callable[[], bool], limit_s: float) -> bool:
    """Play KServe (every InferenceService of ``namespace`` Ready at once) until ``done()`` or
    ``limit_s`` seconds have passed; whether it is done."""
    standin = IsvcStandin(kube, [namespace], now=time.time, ready_after_s=0.0)
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        standin.tick()
        if done():
            return True
        time.sleep(0.2)
    return done()


def status(kube: RealKube, namespace: str, name: str) -> dict[str, Any]:
    return dict(kube.get(canary_ref(namespace, name)).get("status") or {})


def problems(kube: RealKube, namespace: str, name: str) -> dict[str, str]:
    return {p["path"]: p["message"] for p in status(kube, namespace, name).get("problems") or []}


def test_the_token_goes_only_to_an_argo_server_an_administrator_allowed(
    loopback: LoopbackCluster, real_kube: RealKube, real_ns: str, tmp_path: Path
) -> None:
    with running_argo(token=TOKEN) as argo:
        # each canary with a model of its own: its own InferenceServices
        tenant = canary(
            "tenant",
            namespace=real_ns,
            model={**MODEL, "name": "tenant-llm"},
            gates=[{**GATE, "argoServer": argo.url}],
        )
        system = canary(
            "system",
            namespace=real_ns,
            model={**MODEL, "name": "system-llm"},
            gates=[
                {
                    **GATE,
                    "argoServer": argo.url,
                    "namespace": "kube-system",
                    "workflowTemplate": {"name": "llm-eval", "clusterScope": True},
                }
            ],
        )
        real_kube.create(tenant)
        real_kube.create(system)

        # 1. not allowed: not one request reaches the server (before the fix: the gate's POST
        # with "Bearer <token>" once the candidate was Ready), the canaries are invalid and
        # nothing is deployed
        with controller(loopback, real_ns, tmp_path) as log:
            drive(real_kube, real_ns, lambda: bool(argo.requests), WATCH_S)
            assert argo.requests == [], log()

            def both_invalid() -> bool:
                phases = {status(real_kube, real_ns, n).get("phase") for n in ("tenant", "system")}
                return phases == {"invalid"}

            assert drive(real_kube, real_ns, both_invalid, 30.0), log()
        assert problems(real_kube, real_ns, "tenant") == {
            "spec.gates[0].argoServer": f"{argo.url} is not among the Argo Servers this "
            "controller may send its token to (an administrator allows it with "
            "--allow-argo-server or the chart's allowedEndpoints.argoServers)"
        }
        assert "spec.gates[0].namespace" in problems(real_kube, real_ns, "system")
        assert real_kube.list(*ISVC, real_ns) == []
        reasons = {
            (e["involvedObject"]["name"], e["reason"], e["type"])
            for e in real_kube.list("v1", "Event", real_ns)
        }
        assert ("tenant", "InvalidSpec", "Warning") in reasons

        # 2. allowed by the administrator: the same canary's gate runs there, with the token
        with controller(loopback, real_ns, tmp_path, f"--allow-argo-server={argo.url}") as log:

            def polled() -> bool:  # submitted, then read back: both calls a gate makes
                return bool(argo.posts) and any(m == "GET" for m, _, _ in argo.requests)

            assert drive(real_kube, real_ns, polled, 90.0), log()
        assert argo.unauthorized == 0
        methods = {(method, auth) for method, _, auth in argo.requests}
        assert ("POST", f"Bearer {TOKEN}") in methods
        assert {auth for _, _, auth in argo.requests} == {f"Bearer {TOKEN}"}
        assert {namespace for namespace, _ in argo.posts} == {real_ns}
        assert all(f"/workflows/{real_ns}" in path for _, path, _ in argo.requests)
        assert {
            body["workflow"]["metadata"]["name"].split("-eval-")[0] for _, body in argo.posts
        } == {"tenant"}
        assert "spec.gates[0].namespace" in problems(real_kube, real_ns, "system")
        assert status(real_kube, real_ns, "tenant").get("phase") != "invalid"
