"""Fixtures of the dashboard's browser tests: Playwright with Debian's Chromium, a loopback API
over a fake cluster holding a progressing and a rolled-back canary, and screenshots.

Screenshots go to a temporary directory, or to ``$DASHBOARD_SCREENSHOTS`` (``docs/img`` refreshes
the ones docs/dashboard.md shows: ``DASHBOARD_SCREENSHOTS=docs/img pytest tests/dashboard``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import dashboard as d

from controlplane.api.server import ApiServer
from harness.kube.fake import FakeKube


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    d.built()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def context(playwright: Any) -> Iterator[Any]:
    with d.browser_context(playwright) as ctx:
        yield ctx


HANG_MS = 120_000
"""Every wait of a page and of ``expect`` bounds a hang only: a loaded machine may take seconds
to render what a quiet one shows at once."""


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    from playwright.sync_api import expect

    expect.set_options(timeout=HANG_MS)
    page = context.new_page()
    page.set_default_timeout(HANG_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert not errors, f"the page threw: {errors}"


class Site:
    """A fake cluster with two canaries, and the API (with the dashboard) in front of it."""

    def __init__(self, kube: FakeKube, server: ApiServer, start: float) -> None:
        self.kube, self.server, self.start = kube, server, start

    def url(self, token: str = d.ADMIN, route: str = "") -> str:
        return f"{self.server.url}/dashboard/#token={token}" + (f"&{route}" if route else "")

    def detail(self, name: str, ns: str = d.NS) -> str:
        return f"{self.server.url}/dashboard/#/canary/{ns}/{name}"


@pytest.fixture
def site() -> Iterator[Site]:
    start = time.time() - 3 * d.HOUR
    kube = FakeKube()
    d.put(kube, d.canary("support-triage", status=d.progressing(start)))
    d.put(kube, d.canary("summarizer", status=d.rolled_back(start)))
    d.put(kube, d.canary("search-rerank", "search"))
    with d.serve(kube) as server:
        yield Site(kube, server, start)


@pytest.fixture
def shoot(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Any, str], Path]:
    """``shoot(page, name)``: a PNG of the whole page as ``dashboard-<name>.png``."""
    out = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path)

    def take(page: Any, name: str) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"dashboard-{name}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        d.shrink_png(path)
        return path

    return take
