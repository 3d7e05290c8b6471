"""Helpers of the ``kubectl canary`` tests: fixed-size terminals, golden files, the result type.

Kept out of ``conftest.py`` so test modules import them by a name no other test package uses.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "cli"
WIDTH, HEIGHT = 100, 40


@dataclass
class Result:
    code: int
    out: str
    err: str


def plain_console(file: io.StringIO) -> Console:
    """A fixed-size terminal without colour (what a pipe gets)."""
    return Console(
        file=file,
        width=WIDTH,
        height=HEIGHT,
        color_system=None,
        force_terminal=False,
        legacy_windows=False,
        _environ={},
    )


def colour_console(file: io.StringIO) -> Console:
    """A fixed-size colour terminal (ANSI, 8 colours), so styles and in-place redraws show."""
    return Console(
        file=file,
        width=WIDTH,
        height=HEIGHT,
        color_system="standard",
        force_terminal=True,
        legacy_windows=False,
        _environ={},
    )


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` (trailing spaces of each line dropped: rich pads) with a golden file."""
    text = "".join(line.rstrip() + "\n" for line in text.splitlines())
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"missing golden file {path}: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{path} drifted: if intended, regenerate with UPDATE_GOLDEN=1 and review the diff"
    )


RunCli = Callable[..., Result]
