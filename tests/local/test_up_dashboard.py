"""``canaryctl up --dashboard``: a real local run (simulated engine, real Prometheus) served by the
dashboard's API, watched over its live stream and aborted through it, as a person on the page
would: the state machine applies the abort as the controller applies an intent."""

from __future__ import annotations

import asyncio
import io
import re
import threading
from typing import Any

import httpx
import pytest
from rich.console import Console
from support.local import DEMO, UP_VERB, demo
from support.sse import EventStream

from controlplane.cli import main as cli
from controlplane.cli.main import build_parser
from controlplane.cli.up import serve_dashboard
from controlplane.local.display import LogDisplay
from controlplane.local.stack import UpConfig, run_up

pytestmark = [pytest.mark.binary, pytest.mark.slow]
FLAGS: list[list[str]] = [[], ["--dashboard"], ["--dashboard=0"], ["--dashboard", "8081"]]


@pytest.mark.timeout(120)
def test_a_run_is_watched_and_aborted_from_the_dashboard() -> None:
    canary = demo()
    config = UpConfig(time_scale=200, load_rps=30, seed=1, max_time_s=90)
    served = serve_dashboard(canary, config, 0)
    base, _, token = served.url.partition("/dashboard/#token=")
    auth = {"Authorization": f"Bearer {token}"}
    path = f"{base}/api/v1/namespaces/{canary.metadata.namespace}/canaries/{canary.metadata.name}"
    seen: list[str] = []
    answers: list[httpx.Response] = []

    def person() -> None:
        """Watch until step 1 runs, then abort."""
        with EventStream(f"{base}/api/v1/watch/canaries", auth, timeout_s=60) as stream:
            event, data = stream.next()
            seen.append(event)
            while True:
                event, data = stream.next(timeout_s=60)
                seen.append(f"{event}:{data.get('phase')}")
                if event == "upsert" and data["phase"] == "progressing":
                    answers.append(httpx.post(f"{path}/abort", headers=auth))
                    return

    watcher = threading.Thread(target=person, daemon=True)
    watcher.start()
    try:
        display = LogDisplay(Console(file=io.StringIO()))
        result = asyncio.run(run_up(canary, config, display, watcher=served.source))
        watcher.join(10)
        after = httpx.post(f"{path}/pause", headers=auth)
        final: dict[str, Any] = httpx.get(path, headers=auth).json()
    finally:
        served.stop()
    assert seen[0] == "snapshot"
    assert [a.status_code for a in answers] == [202], [a.text for a in answers]
    user = answers[0].json()["intent"]["user"]
    assert result.outcome == "rolled_back", seen
    assert result.state.reason is not None
    assert result.state.reason.message == f"aborted by {user}"
    assert (final["phase"], final["simulated"], final["timeScale"]) == ("rolled_back", True, 200)
    assert after.status_code == 409
    assert "over (rolled_back)" in after.json()["detail"]


def test_the_flags_port() -> None:
    parser, _verbs = build_parser(["up"])
    port = [parser.parse_args(["up", str(DEMO), *flag]).dashboard for flag in FLAGS]
    assert port == [None, 3100, 0, 8081]


@pytest.mark.timeout(120)
def test_up_prints_the_dashboards_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.VERBS, "up", UP_VERB)
    fast = ["--time-scale", "200", "--load", "30", "--seed", "1", "--max-time", "90s"]
    exited = cli.main(["up", str(DEMO), *fast, "-o", "json", "--dashboard=0"])
    err = capsys.readouterr().err
    assert exited == 0, err[-3000:]
    (line,) = [x for x in err.splitlines() if x.startswith("dashboard: ")]
    assert re.fullmatch(r"dashboard: http://127\.0\.0\.1:\d+/dashboard/#token=[\w-]{40,}", line)
