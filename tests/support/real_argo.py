"""The real Argo Workflows on a real node, for the tests of gates and WorkflowTemplates.

Owns :func:`shared_argo`: the shared :data:`GATED` stack (:func:`support.real_traffic.real_stack`
with the node's cluster network) and Argo Workflows v3.7.3 on it
(:func:`harness.node.argo.start_argo`); and the reads the tests share: :func:`workflow` (a
Workflow as ``argo get -o json`` shows it), :func:`outputs` (the output parameters of its
nodes), :func:`apply_strict` (``kubectl apply --server-side --validate=strict``) and
:func:`engine` (an engine pod and its address on the node's bridge).
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.cluster.kubeapi import LoopbackCluster, binary
from harness.node.argo import Argo, allow_workflows, start_argo
from harness.node.node import RealNode
from support.real_traffic import Stack, real_stack
from support.realnode import engine_pod_spec, pods, ready, ready_endpoints, service, until
from support.shared_stack import shared

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "manifests" / "argo"


@dataclass
class ArgoStack:
    cluster: LoopbackCluster
    node: RealNode
    argo: Argo


GATED = "gated"
"""The kind of the shared stack (:mod:`support.shared_stack`) of the gates' and Argo's modules."""
GATED_GPUS = 12


@dataclass
class Gated:
    """:func:`support.real_traffic.real_stack` with kube-proxy and CoreDNS on the node (pods
    reach Services) and Argo Workflows on it."""

    stack: Stack
    argo: Argo

    @property
    def cluster(self) -> LoopbackCluster:
        return self.stack.cluster


@contextmanager
def gated_stack(folder: Path) -> Iterator[Gated]:
    """The :data:`GATED` stack under ``folder``, :data:`GATED_GPUS` GPUs; stopped after."""
    with real_stack(folder, gpus=GATED_GPUS, cluster_network=True) as running:
        yield Gated(running, start_argo(running.cluster, running.node))


@contextmanager
def shared_argo(
    factory: pytest.TempPathFactory, namespaces: tuple[str, ...]
) -> Iterator[ArgoStack]:
    """The shared :data:`GATED` stack as an :class:`ArgoStack` for one module, Workflows
    allowed in ``namespaces`` (created here, deleted after the module with the others it
    made: :func:`support.shared_stack.shared`)."""
    with shared(GATED, factory, gated_stack) as gated:
        allow(gated.cluster, namespaces)
        yield ArgoStack(gated.cluster, gated.stack.node, gated.argo)


def allow(cluster: LoopbackCluster, namespaces: tuple[str, ...]) -> None:
    """Create ``namespaces`` with Workflows allowed in them, each once its default
    ServiceAccount exists (pods are admitted once kube-controller-manager made it)."""
    for ns in namespaces:
        cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        allow_workflows(cluster, ns)
        until(
            lambda ns=ns: _has_default_account(cluster, ns),
            f"the ServiceAccount {ns}/default",
            60,
        )


def _has_default_account(cluster: LoopbackCluster, ns: str) -> bool:
    try:
        cluster.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")
    except urllib.error.HTTPError:
        return False
    return True


def kubectl(cluster: LoopbackCluster, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(binary("kubectl")), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args[:2])}: {done.stderr.strip()}")
    return done.stdout


def apply_strict(cluster: LoopbackCluster, ns: str, text: str) -> str:
    """``kubectl apply --server-side --validate=strict`` of ``text`` in ``ns``: the API server
    refuses an unknown or duplicate field instead of dropping it."""
    return kubectl(
        cluster,
        "apply",
        "--server-side",
        "--field-manager=controlplane-tests",
        "--validate=strict",
        "-n",
        ns,
        "-f",
        "-",
        stdin=text,
    )


def workflow(stack: ArgoStack, ns: str, name: str) -> dict[str, Any]:
    got: dict[str, Any] = json.loads(stack.argo.cli("get", "-n", ns, name, "-o", "json"))
    return got


def outputs(found: dict[str, Any]) -> dict[str, str]:
    """Every output parameter of the Workflow's nodes, by name."""
    out: dict[str, str] = {}
    for node in ((found.get("status") or {}).get("nodes") or {}).values():
        for param in (node.get("outputs") or {}).get("parameters") or []:
            out[param["name"]] = str(param.get("value"))
    return out


def engine(stack: ArgoStack, ns: str, name: str, *args: str) -> str:
    """An engine pod ``name`` (labelled ``app: <name>``) with ``args`` behind the Service
    ``name`` (port 80); the Service's base URL by its cluster DNS name, as the controller gives
    a gate's ``{{candidate.endpoint}}`` (``http://<service>.<ns>.svc.cluster.local``), once the
    pod is Ready and the Service lists it."""
    spec = engine_pod_spec(stack.node.images["engine"], *args)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": spec,
    }
    stack.cluster.request("POST", f"/api/v1/namespaces/{ns}/pods", body)
    stack.cluster.request("POST", f"/api/v1/namespaces/{ns}/services", service(ns, name))
    (pod,) = until(
        lambda: [p for p in pods(stack.cluster, ns, name) if ready(p)],
        f"the engine pod {name} Ready",
        180,
    )
    address = pod["status"]["podIP"]
    until(
        lambda: address in ready_endpoints(stack.cluster, ns, name),
        f"the Service {name} listing {address}",
        60,
    )
    return f"http://{name}.{ns}.svc.cluster.local"
