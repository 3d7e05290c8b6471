"""``canaryctl simulate`` and ``canaryctl demo`` as a user runs them: output, JSON, exit codes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.cli.main import main
from controlplane.local.prometheus import PrometheusServer, backfill, start_prometheus
from controlplane.local.synthetic import HOUR, Change, Scenario, Variant, history_end

pytestmark = pytest.mark.binary

ROOT = Path(__file__).resolve().parents[2]
SHORT = (ROOT / "canary" / "four-week.yml").read_text().replace("duration: 7d", "duration: 1h")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrometheusServer, float]]:
    """Six hours of history: the candidate's latency jumps to ~700 ms P99 after 2.5 hours."""
    end = history_end(time.time())
    end -= end % 60
    scenario = Scenario(
        start=end - 6 * HOUR,
        duration=6 * HOUR,
        stable=Variant("bf16", latency_median_s=0.07),
        candidate=Variant("nf4", latency_median_s=0.06),
        namespace="ml-serving",
        canary="support-triage",
        weights=((0.0, 5.0), (HOUR, 25.0), (2 * HOUR, 75.0)),
        changes=(Change(2.5 * HOUR, "candidate", {"latency_median_s": 0.35}),),
        families=frozenset({"e2e", "success", "kpi"}),
    )
    work = tmp_path_factory.mktemp("cli-simulate")
    backfill(scenario.write(work / "om"), work / "tsdb")
    server = start_prometheus(work / "tsdb")
    try:
        yield server, scenario.start
    finally:
        server.stop()


def spec(tmp_path: Path, text: str = SHORT) -> str:
    path = tmp_path / "canary.yml"
    path.write_text(text)
    return str(path)


def test_json_output_follows_the_contract(
    served: tuple[PrometheusServer, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, start = served
    code = main(
        [
            "simulate",
            spec(tmp_path),
            "--prometheus",
            server.url,
            "--start",
            str(start),
            "-o",
            "json",
        ]
    )
    assert code == 5  # rolled back, as `status` exits
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"outcome", "finishedAt", "step", "weight", "reason", "events"}
    # step 3 (75 %, P99 > 500 ms) is reached at 2 h; latency jumps at 2.5 h
    assert out["outcome"] == "rolled_back"
    assert out["step"] == 3
    assert out["weight"] == 0
    assert out["reason"]["metric"] == "latency-p99"
    assert out["reason"]["above"] == pytest.approx(0.5)
    assert out["finishedAt"].endswith("Z")
    types = [e["type"] for e in out["events"]]
    assert types[0] == "StepStarted"
    assert types[-1] == "RolledBack"
    assert all(set(e) == {"time", "type", "step", "weight", "message"} for e in out["events"])


def test_human_output_and_plot(
    served: tuple[PrometheusServer, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, start = served
    png = tmp_path / "rollout.png"
    args = ["simulate", spec(tmp_path), "--prometheus", server.url, "--start", str(start)]
    assert main([*args, "--plot", str(png)]) == 5  # rolled back
    out = capsys.readouterr().out
    assert "RolledBack" in out
    assert "latency-p99" in out
    assert "rolled_back" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000


def test_invalid_spec_exits_2_with_file_line_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = spec(tmp_path, SHORT.replace("above: 300ms", "above: 5%"))
    code = main(["simulate", bad, "--prometheus", "http://127.0.0.1:9", "--start", "now-1h"])
    assert code == 2
    err = capsys.readouterr().err
    assert "canary.yml:" in err
    assert "spec.steps[0].rollbackOn[0].above" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--start", "yesterday"], "invalid time"),
        (["--start", "now", "--end", "now-1d"], "before --start"),
    ],
    ids=["bad-time", "end-before-start"],
)
def test_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code = main(["simulate", spec(tmp_path), "--prometheus", "http://127.0.0.1:9", *args])
    assert code == 2
    assert needle in capsys.readouterr().err


def test_unreachable_prometheus_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # port 9 (discard) is closed on loopback: connection refused
    code = main(
        ["simulate", spec(tmp_path), "--prometheus", "http://127.0.0.1:9", "--start", "now-1h"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err == (
        "error: Prometheus at http://127.0.0.1:9 is unreachable: connection refused "
        "(is Prometheus running on that port?)\n"
    )


@pytest.mark.slow
def test_demo_shows_one_promotion_and_one_rollback_with_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["healthy"]["outcome"] == "promoted"
    assert out["kpi-drift"]["outcome"] == "rolled_back"
    assert out["kpi-drift"]["step"] == 2
    assert out["kpi-drift"]["reason"]["metric"] == "kpi"
