"""The test tiers, enforced: a test that starts a program must say so with ``@pytest.mark.binary``.

``make test-fast`` runs ``-m 'not binary and not slow and not e2e'``: the pure core and everything
that starts no program, in under a minute. That only holds if the markers are true, so this plugin
(registered by ``tests/conftest.py``) makes them true: while an unmarked test sets up, runs or
tears down (its fixtures included, session-scoped ones too), starting a child process, through
:mod:`subprocess`, :mod:`asyncio` or :func:`os.posix_spawn`, fails the test with the program's
name. ``slow`` (weeks of replayed history, ``canaryctl up``, the torch stack) is not decidable
so: unmarked tests slower than :data:`SLOW_HINT_S` are listed at the end of the run, as a hint.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

SLOW_HINT_S = 2.0
TIER_MARKERS = ("binary", "slow", "e2e")


class UnmarkedBinary(BaseException):
    """A child process started by a test that is not marked ``binary``.

    A BaseException, so that code under test which catches ``Exception`` around a spawn (to
    report a missing binary, say) cannot swallow it.
    """


@contextmanager
def _no_child_processes(nodeid: str) -> Iterator[list[str]]:
    """Refuse, and remember, every child process started while the block runs (any thread)."""
    started: list[str] = []
    real = (subprocess.Popen._execute_child, os.posix_spawn, os.system)  # type: ignore[attr-defined]

    def refuse(program: object) -> None:
        started.append(os.path.basename(str(program)))
        raise UnmarkedBinary(_message(nodeid, started))

    def execute_child(self: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> None:
        refuse(next(iter(args)))  # Popen made it a list; a shell is /bin/sh

    def posix_spawn(path: Any, *rest: Any, **kw: Any) -> int:
        refuse(path)
        return -1

    def system(command: Any) -> int:
        refuse(str(command).split()[0] if str(command).split() else command)
        return -1

    subprocess.Popen._execute_child = execute_child  # type: ignore[attr-defined]
    os.posix_spawn, os.system = posix_spawn, system
    try:
        yield started
    finally:
        subprocess.Popen._execute_child = real[0]  # type: ignore[attr-defined]
        os.posix_spawn, os.system = real[1], real[2]


def _message(nodeid: str, started: list[str]) -> str:
    return (
        f"{nodeid} starts the program {started[0]!r} but is not marked binary: add "
        "@pytest.mark.binary (make test-fast leaves such tests out)"
    )


def _phase(item: pytest.Item) -> Generator[None, object, object]:
    """One test phase (setup, call or teardown) under the guard unless the test is marked."""
    if item.get_closest_marker("binary") or item.get_closest_marker("e2e"):
        return (yield)
    with _no_child_processes(item.nodeid) as started:
        result = yield
    if started:  # refused in another thread, where the exception may have been swallowed
        raise UnmarkedBinary(_message(item.nodeid, started))
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _phase(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _phase(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _phase(item))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest-xdist --dist loadgroup``, the slow tests of one module run one after
    another on one worker, so their module-scoped fixtures (a backfilled Prometheus, the torch
    stack) are set up once; the modules spread over the workers."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(f"slow:{item.path.name}"))


_slow_unmarked: list[tuple[float, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    marked = any(m in report.keywords for m in TIER_MARKERS)
    if report.when == "call" and report.duration > SLOW_HINT_S and not marked:
        _slow_unmarked.append((report.duration, report.nodeid))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _slow_unmarked:
        terminalreporter.section("unmarked tests slower than 2 s (mark them slow?)")
        for duration, nodeid in sorted(_slow_unmarked, reverse=True):
            terminalreporter.write_line(f"{duration:6.2f}s {nodeid}")
