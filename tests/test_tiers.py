"""The tier markers are enforced: ``support.tiers`` fails an unmarked test that starts a program.

Each case runs an inner pytest session (pytester, in this process) with the plugin loaded. These
outer tests start programs through their inner tests, so they carry the ``binary`` marker
themselves.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.binary

INI = """
[pytest]
markers =
    binary: starts a program
    slow: slow
    e2e: a cluster
"""

INNER = """
import asyncio
import os
import subprocess

import pytest


@pytest.fixture(scope="session")
def server():
    subprocess.run(["true"], check=True)  # a session fixture's program counts too
    return "up"


def test_unmarked_run():
    subprocess.run(["true"], check=True)


def test_unmarked_asyncio():
    async def main():
        proc = await asyncio.create_subprocess_exec("true")
        await proc.wait()

    asyncio.run(main())


def test_unmarked_system():
    os.system("true")


def test_unmarked_fixture(server):
    assert server == "up"


def test_unmarked_swallowed():
    try:
        subprocess.run(["true"], check=True)
    except Exception:
        pass  # code under test that hides the failure does not hide it from the plugin


@pytest.mark.binary
def test_marked():
    subprocess.run(["true"], check=True)


def test_pure():
    assert 1 + 1 == 2
"""


def test_unmarked_tests_that_start_programs_fail_and_marked_ones_pass(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_inprocess("-p", "support.tiers", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 2  # test_marked, test_pure
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 5
    text = result.stdout.str()
    for name in ("run", "asyncio", "system", "fixture", "swallowed"):
        assert f"test_unmarked_{name}" in text
    assert "starts the program 'true' but is not marked binary" in text


def test_slow_tests_of_a_module_share_an_xdist_group(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_grouped="""
import pytest

@pytest.mark.slow
def test_a(request):
    assert request.node.get_closest_marker("xdist_group").args == ("slow:test_grouped.py",)

def test_b(request):
    assert request.node.get_closest_marker("xdist_group") is None
"""
    )
    result = pytester.runpytest_inprocess("-p", "support.tiers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
