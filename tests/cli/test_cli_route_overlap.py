"""``canaryctl validate --cluster`` warns when another HTTPRoute on the canary's Gateway matches
the same requests as the canary's route would: only one route gets them, so the candidate may get
none (routing/overlap.py). A warning: the exit status stays 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.cli import RunCli

from harness.kube.fake import FakeKube

FOUR_WEEK = Path(__file__).resolve().parents[2] / "canary" / "four-week.yml"


def http_route(name: str, namespace: str, hosts: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "parentRefs": [
            {"name": "inference-gateway", "namespace": "gateway-system", "kind": "Gateway"}
        ],
        "rules": [{"backendRefs": [{"name": "other-svc", "port": 80}]}],
    }
    if hosts:
        spec["hostnames"] = hosts
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize("namespace", ["ml-serving", "gateway-system"])
def test_another_route_on_the_gateway_matching_every_request_is_a_warning(
    run_cli: RunCli, kube: FakeKube, namespace: str
) -> None:
    kube.create(http_route("summarizer", namespace))
    got = run_cli("validate", "--cluster", str(FOUR_WEEK))
    assert got.code == 0, got.out + got.err
    line = line_of(FOUR_WEEK, "  traffic:")
    assert (
        f"{FOUR_WEEK}:{line}: warning: spec.traffic: HTTPRoute {namespace}/summarizer on Gateway "
        "gateway-system/inference-gateway matches the same requests (every host, neither naming "
        f"hostnames; PathPrefix /), and only one route gets them: Gateway API gives them to the "
        f"older, {namespace}/summarizer"
    ) in got.err
    assert "1 file(s) valid (1 warning)" in got.err


def test_other_hosts_or_no_other_route_warn_of_nothing(run_cli: RunCli, kube: FakeKube) -> None:
    assert "warning" not in run_cli("validate", "--cluster", str(FOUR_WEEK)).err
    kube.create(http_route("summarizer", "ml-serving", hosts=["summarize.example.com"]))
    assert "warning" not in run_cli("validate", "--cluster", str(FOUR_WEEK)).err
    # offline, nothing is read
    kube.create(http_route("everything", "ml-serving"))
    assert "warning" not in run_cli("validate", str(FOUR_WEEK)).err
