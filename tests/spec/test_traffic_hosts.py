"""``spec.traffic.hosts`` is limited to the canary's namespace (issue 33): no wildcard, each a
DNS-1123 subdomain, and a cluster-local Service host names the canary's own namespace. Every
problem has its path and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.spec.rules import cluster_local_namespace
from controlplane.validation import check_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "canary" / "four-week.yml").read_text()  # namespace ml-serving, gateway-api


TRAFFIC = "  traffic:\n    router: gateway-api\n"


def with_hosts(*hosts: str, router: str = "istio") -> str:
    lines = "".join(f"      - {h!r}\n" for h in hosts)
    text = EXAMPLE.replace(TRAFFIC, f"  traffic:\n    router: {router}\n    hosts:\n{lines}", 1)
    assert text != EXAMPLE
    return text


def host_problems(text: str) -> list[tuple[str, int | None, str]]:
    return [
        (p.path, p.line, p.message)
        for p in check_text(text, "canary.yml")
        if p.path.startswith("spec.traffic.hosts")
    ]


def test_example_traffic_block_is_where_the_test_edits() -> None:
    assert TRAFFIC in EXAMPLE


@pytest.mark.parametrize(
    "host",
    [
        "llm.example.com",
        "support.example.com",
        "m",  # a short name: the route's (the canary's) namespace
        "support-llm.ml-serving",
        "support-llm.ml-serving.svc",
        "support-llm.ml-serving.svc.cluster.local",
        "support-llm.ml-serving.svc.corp.internal",  # another cluster domain
        "a.b.c.d.example.org",
    ],
)
@pytest.mark.parametrize("router", ["istio", "gateway-api"])
def test_hosts_of_the_canarys_namespace_and_public_hosts_are_valid(host: str, router: str) -> None:
    text = with_hosts(host, router=router)
    assert host_problems(text) == []
    assert check_text(text, "canary.yml") == []


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("*", "is a wildcard"),
        ("*.example.com", "is a wildcard"),
        ("llm.*.com", "is a wildcard"),
        ("payments.team-b", "names a Service in namespace 'team-b'"),
        ("payments.team-b.svc", "names a Service in namespace 'team-b'"),
        ("payments.team-b.svc.cluster.local", "names a Service in namespace 'team-b'"),
        ("kube-dns.kube-system.svc.cluster.local", "names a Service in namespace 'kube-system'"),
        ("example.com", "names a Service in namespace 'com'"),  # two labels read as svc.ns
        ("LLM.example.com", "is not a host name"),
        ("llm_1.example.com", "is not a host name"),
        ("llm.example.com.", "is not a host name"),
        ("-llm.example.com", "is not a host name"),
        ("10.0.0.1", "not an IP address"),
        ("a" * 254, "at most 253 characters"),
    ],
)
def test_wildcards_other_namespaces_and_non_hosts_are_refused(host: str, says: str) -> None:
    text = with_hosts("llm.example.com", host)
    found = host_problems(text)
    assert len(found) == 1, found
    path, line, message = found[0]
    assert path == "spec.traffic.hosts[1]"
    assert line == text.splitlines().index(f"      - {host!r}") + 1
    assert says in message
    assert repr(host) in message


def test_every_bad_host_is_reported() -> None:
    text = with_hosts("*", "ok.example.com", "x.team-b.svc")
    assert [p[0] for p in host_problems(text)] == ["spec.traffic.hosts[0]", "spec.traffic.hosts[2]"]


@pytest.mark.parametrize(
    ("host", "namespace"),
    [
        ("svc.ns", "ns"),
        ("svc.ns.svc", "ns"),
        ("svc.ns.svc.cluster.local", "ns"),
        ("svc", None),
        ("llm.example.com", None),
        ("a.b.svcx.cluster.local", None),
    ],
)
def test_cluster_local_namespace(host: str, namespace: str | None) -> None:
    assert cluster_local_namespace(host) == namespace
