"""Prose where readers look for it: short docstrings in the package, no project history in it.

Two rules, each listing every offender with ``file:line``:

- no docstring in ``controlplane/`` (module, class or function) is longer than
  :data:`MAX_DOCSTRING_LINES` lines, counted from its opening quotes to its closing ones: a module
  says what it owns, why, and who calls it; the manual a user needs is a page of ``docs/``;
- no Python file of ``controlplane/`` and no page of ``docs/`` cites this project's own issues or
  commits (``issue 41``, ``issue #35``, ``#40``, ``commit `8391fe5```): state the fact, which
  holds without the number. CHANGELOG.md keeps the history. Upstream citations stay
  (``kserve#3085``, ``pytest-xdist issue 1386``, ``Flagger #1914``): :data:`UPSTREAM` lists the
  ones that would otherwise read as ours.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "controlplane"
DOCS = ROOT / "docs"

MAX_DOCSTRING_LINES = 25

CITATIONS = {
    # "issue 41", "Issue #35", "issues #23 and #39" (two digits or more: this project's issues
    # start at 20; "login issue 2" is a prompt's text)
    "an issue": re.compile(r"\b[Ii]ssues?\s+(?:#\d+|\d{2,})\b"),
    # "#40", "(#33)": a bare number after a hash, not "kserve#3085" or "NVIDIA/k8s#888"
    "a #number": re.compile(r"(?<![\w/&#])#\d{2,}\b"),
    # "commit 63dae0d", "commits `c3ce0f5`"
    "a commit": re.compile(r"\bcommits?\s+`?[0-9a-f]{7,40}\b`?"),
    # "at `fcd945c`", "fixed by `691c44a`": an abbreviated hash in backticks, letters and digits
    "a hash": re.compile(r"(?<!`)`(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}`(?!`)"),
}

# Upstream citations that the patterns above would read as this project's, as they are written
# (whitespace, line breaks included, counts as one space).
UPSTREAM = (
    "pytest-xdist issue 1386",
    "Flagger #1914",
    "Argo Rollouts #4707",
    "Flagger #682",
    "Argo Rollouts #3578",
    "vLLM PR #5975",
    "istio/istio commits `0a617ca`",
    "and `02262c5`",
)


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.as_posix()


def _package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def long_docstrings(path: Path, limit: int = MAX_DOCSTRING_LINES) -> list[str]:
    """``file:line (name, N lines)`` for every docstring of ``path`` longer than ``limit``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if ast.get_docstring(node, clean=False) is None:
            continue
        first = node.body[0]
        assert first.end_lineno is not None
        lines = first.end_lineno - first.lineno + 1
        if lines > limit:
            name = getattr(node, "name", "module")
            found.append(f"{_relative(path)}:{first.lineno} ({name}, {lines} lines)")
    return found


def _upstream(text: str, start: int, end: int) -> bool:
    """Whether the match ``text[start:end]`` ends one of the :data:`UPSTREAM` citations."""
    before = " ".join(text[max(0, start - 60) : end].split())
    return any(before.endswith(" ".join(cited.split())) for cited in UPSTREAM)


def citations(path: Path) -> list[str]:
    """``file:line: kind: 'text'`` for every citation of this project's issues or commits."""
    relative = _relative(path)
    text = path.read_text(encoding="utf-8")
    found = []
    for kind, pattern in CITATIONS.items():
        for match in pattern.finditer(text):
            number = text.count("\n", 0, match.start()) + 1
            if _upstream(text, match.start(), match.end()):
                continue
            found.append(f"{relative}:{number}: {kind}: {match.group(0)!r}")
    return sorted(found)


def test_no_docstring_in_the_package_is_longer_than_the_limit() -> None:
    offenders = [line for path in _package_files() for line in long_docstrings(path)]
    assert not offenders, (
        f"docstrings over {MAX_DOCSTRING_LINES} lines (say what the module owns, why and who "
        "calls it; move the manual to docs/):\n" + "\n".join(offenders)
    )


def test_no_file_cites_this_projects_issues_or_commits() -> None:
    paths = [*_package_files(), *sorted(DOCS.rglob("*.md"))]
    offenders = [line for path in paths for line in citations(path)]
    assert not offenders, (
        "citations of this project's issues or commits (keep the fact, drop the number; "
        "CHANGELOG.md keeps the history):\n" + "\n".join(offenders)
    )


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """Each pattern finds its case, an upstream citation is let through, and a long docstring
    is counted from quote to quote: the two tests above cannot pass by seeing nothing."""
    cases = {
        "an issue": "Added for the dashboard (issue 38).",
        "a #number": "Kept since #40.",
        "a commit": "Measured at commit 8391fe5.",
        "a hash": "Measured at `fcd945c` on a fresh machine.",
    }
    upstream = "Open upstream (pytest-xdist issue\n1386; Flagger #1914), and kserve#3085."
    probe = tmp_path / "probe.md"
    for kind, line in cases.items():
        probe.write_text(f"# Probe\n\n{line}\n{upstream}\n", encoding="utf-8")
        found = citations(probe)
        assert len(found) == 1, (kind, found)
        assert f":3: {kind}: " in found[0], found
    module = tmp_path / "long.py"
    module.write_text('"""One.\n' + "more\n" * 23 + '"""\n', encoding="utf-8")
    assert long_docstrings(module, limit=25) == []
    module.write_text('"""One.\n' + "more\n" * 24 + '"""\n', encoding="utf-8")
    assert len(long_docstrings(module, limit=25)) == 1
