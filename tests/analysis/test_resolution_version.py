"""Spec validation reads the canary's vLLM version for the metric contract (resolution.problems
with ``serving.versions.vllm_version``): a version whose metrics were not read is a clear problem
at each built-in metric, not a traceback when its queries are built."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.errors import SpecError
from controlplane.promql import queries
from controlplane.spec.load import load_text
from controlplane.validation import check_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "canary" / "four-week.yml").read_text()


def _with_vllm(version: str) -> str:
    pinned = f"    runtime: vllm\n    vllmVersion: {version!r}\n"
    text = EXAMPLE.replace("    runtime: vllm\n", pinned)
    assert pinned in text
    return text


def _builtin_problems(text: str) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in check_text(text, "x.yml") if p.path.endswith(".builtin")]


def test_validation_reads_the_canarys_vllm_version() -> None:
    assert _builtin_problems(_with_vllm("0.33.0")) == []
    assert _builtin_problems(_with_vllm("0.27.1")) == []  # read from its wheel
    found = _builtin_problems(_with_vllm("0.30.0"))
    (canary,) = load_text(_with_vllm("0.30.0"), "x.yml")
    builtins = [i for i, m in enumerate(canary.spec.analysis.metrics) if m.builtin is not None]
    assert builtins
    assert [path for path, _ in found] == [f"spec.analysis.metrics[{i}].builtin" for i in builtins]
    known = "0.24, 0.27, 0.32, 0.33"
    assert f"no metric contract for vLLM 0.30.0: known versions are {known}" in found[0][1]


def test_the_queries_of_such_a_canary_are_a_spec_error() -> None:
    (canary,) = load_text(_with_vllm("0.30.0"), "x.yml")
    check = queries.all_checks(canary)[0][1]
    with pytest.raises(SpecError, match=r"spec\.model\.vllmVersion"):
        queries.check_queries(canary, check)
