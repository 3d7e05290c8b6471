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


HELD = """
from pathlib import Path

import pytest
from support.realkube import hold

LOG = Path(__file__).parent / "log"


def say(line):
    with LOG.open("a") as out:
        out.write(line + "\\n")


def body():
    say("start")
    try:
        yield "cluster"
    finally:
        say("stop")


@pytest.fixture(scope="module")
def held_one():
    return hold("held_one", body)


@pytest.fixture(scope="module")
def through(held_one):
    return held_one


{tests}
"""


def test_a_held_cluster_lives_while_tests_use_it_and_stops_before_one_that_does_not(
    pytester: pytest.Pytester,
) -> None:
    """``support.realkube``'s held clusters (``kserve_loopback``, ``llmisvc_loopback``): the
    first test that needs one starts it, the next ones, through another fixture or in another
    module, get the same, and so does a module's test after one of its own that needs none
    (its module-scoped fixtures keep what they were given); after a module, the next module's
    test that needs none stops it first, the next that needs it starts it again, and the
    session's end stops the last."""
    uses = "def test_{n}(held_one):\n    say('{n} on ' + held_one)\n"
    through = "def test_{n}(through):\n    say('{n} through ' + through)\n"
    free = "def test_{n}():\n    say('{n} free')\n"
    pytester.makepyfile(
        test_a=HELD.format(tests=uses.format(n="a1") + through.format(n="a2")),
        test_b=HELD.format(tests=uses.format(n="b1") + free.format(n="b2") + uses.format(n="b3")),
        test_c=HELD.format(tests=free.format(n="c1")),
        test_d=HELD.format(tests=through.format(n="d1")),
    )
    result = pytester.runpytest_inprocess("-p", "support.realkube", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)
    assert (pytester.path / "log").read_text().splitlines() == [
        "start",
        "a1 on cluster",
        "a2 through cluster",
        "b1 on cluster",
        "b2 free",
        "b3 on cluster",
        "stop",  # after module b: module c needs it not
        "c1 free",
        "start",
        "d1 through cluster",
        "stop",  # the session's end
    ]
