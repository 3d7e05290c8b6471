"""``simulate`` and ``up`` exit as ``status`` does: 0 promoted, 5 rolled back.

``simulate`` runs in process against a provider that answers every query (no Prometheus); ``up``
takes minutes, so its outcome-to-code mapping is tested directly (its full runs, tier ``slow``,
are in tests/local/test_up.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.cli import simulate as simulate_verb
from controlplane.cli import up
from controlplane.cli.exits import EXIT_PROMOTED, EXIT_ROLLED_BACK, replay_exit
from controlplane.cli.main import main
from harness.providers import Healthy

ROOT = Path(__file__).resolve().parents[2]
SHORT = (ROOT / "canary" / "four-week.yml").read_text().replace("duration: 7d", "duration: 1h")
START = 1_790_000_000.0


def _simulate(
    latency_s: float,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[int, str]:
    monkeypatch.setattr(
        simulate_verb,
        "prefetched",
        lambda _canary, _source, _s, _e: Healthy(latency_s, error_ratio=0.0001),
    )
    path = tmp_path / "canary.yml"
    path.write_text(SHORT)
    argv = ["simulate", str(path), "--prometheus", "http://127.0.0.1:9", "--start", str(START)]
    code = main([*argv, "--end", str(START + 6 * 3600), *extra])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("fmt", [[], ["-o", "json"]])
def test_simulate_exits_5_on_a_rollback(
    fmt: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _simulate(0.5, tmp_path, monkeypatch, capsys, *fmt)  # 500 ms > 300 ms
    assert code == EXIT_ROLLED_BACK == 5  # as `status` exits on a rollback
    assert "rolled_back" in out
    if fmt:
        assert json.loads(out)["outcome"] == "rolled_back"


def test_simulate_exits_0_on_a_promotion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _simulate(0.1, tmp_path, monkeypatch, capsys, "-o", "json")
    assert json.loads(out)["outcome"] == "promoted"
    assert code == EXIT_PROMOTED == 0


@pytest.mark.parametrize(
    ("outcome", "code"),
    [("promoted", 0), ("rolled_back", 5), ("interrupted", 130), ("paused", 1), ("in_progress", 1)],
)
def test_up_exit_codes(outcome: str, code: int) -> None:
    assert up.exit_code(outcome) == code


@pytest.mark.parametrize(
    ("outcome", "code"), [("promoted", 0), ("rolled_back", 5), ("paused", 0), ("in_progress", 0)]
)
def test_replay_exit(outcome: str, code: int) -> None:
    assert replay_exit(outcome) == code
