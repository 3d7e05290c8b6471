"""Fixtures of the ``kubectl canary`` tests: a FakeKube, a fake clock, a fixed-size terminal.

``run_cli`` runs :func:`controlplane.cli.main.main` against the fake cluster and returns the exit
code, what went to stdout (``print`` and the rich console, in order) and stderr.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from support.cli import Result, RunCli, colour_console, plain_console
from support.cli_rollouts import Clock

from controlplane.cli.cluster import Runtime
from controlplane.cli.main import main
from harness.kube.fake import FakeKube


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kube(clock: Clock) -> FakeKube:
    return FakeKube(now=clock)


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
