"""Dashboard load benchmark: the list of 1,000 canaries, from navigation to the rows on screen.

Owns the "## Dashboard list load" section of ``docs/benchmarks-derivation.md``. Issue 38 asks the
dashboard to load in under a second on the loopback with 1,000 canaries listed. Here: 1,000
ModelCanaries (ten namespaces; each with a status as the controller writes it: history, a check
with its recent results, capacity) in a FakeKube, behind the controller's API app
(:func:`controlplane.api.app.create_app`, static token) served by uvicorn on 127.0.0.1, and
Debian's Chromium driven by Playwright (``tests/support/dashboard.py``: the same launch as the
browser tests). Each round opens a fresh browser context (empty cache: the bundle, the list and
the stream fetched anew), navigates to ``/dashboard/#token=...`` and stops the clock in the page
(``performance.now()``, from the navigation's start) on the first animation frame where the count
reads "1000 of 1000" and the first page of rows is in the document. The page marks when the
canaries arrived (``canaries-received``: the stream's snapshot), which splits the server's part
from the page's. The table gives the median and the slowest over ``--rounds`` (after one warm-up
round); beside it, one ``GET /api/v1/canaries`` from Python, the list the stream replaces.

Run ``python bench/dashboard_load.py`` (after ``make dashboard`` and ``make browser``;
``--rounds N``, ``--canaries N``, ``--no-write`` prints only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

try:
    from bench.common import BENCHMARKS_MD, machine_summary, replace_section, today
except ImportError:  # run as a script: bench/ is on sys.path
    from common import (  # type: ignore[no-redef]
        BENCHMARKS_MD,
        machine_summary,
        replace_section,
        today,
    )

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support import dashboard as d

from harness.kube.fake import FakeKube

SECTION = "## Dashboard list load"
TARGET_MS = 1000.0

RENDERED = """(n) => {
  const count = document.querySelector('.count');
  const rows = document.querySelectorAll('[data-testid=canary-list] tbody tr').length;
  return count && count.textContent.includes(`${n} of ${n}`) && rows > 0 ? performance.now() : 0;
}"""


def _round(browser: Any, url: str, n: int) -> tuple[float, float, int]:
    """One cold load: milliseconds from navigation start to the list drawn, and to the
    canaries' arrival in the page (the mark ``canaries-received``); bytes received."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(url, wait_until="commit")
        handle = page.wait_for_function(RENDERED, arg=n, polling="raf", timeout=30_000)
        took = float(handle.json_value())
        received = float(
            page.evaluate("performance.getEntriesByName('canaries-received')[0].startTime")
        )
        transferred = int(
            page.evaluate(
                "performance.getEntriesByType('navigation').concat("
                "performance.getEntriesByType('resource'))"
                ".reduce((s, e) => s + (e.encodedBodySize || 0), 0)"
            )
        )
        rows = page.locator("[data-testid=canary-list] tbody tr").count()
        if rows != 50:
            raise RuntimeError(f"the first page has {rows} rows, not 50")
        return took, received, transferred
    finally:
        context.close()


def measure(n: int, rounds: int) -> tuple[list[tuple[float, float, int]], float]:
    """``rounds`` cold loads of the list of ``n`` canaries; and the API's own time to list them
    (median of five ``GET /api/v1/canaries`` from Python, in milliseconds)."""
    from playwright.sync_api import sync_playwright

    d.built()
    kube = FakeKube()
    d.fleet(kube, n, time.time() - 3 * d.HOUR)
    with d.serve(kube) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=d.chromium(), headless=True, args=d.CHROMIUM_ARGS
        )
        try:
            url = f"{server.url}/dashboard/#token={d.ADMIN}"
            _round(browser, url, n)  # warm-up: the server's and the browser's first run
            results = [_round(browser, url, n) for _ in range(rounds)]
        finally:
            browser.close()
        api = []
        for _ in range(5):
            began = time.perf_counter()
            answer = httpx.get(
                f"{server.url}/api/v1/canaries", headers={"Authorization": f"Bearer {d.ADMIN}"}
            )
            api.append((time.perf_counter() - began) * 1000)
            if len(answer.json()["items"]) != n:
                raise RuntimeError("the API did not list every canary")
    return results, statistics.median(api)


def body(n: int, rounds: int, results: list[tuple[float, float, int]], api_ms: float) -> str:
    times = [r[0] for r in results]
    median, slowest = statistics.median(times), max(times)
    arrived = statistics.median(r[1] for r in results)
    drawn = statistics.median(r[0] - r[1] for r in results)
    transferred = results[-1][2]
    verdict = "Met" if median < TARGET_MS else "**Not met**"
    quote = (
        "Target: under 1 s on the loopback with 1,000 canaries. Reproduce: "
        "`python bench/dashboard_load.py` (after `make dashboard` and `make browser`)."
    )
    machine = machine_summary(("playwright", "fastapi"))
    load = os.getloadavg()[0]
    return f"""How long the dashboard's list takes to appear with {n:,} canaries, in Debian's
Chromium on the loopback: a fresh browser context each round (nothing cached), from the
navigation's start to the frame where the first page of rows (50) and the count are drawn.

| what | median | slowest |
|---|---:|---:|
| list of {n:,} canaries drawn (cold) | {median:.0f} ms | {slowest:.0f} ms |
| of which: the canaries arrive in the page | {arrived:.0f} ms | |
| of which: the page draws them | {drawn:.0f} ms | |
| `GET /api/v1/canaries` alone ({n:,} items, from Python) | {api_ms:.0f} ms | |

{quote}

{verdict}: median {median:.0f} ms over {rounds} rounds (after one warm-up), slowest
{slowest:.0f} ms. Each load received {transferred / 1024:.0f} KiB of page, script and style,
then the canaries through the stream (`/api/v1/watch/canaries`, its first event: every summary).
The machine's load average when the run ended: {load:.1f}. Measured on {today()}; {machine}.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--canaries", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results, api_ms = measure(args.canaries, args.rounds)
    text = body(args.canaries, args.rounds, results, api_ms)
    print(text)
    if not args.no_write:
        replace_section(BENCHMARKS_MD, SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
