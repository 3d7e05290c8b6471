"""The real-traffic tests' answers per phase, printed at the end of the run (a pytest plugin).

The tests that send real requests through the gateway (``tests/routing/test_real_*.py``) write
what each phase of a canary met with :func:`support.real_traffic.write_report`, as JSON in the
folder ``CONTROLPLANE_TRAFFIC_REPORT`` names. Under pytest-xdist their output is the workers',
which pytest shows only for a failure; so this plugin gives the run such a folder when none is
named (before the workers start, which inherit it) and prints, in the terminal summary, one
line per phase: the requests sent and how many failed, by status code. Registered in
``tests/conftest.py``; :func:`summary_lines` is pure.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

REPORT_ENV = "CONTROLPLANE_TRAFFIC_REPORT"
"""The folder the real-traffic tests write their reports in (:mod:`support.real_traffic`)."""


def _phase_line(phase: Mapping[str, Any]) -> str:
    weight = phase.get("weight")
    label = phase["phase"] if weight is None else f"{phase['phase']} ({weight}%)"
    failed: Mapping[str, int] = phase.get("failed") or {}
    codes = ", ".join(f"{n} x {code}" for code, n in sorted(failed.items()))
    lost = sum(failed.values())
    return f"{label}: {phase['requests']} sent, {lost} failed" + (f" ({codes})" if codes else "")


def summary_lines(test: str, report: Mapping[str, Any]) -> list[str]:
    """One line per canary of ``report`` (what :func:`~support.real_traffic.report` gives, as a
    test wrote it) with its phases; nothing for a report without phases."""
    lines = []
    for canary, got in sorted(report.items()):
        if not isinstance(got, Mapping) or not got.get("phases"):
            continue
        phases = " | ".join(_phase_line(p) for p in got["phases"])
        lines.append(f"{test} [{canary}] {phases}")
    return lines


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or os.environ.get(REPORT_ENV):
        return  # an xdist worker inherits the controller's folder; a named one is kept
    os.environ[REPORT_ENV] = tempfile.mkdtemp(prefix="traffic-reports-")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if hasattr(terminalreporter.config, "workerinput"):
        return
    folder = Path(os.environ.get(REPORT_ENV, ""))
    files = sorted(folder.glob("*.json")) if folder.name else []
    lines = [
        line
        for path in files
        for line in summary_lines(path.stem, json.loads(path.read_text() or "{}"))
    ]
    if lines:
        terminalreporter.write_sep("-", "requests through the gateway, per phase")
        for line in lines:
            terminalreporter.write_line(line)
