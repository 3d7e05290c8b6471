"""The tier markers are enforced: ``support.tiers`` fails an unmarked test that starts a program.

Each case runs an inner pytest session (pytester, in this process) with the plugin loaded. These
outer tests start programs through their inner tests, so they carry the ``binary`` marker
themselves.
"""

from __future__ import annotations

from pathlib import Path

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


def test_a_group_runs_on_one_worker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--dist loadgroup`` really groups: pytest 9.2 broke it silently (its structured node ids
    ignore the suffix pytest-xdist 3.8.0 writes; pytest-xdist issue 1386), which let two pytest
    workers each start a real node, one per machine (pyproject.toml pins pytest below 9.2)."""
    pytester.makeini(INI)
    pytester.makepyfile(
        test_one="""
import os
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("together")]

@pytest.mark.parametrize("i", range(6))
def test_where(i, tmp_path_factory):
    (tmp_path_factory.getbasetemp().parent / f"ran-{i}").write_text(
        os.environ["PYTEST_XDIST_WORKER"]
    )
"""
    )
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # support.tiers
    result = pytester.runpytest_subprocess(
        "-p", "support.tiers", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup"
    )
    result.assert_outcomes(passed=6)
    workers = {p.read_text() for p in pytester.path.rglob("ran-*")}
    assert len(workers) == 1, workers
