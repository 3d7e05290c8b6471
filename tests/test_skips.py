"""A skip is a decision: under ``CI=true`` ``support.skips`` fails a skip that its allow-list does
not name, at run time and at collection, and leaves an allowed one, an ``xfail`` and every skip
outside CI alone. Each case runs an inner pytest session (pytester, in this process)."""

from __future__ import annotations

import pytest
from support.extras import MISSING_EXTRA, local_cpu, missing, skip_reason

INNER = f"""
import pytest

def test_hidden():
    pytest.skip("no zsh on PATH")

@pytest.mark.skipif(True, reason="a shallow clone")
def test_marked():
    pass

def test_extra():
    pytest.skip("{MISSING_EXTRA} (no torch)")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected():
    assert False

def test_runs():
    pass
"""

MODULE_SKIP = """
import pytest
pytest.skip("no git history here", allow_module_level=True)

def test_never():
    pass
"""


def run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None, extras: str | None
) -> pytest.RunResult:
    for name, value in (("CI", ci), ("CONTROLPLANE_EXTRAS", extras)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    pytester.makepyfile(test_inner=INNER)
    return pytester.runpytest_inprocess("-p", "support.skips", "-p", "no:cacheprovider", "-rA")


def counts(result: pytest.RunResult) -> dict[str, int]:
    """Outcomes, a refused skip counted as ``refused`` whether pytest calls it a failure (in the
    test) or an error (a ``skipif`` mark, decided at setup)."""
    seen = result.parseoutcomes()
    refused = seen.pop("failed", 0) + seen.pop("errors", 0) + seen.pop("error", 0)
    return {**seen, "refused": refused} if refused else seen


def test_outside_ci_a_skip_stands(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(pytester, monkeypatch, None, "local-cpu").assert_outcomes(passed=1, skipped=3, xfailed=1)


def test_under_ci_an_unlisted_skip_fails_with_its_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(pytester, monkeypatch, "true", "local-cpu")
    assert counts(result) == {"passed": 1, "refused": 3, "xfailed": 1}
    text = result.stdout.str()
    assert "skipped under CI=true: no zsh on PATH" in text
    assert "skipped under CI=true: a shallow clone" in text
    assert f"skipped under CI=true: {MISSING_EXTRA} (no torch)" in text  # the run has the extra


@pytest.mark.parametrize("extras", ["", "gpu"])
def test_under_ci_a_missing_extra_may_skip_only_where_the_run_leaves_it_out(
    extras: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(pytester, monkeypatch, "true", extras)
    assert counts(result) == {"passed": 1, "refused": 2, "skipped": 1, "xfailed": 1}


def test_a_run_that_does_not_declare_its_extras_has_them_all(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(pytester, monkeypatch, "true", None)
    assert counts(result) == {"passed": 1, "refused": 3, "xfailed": 1}


def test_under_ci_a_module_level_skip_fails_the_collection(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(test_module=MODULE_SKIP)
    result = pytester.runpytest_inprocess("-p", "support.skips", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.assert_outcomes(errors=1)
    assert "skipped under CI=true: no git history here" in result.stdout.str()


def test_the_extra_is_found_without_importing_it() -> None:
    assert missing(("json", "no_such_module_here")) == ["no_such_module_here"]
    assert skip_reason(("torch",)).startswith(MISSING_EXTRA)
    mark = local_cpu("no_such_module_here").mark
    assert mark.name == "skipif"
    assert mark.args == (True,)
    assert mark.kwargs["reason"] == f"{MISSING_EXTRA} (no no_such_module_here)"
