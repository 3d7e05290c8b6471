"""``kubectl canary dashboard``: the controller's API and pages served in the CLI process over the
user's cluster client (here the fake one of the runtime), guarded by a one-run token."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.canaries import canary_dict
from support.cli import RunCli

from controlplane.cli import dashboard
from controlplane.cli.cluster import Runtime
from controlplane.cli.main import build_parser
from controlplane.kube.client import canary_ref
from harness.kube.fake import FakeKube


def parsed(kube: FakeKube, tmp_path: Path, *argv: str) -> argparse.Namespace:
    parser, _verbs = build_parser(["dashboard"])
    args = parser.parse_args(["dashboard", "--port", "0", "--no-browser", *argv])
    args.runtime = Runtime(kube=kube, user="dana", environ={"HOME": str(tmp_path)})
    return args


@pytest.fixture
def served(kube: FakeKube, tmp_path: Path) -> Iterator[dashboard.Served]:
    kube.create(canary_dict("mine", "team-a"))
    kube.create(canary_dict("theirs", "team-b"))
    running = dashboard.start(parsed(kube, tmp_path, "-n", "team-a"))
    try:
        yield running
    finally:
        running.stop()


def test_the_url_carries_a_token_in_its_fragment(served: dashboard.Served) -> None:
    base, _, fragment = served.url.partition("/dashboard/#")
    assert base.startswith("http://127.0.0.1:")
    assert fragment.startswith("token=")
    token = fragment.removeprefix("token=")
    assert len(token) >= 40
    me = httpx.get(f"{base}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert me.json() == {"user": "dana", "mode": "kubeconfig"}  # the kubeconfig's user
    assert httpx.get(f"{base}/api/v1/whoami").status_code == 401
    forged = httpx.get(f"{base}/api/v1/whoami", headers={"Authorization": "Bearer x" * 2})
    assert forged.status_code == 401


def test_it_serves_the_namespace_asked_for(served: dashboard.Served) -> None:
    base, _, fragment = served.url.partition("/dashboard/#token=")
    token = {"Authorization": f"Bearer {fragment}"}
    listed = httpx.get(f"{base}/api/v1/canaries", headers=token).json()["items"]
    assert [(c["namespace"], c["name"]) for c in listed] == [("team-a", "mine")]
    other = httpx.get(f"{base}/api/v1/namespaces/team-b/canaries/theirs", headers=token)
    assert other.status_code == 404
    assert "team-a" in other.json()["detail"]


def test_a_verb_is_recorded_as_the_user(
    served: dashboard.Served, kube: FakeKube, tmp_path: Path
) -> None:
    base, _, fragment = served.url.partition("/dashboard/#token=")
    token = {"Authorization": f"Bearer {fragment}"}
    kube.system_replace_status(
        canary_ref("team-a", "mine"), {"phase": "progressing", "stage": "steps"}
    )
    answer = httpx.post(f"{base}/api/v1/namespaces/team-a/canaries/mine/pause", headers=token)
    assert answer.status_code == 202, answer.text
    assert answer.json()["intent"]["user"] == "dana"


def test_a_port_in_use_is_an_error(run_cli: RunCli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("dashboard", "-n", "team-a", "--port", str(port), "--no-browser")
    assert result.code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.err


def test_a_port_out_of_range_is_a_usage_error(run_cli: RunCli) -> None:
    result = run_cli("dashboard", "--port", "70000", "--no-browser")
    assert result.code == 2
    assert "--port must be within 0..65535" in result.err
