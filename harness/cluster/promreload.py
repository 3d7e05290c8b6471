"""What carries the operator's later configurations to the loopback Prometheus (a cluster program).

In a cluster, the kubelet keeps the operator's Secret ``prometheus-<name>`` in the Prometheus
pod's volume up to date and the operator's config reloader, its sidecar, writes the
configuration from it with ``$(SHARD)`` and ``$(POD_NAME)`` filled in and asks Prometheus to
load it again (``--reload-url``, a POST to ``/-/reload``, which the operator turns on with
``--web.enable-lifecycle``: ``pkg/operator/config_reloader.go`` and ``pkg/prometheus/promcfg.go``
of prometheus-operator v0.85.0). Prometheus runs out of cluster here, so this program does both
for it: every :data:`EVERY_S` seconds it reads the Secret from the API server, renders it as
:func:`harness.cluster.monitoring.start_monitoring` rendered the first one (the reloader's
environment, Kubernetes discovery on the loopback API server), and when that differs from the
file Prometheus reads, writes it and posts the reload. So a PodMonitor a canary creates later
(the ``<canary>-adopted`` one that scrapes an adopted live service's pods) is scraped, as in a
cluster.

Started by :func:`harness.cluster.monitoring.start_monitoring` as ``python -m
harness.cluster.promreload``; it stops with the cluster. :func:`render` and :func:`sync` are
pure but for the file and the reload they are given.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.cluster.kubeapi import KubeSetupError
from harness.cluster.promoperator import decode_config, loopback_config

EVERY_S = 2.0
"""How often the Secret is read: the kubelet syncs a Secret volume on its
``syncFrequency``, 1m by default (k8s.io/kubelet v0.34.10 ``config/v1beta1/types.go``); a
test waits less."""


def render(secret: dict[str, Any], name: str, server: str, ca: Path, token: Path) -> str:
    """The configuration Prometheus ``name`` reads, from the operator's Secret."""
    return loopback_config(decode_config(secret), name, server, ca, token)


def sync(text: str, config: Path, reload: Callable[[], None]) -> bool:
    """Write ``text`` to ``config`` and ``reload()`` when it differs from what is there;
    whether it did."""
    if config.exists() and config.read_text() == text:
        return False
    config.write_text(text)
    reload()
    return True


def _get(url: str, ca: Path, token: Path) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token.read_text().strip()}"}
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        got: dict[str, Any] = json.loads(response.read())
        return got


def _post(url: str) -> None:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="the API server's URL")
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--token", type=Path, required=True, help="a file with a bearer token")
    parser.add_argument("--namespace", required=True, help="the Prometheus object's namespace")
    parser.add_argument("--name", required=True, help="the Prometheus object's name")
    parser.add_argument("--config", type=Path, required=True, help="the file Prometheus reads")
    parser.add_argument("--prometheus", required=True, help="Prometheus's URL")
    args = parser.parse_args(argv)
    secret = f"{args.server}/api/v1/namespaces/{args.namespace}/secrets/prometheus-{args.name}"
    while True:
        try:
            text = render(
                _get(secret, args.ca, args.token), args.name, args.server, args.ca, args.token
            )
            if sync(text, args.config, lambda: _post(f"{args.prometheus}/-/reload")):
                print("configuration changed: reloaded", flush=True)
        except (OSError, ValueError, KeyError, KubeSetupError) as exc:  # tried again next round
            print(f"not synced: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        time.sleep(EVERY_S)


if __name__ == "__main__":
    raise SystemExit(main())
