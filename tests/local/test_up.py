"""``canaryctl up`` end to end: simulated engine, real Prometheus, real HTTP, time-scaled spec.

The demo spec at ``--time-scale 200``: steps of 9 s, interval 1 s (floored from 300 ms), windows
of 4 s (floored from 3 s). Promotion takes ~25 s; the injected-latency rollback ~10 s. Stopping
with SIGINT / SIGTERM must leave no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.local import DEMO, PYTHON, ROOT, UP_PROGRAM, UP_VERB

from controlplane.cli import main as cli

pytestmark = [pytest.mark.binary, pytest.mark.slow]
FAST = ["--time-scale", "200", "--load", "30", "--seed", "1", "-o", "json", "--max-time", "90s"]


def up(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
    code: int = 0,
) -> dict:
    monkeypatch.setitem(cli.VERBS, "up", UP_VERB)
    exited = cli.main(["up", str(DEMO), *FAST, *extra])
    out = capsys.readouterr()
    assert exited == code, out.err[-3000:]
    result: dict = json.loads(out.out)
    assert result["engine"] == "simulated"
    assert "[simulated engine]" in out.err  # the outcome line says what produced the numbers
    return result


@pytest.mark.timeout(120)
def test_up_promotes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    result = up(monkeypatch, capsys)
    assert result["outcome"] == "promoted", result["events"]
    assert result["weight"] == 100
    assert result["reason"] is None
    types = [e["type"] for e in result["events"]]
    assert types[0] == "StepStarted"
    assert types[-1] == "Promoted"
    assert [e["weight"] for e in result["events"] if e["type"] == "Advanced"] == [50, 100]
    by_variant = result["requests"]["byVariant"]
    assert by_variant.get("nf4", 0) > 50
    assert by_variant.get("bf16", 0) > 50
    assert set(result["requests"]["status"]) == {"200"}


@pytest.mark.timeout(120)
def test_up_rolls_back_on_injected_latency(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    picture = tmp_path / "up.png"
    result = up(
        monkeypatch,
        capsys,
        "--inject",
        "candidate.latency=+300ms",
        "--plot",
        str(picture),
        code=5,  # as `status` exits on a rollback
    )
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert result["outcome"] == "rolled_back", result["events"]
    reason = result["reason"]
    # step 1 guards time to first token at 250 ms: +300 ms breaches it there, not later
    assert reason["step"] == 1
    assert result["step"] == 1
    assert reason["metric"] == "ttft"
    assert reason["above"] == pytest.approx(0.25)
    assert reason["value"] > 0.3
    assert result["weight"] == 0
    assert [e["type"] for e in result["events"]][-1] == "RolledBack"


def test_up_rejects_bad_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(cli.VERBS, "up", UP_VERB)
    assert cli.main(["up", str(DEMO), "--inject", "candidate.speed=2x"]) == 2
    assert "--inject" in capsys.readouterr().err
    assert cli.main(["up", str(DEMO), "--time-scale", "0"]) == 2
    assert "--time-scale" in capsys.readouterr().err
    bad = tmp_path / "bad.yml"
    bad.write_text("kind: ModelCanary\n")
    assert cli.main(["up", str(bad)]) == 2
    assert "bad.yml" in capsys.readouterr().err


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent and int(entry.name) not in found:
                found.add(int(entry.name))
                frontier.add(int(entry.name))
    return found


def _serving(pids: set[int]) -> dict[int, str]:
    """The model server processes among ``pids``, with the variant each serves."""
    found = {}
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if "controlplane.local.serve" in argv:
            found[pid] = next(a for a in argv if a.startswith("--variant=")).partition("=")[2]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_signal_shuts_everything_down(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [PYTHON, "-c", UP_PROGRAM, str(DEMO), "--time-scale", "20", "--load", "20"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline().decode()
                lines.append(line)
                if "StepStarted" in line:
                    break
            assert proc.poll() is None, "".join(lines)
        else:
            pytest.fail("up did not start step 1:\n" + "".join(lines))
        children = _children(proc.pid)
        names = {Path(f"/proc/{p}/comm").read_text().strip() for p in children if _alive(p)}
        assert "prometheus" in names
        # each replica is a model server process of its own: one per variant in the demo
        assert sorted(_serving(children).values()) == ["bf16", "nf4"]
        time.sleep(1.0)  # requests in flight while stopping
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
        text = "".join(lines) + out.decode()
        assert proc.returncode == 130, text
        assert "INTERRUPTED at step 1" in text
        assert "Traceback" not in text
        leftover = [p for p in children if _alive(p)]
        assert leftover == [], f"processes left behind: {leftover}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.timeout(90)
def test_a_killed_up_leaves_no_model_server_behind() -> None:
    """SIGKILL gives ``up`` no chance to stop its replicas: each asked Linux to send it SIGTERM
    when its parent dies (``PR_SET_PDEATHSIG``)."""
    proc = subprocess.Popen(
        [PYTHON, "-c", UP_PROGRAM, str(DEMO), "--time-scale", "20", "--load", "20"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    servers: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 60
        while len(servers) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None
            servers = _serving(_children(proc.pid))
            time.sleep(0.2)
        assert sorted(servers.values()) == ["bf16", "nf4"]
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in servers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in servers if _alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what else it started (Prometheus)
