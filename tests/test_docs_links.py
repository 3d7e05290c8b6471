"""Every relative link of README.md and docs/ reaches a file, and a heading where it names one.

A page moved, split or renamed, or a heading reworded, breaks the links that pointed at it
without a sound: this test lists them. Anchors follow GitHub's rule for headings: lowercase,
every character but letters, digits, ``_``, ``-`` and spaces dropped, spaces become ``-``, and
a repeated heading gets ``-1``, ``-2``, ... Links inside code (fenced or inline) are not links.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_INLINE_CODE = re.compile(r"`+[^`]*`+")
_HTML_ID = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def _prose(path: Path) -> list[tuple[int, str]]:
    """``(line number, line)`` of the page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = heading.strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a link may name on the page."""
    seen: Counter[str] = Counter()
    found: set[str] = set()
    for _number, line in _prose(path):
        found.update(_HTML_ID.findall(line))
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(1))
        found.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """``(line number, target)`` of every relative link on the page."""
    found = []
    for number, line in _prose(path):
        for target in _LINK.findall(_INLINE_CODE.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            found.append((number, target))
    return found


def test_slug_follows_github() -> None:
    assert slug("Cold and warm times") == "cold-and-warm-times"
    assert slug("Whole distribution (`test: shift`)") == "whole-distribution-test-shift"
    assert slug("Choosing `alpha`, `finalLook` and `test`") == "choosing-alpha-finallook-and-test"
    assert slug("`analysis/`") == "analysis"
    assert slug("Flagger, as modelled") == "flagger-as-modelled"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_reaches_its_file_and_heading(page: Path) -> None:
    broken = []
    for number, target in links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"line {number}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"line {number}: {target} (no heading #{anchor})")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)
