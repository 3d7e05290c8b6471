"""Issue 33: ``canaryctl simulate`` against a hostile Prometheus, run as a user runs it.

The ``canaryctl`` entry point, ``controlplane.cli.main:main``, runs in a separate process that
reports its own peak RSS, ``VmHWM`` of ``/proc/self/status``, as it exits. ``wait4``'s
``ru_maxrss`` would also count the pytest worker it was forked from: Linux carries the parent's
high-water mark into the child across ``exec`` (1.5 GB in a full run, whatever the answer).

Before: the 55 MB answer took it to 10 GB (four range queries parsed at once) and 168 s; the
200,000-deep answer ended in a ``RecursionError`` traceback; an internal page's 403 body was
printed in the outcome. Now each is a clear message and exit status, within ~200 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.servers.hostile_prometheus import SECRET, hostile

pytestmark = pytest.mark.binary

ROOT = Path(__file__).resolve().parents[2]
CANARYCTL = (
    "import sys\n"
    "from controlplane.cli.main import main\n"
    "peak_file = sys.argv.pop(1)\n"
    "code = main(sys.argv[1:])\n"
    "with open('/proc/self/status') as status:\n"
    "    peak = next(line.split()[1] for line in status if line.startswith('VmHWM:'))\n"
    "with open(peak_file, 'w') as out:\n"
    "    out.write(peak)\n"
    "sys.exit(code)\n"
)
"""What the ``canaryctl`` console script runs, and then its own peak RSS (KiB) to a file."""
KILL_AFTER_S = 120.0
MAX_RSS_MB = 400


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str
    peak_rss_mb: float


def simulate(prometheus: str, tmp_path: Path, *more: str) -> Run:
    """``canaryctl simulate canary/four-week.yml`` over the last hour, and its own peak RSS."""
    out, err, peak = tmp_path / "out", tmp_path / "err", tmp_path / "peak"
    start = str(int(time.time()) - 3600)
    argv = [sys.executable, "-c", CANARYCTL, str(peak), "simulate", "canary/four-week.yml"]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [*argv, "--prometheus", prometheus, "--start", start, "--timeout", "30", *more],
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            code = proc.wait(KILL_AFTER_S)
        finally:
            proc.kill()
            proc.wait()
    return Run(code, out.read_text(), err.read_text(), int(peak.read_text()) / 1024)


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        pytest.param("huge", "error: Prometheus answer over 16 MiB: refused", id="55MB"),
        pytest.param("deep", "error: Prometheus answer nested deeper than 64: refused", id="deep"),
    ],
)
def test_an_unusable_answer_exits_1_with_the_reason(mode: str, said: str, tmp_path: Path) -> None:
    with hostile(mode) as server:
        run = simulate(server.url + "/internal/admin?ignore=", tmp_path)
        assert server.hits
    assert run.code == 1, run.err[-2000:]
    assert run.err.strip() == said
    assert "Traceback" not in run.err
    assert run.peak_rss_mb < MAX_RSS_MB, f"peak RSS {run.peak_rss_mb:.0f} MB"


def test_a_403_page_is_not_printed(tmp_path: Path) -> None:
    with hostile("forbidden") as server:
        run = simulate(server.url + "/internal/admin?ignore=", tmp_path, "-o", "json")
    assert run.code == 0, run.err[-2000:]
    result = json.loads(run.out)
    assert result["outcome"] == "paused"  # at errorLimit
    assert result["reason"]["message"].startswith("5 consecutive evaluations with provider errors")
    assert result["reason"]["message"].endswith("HTTP 403 Forbidden")
    assert SECRET not in run.out + run.err
    assert "hunter2" not in run.out + run.err
