"""Fixtures of the ``kubectl canary`` tests: a FakeKube, a fake clock, a fixed-size terminal.

``run_cli`` runs :func:`controlplane.cli.main.main` against the fake cluster and returns the exit
code, what went to stdout (``print`` and the rich console, in order) and stderr.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_rollouts import Clock
from rich.console import Console

from controlplane.cli.cluster import Runtime
from controlplane.cli.main import main
from controlplane.kube.fake import FakeKube

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


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kube(clock: Clock) -> FakeKube:
    return FakeKube(now=clock)


RunCli = Callable[..., Result]


@pytest.fixture
def run_cli(
    kube: FakeKube, clock: Clock, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> RunCli:
    def run(
        *argv: str,
        terminal: bool = False,
        environ: dict[str, str] | None = None,
        user: str | None = "alice",
    ) -> Result:
        capsys.readouterr()
        screen = io.StringIO()
        console = colour_console(screen) if terminal else plain_console(screen)
        runtime = Runtime(
            kube=kube,
            clock=clock,
            poll_s=0.01,
            console=console,
            user=user,
            environ=environ if environ is not None else {"HOME": str(tmp_path)},
        )
        code = main(list(argv), runtime=runtime)
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return Result(code, captured.out + screen.getvalue(), captured.err)

    return run
