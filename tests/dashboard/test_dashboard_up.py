"""``canaryctl up --dashboard``: the demo canary's page follows its steps live.

``up`` runs the local demo (simulated engine, real Prometheus) at ``--time-scale 120`` (steps of
15 s) and prints the dashboard's link. The page opens the one canary, shows step 1 at 10 %, then
step 2 at 50 % without a reload (a marker set in the page beforehand is still there), and gives
its times in spec time beside the viewer's clock.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from support.local import DEMO, PYTHON, ROOT, UP_PROGRAM

pytestmark = [pytest.mark.binary, pytest.mark.slow]  # canaryctl up, Prometheus, Chromium

LINK = re.compile(r"http://127\.0\.0\.1:\d+/dashboard/#token=[A-Za-z0-9_\-.~%]+")


@pytest.fixture
def up_link() -> Iterator[str]:
    """``canaryctl up --dashboard=0`` (a free port) running; its link."""
    proc = subprocess.Popen(
        [PYTHON, "-c", UP_PROGRAM, str(DEMO), "--time-scale", "120", "--load", "30",
         "--seed", "1", "--dashboard=0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        link = None
        while link is None and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline().decode()
                seen.append(line)
                found = LINK.search(line)
                link = found.group(0) if found else None
            assert proc.poll() is None, "".join(seen)
        assert link is not None, "up printed no dashboard link:\n" + "".join(seen)
        yield link
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        proc.stdout.close()


def _text(page: Any, test_id: str) -> str:
    return str(page.locator(f"[data-testid={test_id}]").inner_text())


@pytest.mark.timeout(150)
def test_a_step_of_up_advances_on_the_open_page(
    page: Any, up_link: str, shoot: Callable[[Any, str], Path]
) -> None:
    page.goto(up_link)
    link = page.locator("[data-testid=canary-list] tbody th a").first
    link.wait_for()
    assert page.locator("[data-testid=canary-list] tbody tr").count() == 1
    link.click()
    expect(page.locator("[data-testid=step]")).to_have_text("1")
    assert _text(page, "weight") == "10%"
    assert "120" in _text(page, "simulated")  # the spec's clock runs 120 times faster
    assert page.locator("time + .spec").count() > 0  # times given in spec time too
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("[data-testid=step]")).to_have_text("2")
    assert _text(page, "weight") == "50%"
    assert page.evaluate("window.__notReloaded === true")
    assert "live" in page.locator(".live").inner_text()
    shoot(page, "up")
