"""The cluster verbs over the real adapter: ``--kubeconfig`` / ``--context`` / the context's
namespace reach a real HTTP server on loopback that answers like kube-apiserver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from support.canaries import canary_dict

from controlplane.cli.cluster import Runtime
from controlplane.cli.main import main
from harness.servers.loopback import serving

GROUP, VERSION = "canary.controlplane.dev", "v1alpha1"
BASE = f"/apis/{GROUP}/{VERSION}"
ROUTES: dict[str, Any] = {
    "/version": {"major": "1", "minor": "31", "gitVersion": "v1.31.0"},
    "/api": {"kind": "APIVersions", "versions": ["v1"]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": []},
    "/apis": {
        "kind": "APIGroupList",
        "groups": [
            {
                "name": GROUP,
                "versions": [{"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}],
                "preferredVersion": {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION},
            }
        ],
    },
    BASE: {
        "kind": "APIResourceList",
        "groupVersion": f"{GROUP}/{VERSION}",
        "resources": [
            {
                "name": "modelcanaries",
                "namespaced": True,
                "kind": "ModelCanary",
                "verbs": ["get", "list", "update", "watch"],
            }
        ],
    },
}


@pytest.fixture
def api_server() -> Iterator[tuple[str, list[str]]]:
    canary = canary_dict(
        "support-triage",
        "team-a",
        metadata={"resourceVersion": "7"},
        status={"phase": "promoted", "observedGeneration": 1},
    )
    routes = {**ROUTES, f"{BASE}/namespaces/team-a/modelcanaries/support-triage": canary}
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            seen.append(path)
            body = routes.get(path)
            code = 200 if body is not None else 404
            if body is None:
                body = {"kind": "Status", "code": 404, "reason": "NotFound", "message": "nope"}
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, seen


def test_status_through_kubeconfig_context_namespace(
    api_server: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, seen = api_server
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: other\n"
        f"clusters:\n- name: local\n  cluster: {{server: '{url}'}}\n"
        "users:\n- name: me\n  user: {token: t}\n"
        "contexts:\n"
        "- name: other\n  context: {cluster: local, user: me, namespace: elsewhere}\n"
        "- name: team\n  context: {cluster: local, user: me, namespace: team-a}\n",
        encoding="utf-8",
    )
    runtime = Runtime(environ={"HOME": str(tmp_path)})
    argv = ["status", "support-triage", "--kubeconfig", str(config), "--context", "team"]
    assert main([*argv, "-o", "json"], runtime=runtime) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "promoted"
    assert f"{BASE}/namespaces/team-a/modelcanaries/support-triage" in seen

    missing = ["status", "support-triage", "--kubeconfig", str(config)]  # context "other"
    assert main(missing, runtime=Runtime(environ={})) == 1
    err = capsys.readouterr().err
    assert "modelcanary 'support-triage' not found in namespace 'elsewhere'" in err
    assert "Traceback" not in err
