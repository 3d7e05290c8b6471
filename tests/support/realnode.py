"""A real node's workloads for the tests: the engine's pods, Deployments and Services, and reads.

Built on :mod:`harness.node` (``tests/harness/test_node.py`` and the real-traffic tests use it).
Every helper takes the namespace ``ns``; the engine answers on :data:`PORT` as :data:`MODEL`
unless told otherwise. One real node runs per machine: the modules that start one share the
xdist group :data:`XDIST_GROUP`, so that one worker runs them one after the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.cluster.kubeapi import LoopbackCluster

PORT = 8000
MODEL = "llama-tiny"
XDIST_GROUP = "real-node"
MARKS = [
    pytest.mark.binary,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.xdist_group(XDIST_GROUP),
]
"""The ``pytestmark`` of a module that starts a real node."""


def until(check: Callable[[], Any], what: str, timeout: float = 120.0, every: float = 0.5) -> Any:
    """``check()``'s first truthy result, polled every ``every`` seconds; ``timeout`` only
    bounds a hang."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f} s")
        time.sleep(every)


PROBE_TIMEOUT_S = 5
PROBE_FAILURES = 3
"""The engine's readiness probe: Kubernetes' default three failures in a row, each allowed 5 s
(the default is 1; both defaults in k8s.io/api v0.34.10 ``core/v1/types.go``, ``Probe``). With
one failure of 1 s a busy engine on a loaded machine went unready between requests: its
Service then had no endpoint, kube-proxy rejected the next connection, and a gate's workflow
failed with "Cannot connect to host candidate..." (a CI run; the kernel's drop tracepoint saw
the rejected SYNs of that step's ``canaryctl`` processes as ``NETFILTER_DROP``).
A never-ready engine still fails three probes at once (refused)."""


def engine_pod_spec(image: str, *args: str, model: str = MODEL) -> dict[str, Any]:
    """One engine container serving ``model`` with kubelet's readiness probe on ``/health``;
    the metrics' namespace label comes from the downward API."""
    return {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 5,
        "containers": [
            {
                "name": "main",
                "image": image,
                "imagePullPolicy": "Never",
                "args": [model, "--port", str(PORT), *args],
                "ports": [{"containerPort": PORT, "name": "http"}],
                "env": [
                    {
                        "name": "CONTROLPLANE_NAMESPACE",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                    }
                ],
                "readinessProbe": {
                    "httpGet": {"path": "/health", "port": PORT},
                    "periodSeconds": 1,
                    "timeoutSeconds": PROBE_TIMEOUT_S,
                    "failureThreshold": PROBE_FAILURES,
                },
            }
        ],
    }


def deployment(
    ns: str, name: str, image: str, replicas: int, *args: str, model: str = MODEL
) -> dict[str, Any]:
    """A Deployment of the engine, its pods labelled ``app: <name>``."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": engine_pod_spec(image, *args, model=model),
            },
        },
    }


def pods(cluster: LoopbackCluster, ns: str, app: str) -> list[dict[str, Any]]:
    path = f"/api/v1/namespaces/{ns}/pods?labelSelector=app%3D{app}"
    items: list[dict[str, Any]] = cluster.request("GET", path)["items"]
    return items


def ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def main_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    status: dict[str, Any] = statuses[0]
    return status


def ready_endpoints(cluster: LoopbackCluster, ns: str, service: str) -> set[str]:
    """The addresses the EndpointSlices of ``service`` list as ready."""
    path = (
        f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
        f"?labelSelector=kubernetes.io%2Fservice-name%3D{service}"
    )
    found = set()
    for piece in cluster.request("GET", path)["items"]:
        for endpoint in piece.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready"):
                found.update(endpoint["addresses"])
    return found


def service(ns: str, name: str, app: str | None = None) -> dict[str, Any]:
    """A Service on port 80 in front of the engine pods ``app: <app or name>``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": app or name}, "ports": [{"port": 80, "targetPort": PORT}]},
    }
