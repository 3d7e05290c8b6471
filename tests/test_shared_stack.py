"""The shared real-node stack (tests/support/shared_stack.py): modules of one kind get one
stack, a test of another kind (or of none) stops it first, so two nodes never run at once, and
the session's end stops the last, and stopping it is no later test's doing. Fake stacks that log
their start and stop stand in for the node here; the real-node group runs on the real one."""

from __future__ import annotations

import pytest

MODULE = """
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.shared_stack import held, stack_for

LOG = Path(__file__).parent / "log"
KIND = {kind!r}
pytestmark = [pytest.mark.shared_stack(KIND)] if KIND else []
if {runs!r}:  # as the real-node tests are
    pytestmark.append(pytest.mark.binary)


def say(line):
    with LOG.open("a") as out:
        out.write(line + "\\n")


@contextmanager
def start(folder):
    say(f"start {{KIND}}")
    yield KIND
    if {runs!r}:  # as the real node's stop does (ip, mount)
        subprocess.run({runs!r}, check=True)
    say(f"stop {{KIND}}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if KIND:
        return stack_for(KIND, lambda: tmp_path_factory.mktemp(KIND), start)
    return None


def test_one(stack):
    say(f"{{__name__}} on {{stack}}, held {{held()}}")
"""


def test_modules_of_one_kind_share_it_and_another_stops_it_first(
    pytester: pytest.Pytester,
) -> None:
    for name, kind in (("test_a1", "a"), ("test_a2", "a"), ("test_b", "b"), ("test_c", "")):
        pytester.makepyfile(**{name: MODULE.format(kind=kind, runs=[])})
    result = pytester.runpytest_inprocess("-p", "support.shared_stack", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert (pytester.path / "log").read_text().splitlines() == [
        "start a",
        "test_a1 on a, held a",
        "test_a2 on a, held a",
        "stop a",  # before test_b sets up: one node at a time
        "start b",
        "test_b on b, held b",
        "stop b",
        "test_c on None, held None",
    ]


def test_the_session_end_stops_the_last(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=MODULE.format(kind="a", runs=[]))
    result = pytester.runpytest_inprocess("-p", "support.shared_stack", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "log").read_text().splitlines() == [
        "start a",
        "test_a on a, held a",
        "stop a",
    ]


@pytest.mark.binary  # the fake stack's stop runs ``true``
def test_an_unmarked_test_after_the_stack_is_not_charged_with_its_stop(
    pytester: pytest.Pytester,
) -> None:
    """The stack's stop runs a program; the next test, which may start none
    (:mod:`support.tiers`), still passes: the stop is not its setup's."""
    pytester.makeini("[pytest]\nmarkers =\n    binary: starts programs\n")
    pytester.makepyfile(
        test_a=MODULE.format(kind="a", runs=["true"]), test_b=MODULE.format(kind="", runs=[])
    )
    result = pytester.runpytest_inprocess(
        "-p", "support.tiers", "-p", "support.shared_stack", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    assert (pytester.path / "log").read_text().splitlines() == [
        "start a",
        "test_a on a, held a",
        "stop a",
        "test_b on None, held None",
    ]
