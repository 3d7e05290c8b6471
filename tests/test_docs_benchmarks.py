"""docs/benchmarks.md quotes the derivation page, which the bench scripts write.

The scripts in ``bench/`` rewrite one ``## Section`` each of ``bench.common.BENCHMARKS_MD``,
the derivation page (``docs/benchmarks-derivation.md``: method, every table, caveats). The
results page a user reads (``docs/benchmarks.md``) has a section of the same name per benchmark
with its headline table and quoted lines (date, command, target), copied word for word. So:
every heading a script writes exists where it writes, every benchmark there has its results
section, and a re-run that changes a quoted figure fails here until the results page is
refreshed from the derivation page.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "benchmarks.md"
DERIVATION = ROOT / "docs" / "benchmarks-derivation.md"
_OWNED = re.compile(r'^(?:SECTION|HEADER) = "(## [^"]+)"$', re.M)


def _target() -> Path:
    """``bench.common.BENCHMARKS_MD``: the file every script's section is written into."""
    spec = importlib.util.spec_from_file_location("_bench_common", ROOT / "bench" / "common.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.BENCHMARKS_MD)


def _sections(path: Path) -> dict[str, list[str]]:
    """``## `` heading -> the lines up to the next one (what ``replace_section`` replaces)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = found.setdefault(line, [])
        elif current is not None:
            current.append(line)
    return found


def _owned() -> dict[str, str]:
    """Script name -> the ``## `` heading it owns."""
    return {
        p.name: m.group(1)
        for p in sorted((ROOT / "bench").glob("*.py"))
        if (m := _OWNED.search(p.read_text(encoding="utf-8")))
    }


def test_every_script_writes_a_heading_of_the_derivation_page() -> None:
    target = _target()
    assert target == DERIVATION
    owned = _owned()
    assert len(owned) >= 7, owned  # blast radius, verdict, scale, kube scale, replay, ...
    headings = _sections(target)
    assert not [h for h in owned.values() if h not in headings], owned
    # each script writes through BENCHMARKS_MD (or --output defaulting to it), never a path
    # of its own: a docs path named anywhere else would miss the split
    for script in (ROOT / "bench").glob("*.py"):
        if script.name != "common.py":
            assert '"docs" /' not in script.read_text(encoding="utf-8"), script.name


def test_every_benchmark_has_a_results_section() -> None:
    assert set(_sections(DERIVATION)) == set(_sections(RESULTS))


@pytest.mark.parametrize("heading", sorted(_sections(RESULTS)))
def test_results_quote_the_derivation_word_for_word(heading: str) -> None:
    derived = set(_sections(DERIVATION)[heading])
    shown = _sections(RESULTS)[heading]
    quoted = [line.removeprefix("> ") for line in shown if line.startswith("> ")]
    rows = [line for line in shown if line.startswith("|")]
    assert rows, f"{heading}: no headline table"
    assert any("`python bench/" in line for line in quoted), f"{heading}: no command quoted"
    stale = [line for line in rows + quoted if line not in derived]
    assert not stale, f"{heading}: not on the derivation page (re-copy it):\n" + "\n".join(stale)
