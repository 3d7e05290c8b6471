"""The dashboard in a real Chromium over the real API app: the list, its filters, one canary's
page (the rollback's reason in words, the checks with both variants and the limit, capacity,
history), keyboard use, and axe-core with no serious finding in light and dark mode."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from support import dashboard as d

from harness.kube.fake import FakeKube

pytestmark = pytest.mark.binary  # Playwright's driver and Chromium

SIGN_IN = "Sign in"


def _open_list(page: Any, site: Any) -> None:
    page.goto(site.url())
    page.wait_for_selector("[data-testid=canary-list] tbody tr")


def test_the_token_leaves_the_address_bar_and_the_list_shows_every_canary(
    page: Any, site: Any, shoot: Callable[[Any, str], Path]
) -> None:
    _open_list(page, site)
    assert "token=" not in page.url
    rows = page.locator("[data-testid=canary-list] tbody tr")
    assert rows.count() == 3
    row = page.locator("tr[data-canary='ml-serving/summarizer']")
    assert "rolled back" in row.inner_text()
    assert "progressing" in page.locator("tr[data-canary='ml-serving/support-triage']").inner_text()


def test_a_long_list_is_paged_and_filtered(page: Any, shoot: Callable[[Any, str], Path]) -> None:
    kube = FakeKube()
    d.fleet(kube, 120, time.time() - 3 * d.HOUR)
    with d.serve(kube) as server:
        page.goto(f"{server.url}/dashboard/#token={d.ADMIN}")
        rows = page.locator("[data-testid=canary-list] tbody tr")
        expect(page.locator(".count")).to_have_text("120 of 120 canaries")
        assert rows.count() == 50
        assert page.get_by_text("page 1 of 3").is_visible()
        shoot(page, "list")
        page.get_by_role("button", name="Next").click()
        assert (
            rows.first.get_attribute("data-canary") == "team-04/model-0024"
        )  # by namespace, then name
        page.get_by_label("Phase").select_option("paused")
        expect(page.locator(".count")).to_have_text("8 of 120 canaries")
        assert all("paused" in r.inner_text() for r in rows.all())
        page.get_by_label("Name contains").fill("model-0007")
        assert [r.get_attribute("data-canary") for r in rows.all()] == ["team-07/model-0007"]


def test_a_user_of_one_empty_namespace_names_it_and_sees_its_list(page: Any) -> None:
    """nina may list in team-z only, where no canary is yet: the page says she may not list
    every namespace (the server's reason) and asks for a namespace; named, it is watched."""
    kube = FakeKube()
    d.fleet(kube, 3, time.time() - d.HOUR)
    kube.add_token("nina-token", "nina")
    kube.grant(
        "nina-reader",
        verbs=["list", "watch"],
        resources=["modelcanaries"],
        api_groups=[d.GROUP],
        namespace="team-z",
        users=["nina"],
    )
    with d.serve(kube, static_token=None) as server:
        page.goto(f"{server.url}/dashboard/#token=nina-token")
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("You may not list canaries in every namespace")
        expect(alert).to_contain_text('user "nina" may not list')
        page.get_by_label("Show the canaries of one namespace").fill("team-z")
        page.get_by_role("button", name="Show").click()
        expect(page.locator("[data-testid=scope]")).to_contain_text("Namespace team-z only")
        expect(page.locator(".count")).to_have_text("0 of 0 canaries")
        assert page.get_by_role("alert").count() == 0
        assert "#/ns/team-z" in page.url


def test_filters_by_namespace_and_phase(page: Any, site: Any) -> None:
    _open_list(page, site)
    page.get_by_label("Namespace").select_option("search")
    rows = page.locator("[data-testid=canary-list] tbody tr")
    assert [r.get_attribute("data-canary") for r in rows.all()] == ["search/search-rerank"]
    page.get_by_label("Namespace").select_option("")
    page.get_by_label("Phase").select_option("rolled_back")
    assert [r.get_attribute("data-canary") for r in rows.all()] == ["ml-serving/summarizer"]


def test_a_rolled_back_canary_says_why_and_shows_its_checks(
    page: Any, site: Any, shoot: Callable[[Any, str], Path]
) -> None:
    _open_list(page, site)
    page.get_by_role("link", name="summarizer").click()
    page.wait_for_selector("[data-testid=reason]")
    assert page.url.endswith("#/canary/ml-serving/summarizer")
    reason = page.locator("[data-testid=reason]").inner_text()
    assert "Why it rolled back" in reason
    assert "above the limit of 250 ms" in reason
    check = page.locator("[data-check='steps[0].rollbackOn[0]']")
    text = check.inner_text()
    assert "failing" in text
    assert "fails above 250 ms" in text
    assert "Samples148" in text.replace("\n", "").replace(" ", "")  # the latest result's
    assert "3.60 of 3.20 needed" in text  # evidence against its boundary
    assert check.locator(".chart canvas").count() == 2  # values vs limit; evidence vs boundary
    # 1.8 GPU-hours recorded half an hour ago, 2 GPUs held since: 2.8 (and a little more by
    # the time the page is read)
    hours = float(page.locator("[data-testid=gpu-hours]").inner_text())
    assert 2.8 <= hours <= 3.0
    assert "regression" in page.locator("#gates").locator("..").inner_text()
    assert "rolled back" in page.locator("[data-testid=history]").inner_text()
    assert "AlertDeliveryFailed" in page.locator("main").inner_text()
    shoot(page, "rolled-back")


def test_a_quality_canary_shows_what_its_judge_read(
    page: Any, shoot: Callable[[Any, str], Path]
) -> None:
    """The judge's words are the server's (as ``kubectl canary get`` prints them), beside the
    pairs read and the decision; a canary without ``spec.quality`` has no such section."""
    kube = FakeKube()
    start = time.time() - 3 * d.HOUR
    d.put(kube, d.canary("chat-fp8", status=d.judged(start), quality=d.QUALITY))
    d.put(kube, d.canary("plain", status=d.progressing(start)))
    with d.serve(kube) as server:
        page.goto(f"{server.url}/dashboard/#token={d.ADMIN}")
        page.wait_for_selector("[data-testid=canary-list] tbody tr")
        page.goto(f"{server.url}/dashboard/#/canary/{d.NS}/chat-fp8")
        words = page.locator("[data-testid=quality]")
        expect(words).to_contain_text("mean disagreement 0.02 over 60 pairs is within the")
        assert words.inner_text().endswith("; 3 pairs lost unread")
        assert page.locator("[data-testid=quality-pairs]").inner_text() == "60"
        assert page.locator("[data-testid=quality-decision]").inner_text() == (
            "within the tolerance"
        )
        assert page.locator("#quality").count() == 1
        shoot(page, "quality")
        page.goto(f"{server.url}/dashboard/#/canary/{d.NS}/plain")
        page.wait_for_selector("[data-testid=step]")
        assert page.locator("#quality").count() == 0


def test_a_progressing_canary_shows_its_step_and_weight_over_time(
    page: Any, site: Any, shoot: Callable[[Any, str], Path]
) -> None:
    _open_list(page, site)  # the token taken before the route changes
    page.goto(site.detail("support-triage"))
    page.wait_for_selector("[data-testid=step]")
    assert page.locator("[data-testid=step]").inner_text() == "2"
    assert page.locator("[data-testid=weight]").inner_text() == "50%"
    assert page.locator("[aria-current=step]").inner_text().startswith("Step 2")
    assert page.locator("#timeline").locator("..").locator(".chart canvas").count() == 1
    assert page.locator("[data-testid=reason]").count() == 0
    shoot(page, "progressing")


DAY = 24 * d.HOUR


def _x_scale(chart: Any) -> tuple[float, float]:
    """The x range (unix seconds) a chart drew, as the page writes it on the chart's div."""
    expect(chart).to_have_attribute("data-x-max", re.compile(r"^\d"))
    return float(chart.get_attribute("data-x-min")), float(chart.get_attribute("data-x-max"))


def test_a_chart_of_one_point_draws_the_step_and_not_years(page: Any) -> None:
    """45 s into a rollout the history holds one event and each check one result: every chart
    (weight, check, evidence) draws step 1's own hour, not the years uPlot alone gives a point."""
    start = time.time() - 45
    status = d.progressing(start - d.HOUR)  # then made a first step with one of everything
    check = status["checks"].pop("steps[1].rollbackOn[0]")
    first = {**check["recent"][0], "at": start, "evidence": 0.0}
    status |= {
        "step": 1,
        "weight": 10,
        "startedAt": start,
        "stageStartedAt": start,
        "lastEvaluation": start,
        "history": [status["history"][0] | {"time": start}],
        "checks": {"steps[0].rollbackOn[0]": check | first | {"recent": [first]}},
    }
    kube = FakeKube()
    d.put(kube, d.canary("fresh", status=status))
    with d.serve(kube) as server:
        page.goto(f"{server.url}/dashboard/#token={d.ADMIN}")
        page.wait_for_selector("[data-testid=canary-list] tbody tr")  # the token taken first
        page.goto(f"{server.url}/dashboard/#/canary/{d.NS}/fresh")
        weight = page.locator("#timeline").locator("..").locator(".chart")
        card = page.locator("[data-check='steps[0].rollbackOn[0]'] .chart")
        expect(card).to_have_count(2)  # the values against the limit; the evidence
        for chart in (weight, card.first, card.last):
            low, high = _x_scale(chart)
            assert high - low < DAY, (low, high)
            assert low == pytest.approx(start, abs=1)  # step 1's hour, from its start
            assert high == pytest.approx(start + d.HOUR, abs=1)


def test_a_chart_of_many_points_still_spans_its_data(page: Any, site: Any) -> None:
    _open_list(page, site)  # the token taken before the route changes
    page.goto(site.detail("support-triage"))
    status = d.progressing(site.start)
    weight = page.locator("#timeline").locator("..").locator(".chart")
    assert _x_scale(weight) == pytest.approx((site.start, status["lastEvaluation"]), abs=0.01)
    recent = status["checks"]["steps[1].rollbackOn[0]"]["recent"]
    values = page.locator("[data-check='steps[1].rollbackOn[0]'] .chart").first
    assert _x_scale(values) == pytest.approx((recent[0]["at"], recent[-1]["at"]), abs=0.01)


def test_keyboard_alone_opens_a_canary_and_a_dialog_that_keeps_focus(page: Any, site: Any) -> None:
    _open_list(page, site)
    for _ in range(40):  # tab to the canary's link, then follow it with Enter
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "summarizer":
            break
    else:
        raise AssertionError("the canary's link never took the focus")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=reason]")
    retry = page.locator("button[data-verb=retry]")
    retry.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("dialog[open]")
    dialog.wait_for()
    for _ in range(6):  # Tab cycles inside the modal dialog
        page.keyboard.press("Tab")
        assert page.evaluate("!!document.activeElement.closest('dialog')")
    page.keyboard.press("Escape")
    assert page.locator("dialog[open]").count() == 0
    assert page.evaluate("document.activeElement.dataset.verb") == "retry"


def test_a_bad_token_is_asked_for_again(page: Any, site: Any) -> None:
    page.goto(site.url(token="not-a-token"))
    page.get_by_role("button", name=SIGN_IN).wait_for()
    assert "not accepted" in page.locator("[role=alert]").inner_text()
    page.get_by_label("Access token").fill(d.ADMIN)
    page.get_by_role("button", name=SIGN_IN).click()
    page.wait_for_selector("[data-testid=canary-list] tbody tr")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_finding(
    page: Any, site: Any, scheme: str, shoot: Callable[[Any, str], Path]
) -> None:
    page.emulate_media(color_scheme=scheme)
    _open_list(page, site)
    assert d.axe_violations(page) == []
    page.goto(site.detail("summarizer"))
    page.wait_for_selector("[data-testid=reason]")
    page.locator("details summary").first.click()  # the checks' tables too
    assert d.axe_violations(page) == []
    page.locator("button[data-verb=retry]").click()
    page.locator("dialog[open]").wait_for()
    assert d.axe_violations(page) == []
    if scheme == "dark":
        page.keyboard.press("Escape")
        shoot(page, "dark")
