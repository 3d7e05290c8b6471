"""Service routing and cluster DNS on the real node: kube-proxy and CoreDNS as its processes.

Owns the configuration of both (pure: :func:`kube_proxy_config`, :func:`corefile`,
:func:`kubelet_dns`) and the checks that they serve (:func:`answers`). With them a pod of the
node reaches a Service by its name, ``http://<service>.<namespace>.svc.cluster.local``, as in any
cluster: what the product's ``{{candidate.endpoint}}`` is (``controller/argo_gates.py``,
``variant_endpoint``). :func:`harness.node.node.start_node` starts them with
``cluster_network=True``, after kubelet, as processes of the node (their command lines name
:data:`~harness.node.node.RUN_DIR`, so :meth:`~harness.node.node.RealNode.stop` ends them
and takes back what they wrote):

- ``kube-proxy`` v1.34.10 (``scripts/build-kube.sh``, the same module as kubelet) in
  ``iptables`` mode, on the admin kubeconfig, for the node :data:`~harness.node.node.NODE_NAME`.
  ``masqueradeAll`` makes every connection to a Service come from the bridge's address, so the
  reply of a pod to another pod on the same bridge goes through the host, where conntrack undoes
  the Service's DNAT, even on a kernel without ``br_netfilter`` (nothing here loads it). This
  machine's kernel has it, with ``net.bridge.bridge-nf-call-iptables`` at 1: a run with
  ``masqueradeAll: false`` passed the pod-to-Service test too (2026-11-25), so here the setting
  is a precaution, not a fix that was seen to be needed. No sysctl is changed
  (``conntrack`` zeros leave the kernel's values; ``localhostNodePorts: false`` leaves
  ``route_localnet``), its health and metrics listen on 127.0.0.1;
- ``coredns`` v1.12.1 (the version kubeadm v1.34.10 installs; built with the plugins below only)
  on the bridge's address, port 53: the ``kubernetes`` plugin answers ``cluster.local`` from the
  API server (Services' ClusterIPs, headless ones' pod addresses), nothing else is answered (no
  ``forward``: nothing beyond the machine). kubelet's ``clusterDNS`` names it, so a pod with
  ``dnsPolicy: ClusterFirst`` (or ``ClusterFirstWithHostNet`` on the node's network) resolves
  ``*.svc.cluster.local`` and its namespace's short names.
"""

from __future__ import annotations

import socket
import struct
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CLUSTER_DOMAIN = "cluster.local"
DNS_PORT = 53


def kube_proxy_config(
    kubeconfig: Path, node: str, pod_subnet: str, node_ip: str, health: int, metrics: int
) -> dict[str, Any]:
    """kube-proxy's ``KubeProxyConfiguration`` (``kubeproxy.config.k8s.io/v1alpha1``; pure)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node,
        "mode": "iptables",
        "clusterCIDR": pod_subnet,
        "iptables": {"masqueradeAll": True, "localhostNodePorts": False},
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "nodePortAddresses": [f"{node_ip}/32"],
        "healthzBindAddress": f"127.0.0.1:{health}",
        "metricsBindAddress": f"127.0.0.1:{metrics}",
    }


def corefile(kubeconfig: Path, node_ip: str, ready: int) -> str:
    """CoreDNS's Corefile: ``cluster.local`` from the API server on ``node_ip``:53 (pure)."""
    return f"""{CLUSTER_DOMAIN}:{DNS_PORT} {{
    bind {node_ip}
    errors
    log
    ready 127.0.0.1:{ready}
    kubernetes {CLUSTER_DOMAIN} {{
        kubeconfig {kubeconfig}
    }}
}}
"""


def kubelet_dns(node_ip: str) -> dict[str, Any]:
    """The fields of kubelet's configuration that point pods at CoreDNS (pure)."""
    return {"clusterDNS": [node_ip], "clusterDomain": CLUSTER_DOMAIN}


def answers(url: str) -> bool:
    """``GET url`` answers 200 (kube-proxy's ``/healthz`` once it has synced its rules, CoreDNS's
    ``/ready`` once the ``kubernetes`` plugin has listed the API server)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def resolve(name: str, server: str, timeout: float = 2.0) -> list[str]:
    """The IPv4 addresses ``server``:53 answers for ``name`` (an ``A`` query over UDP; empty when
    none). A few lines of the DNS wire format (RFC 1035, 4.1), so a test can ask CoreDNS itself
    without a resolver library."""
    query = struct.pack(">HHHHHH", 0x4350, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        query += bytes([len(label)]) + label.encode()
    query += b"\0" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(query, (server, DNS_PORT))
        data, _ = sock.recvfrom(4096)
    count = struct.unpack(">H", data[6:8])[0]
    at = len(query)
    found = []
    for _ in range(count):
        if data[at] & 0xC0 == 0xC0:  # a compressed name: two bytes
            at += 2
        else:
            while data[at]:
                at += data[at] + 1
            at += 1
        kind, _cls, _ttl, length = struct.unpack(">HHIH", data[at : at + 10])
        at += 10
        if kind == 1 and length == 4:
            found.append(socket.inet_ntoa(data[at : at + 4]))
        at += length
    return found
