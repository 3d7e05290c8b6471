"""Live: a canary's page follows its status without a reload.

The controller writes step 3 (all traffic, promoted) into a canary whose page is open; the page's
step, weight, phase and history change, and a marker set in the page beforehand is still there
(the document was not reloaded). The same for the list's row.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import expect
from support import dashboard as d

from controlplane.kube.client import canary_ref

pytestmark = pytest.mark.binary  # Playwright's driver and Chromium


def _promoted(status: dict[str, Any]) -> dict[str, Any]:
    now = time.time()
    history = [
        *status["history"],
        {"type": "Promoted", "time": now, "step": 3, "weight": 100, "message": "all traffic"},
    ]
    return d.as_written(
        {
            **status,
            "phase": "promoted",
            "stage": "promoted",
            "step": 3,
            "weight": 100,
            "lastEvaluation": now,
            "history": history,
        }
    )


def test_a_step_advance_reaches_the_open_page_without_a_reload(page: Any, site: Any) -> None:
    page.goto(site.url())
    page.wait_for_selector("[data-testid=canary-list] tbody tr")  # the token taken first
    page.goto(site.detail("support-triage"))
    page.wait_for_selector("[data-testid=step]")
    assert page.locator("[data-testid=step]").inner_text() == "2"
    expect(page.locator(".live")).to_have_text("live")  # the stream, not polling
    page.evaluate("window.__notReloaded = true")
    ref = canary_ref(d.NS, "support-triage")
    site.kube.system_replace_status(ref, _promoted(site.kube.get(ref)["status"]))
    expect(page.locator("[data-testid=step]")).to_have_text("3")
    assert page.locator("[data-testid=weight]").inner_text() == "100%"
    assert "promoted" in page.locator("[data-testid=phase]").inner_text()
    assert "promoted" in page.locator("[data-testid=history]").inner_text()
    assert page.evaluate("window.__notReloaded === true")


def test_the_list_follows_too(page: Any, site: Any) -> None:
    page.goto(site.url())
    row = page.locator("tr[data-canary='ml-serving/support-triage']")
    row.wait_for()
    assert "progressing" in row.inner_text()
    page.evaluate("window.__notReloaded = true")
    ref = canary_ref(d.NS, "support-triage")
    site.kube.system_replace_status(ref, _promoted(site.kube.get(ref)["status"]))
    expect(row).to_contain_text("promoted")
    assert page.evaluate("window.__notReloaded === true")
