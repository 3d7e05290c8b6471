"""docs/architecture.md holds the package map, and the map holds to the tree.

The table of packages at the top of the page names every package and top-level module of
``controlplane``; the "Module map" names every module of every package (and its subpackages),
and of the test harness beside it (``harness/`` and its subpackages, headed with their
``harness/`` prefix), and nothing that is not there. A module added, moved or removed fails
here until the page says so: the one map people read cannot drift the way the ``__init__``
docstrings' maps did.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "controlplane"
HARNESS = ROOT / "harness"
PAGE = ROOT / "docs" / "architecture.md"
_ROW = re.compile(r"^\| `([^`]+)` \|")


def _rows(lines: list[str]) -> list[str]:
    """The first-column names of the Markdown table rows in ``lines``."""
    return [m.group(1) for line in lines if (m := _ROW.match(line))]


def _sections() -> dict[str, list[str]]:
    """``### `pkg/``` heading of the Module map -> the names its table lists."""
    text = PAGE.read_text(encoding="utf-8")
    assert "## Module map" in text, "docs/architecture.md has no Module map"
    body = text.split("## Module map", 1)[1]
    found: dict[str, list[str]] = {}
    for part in re.split(r"^### ", body, flags=re.M)[1:]:
        heading, *lines = part.splitlines()
        match = re.fullmatch(r"`([a-z_/]+)/`", heading.strip())
        assert match, f"a Module map heading that names no package: {heading!r}"
        found[match.group(1)] = _rows(lines)
    return found


def _packages() -> dict[str, Path]:
    """Module map heading -> folder: controlplane's packages by their path inside it, the
    harness's by their path from the repository root (``harness``, ``harness/kube``)."""
    found = {
        p.parent.relative_to(PACKAGE).as_posix(): p.parent
        for p in PACKAGE.rglob("__init__.py")
        if p.parent != PACKAGE
    }
    found |= {p.parent.relative_to(ROOT).as_posix(): p.parent for p in HARNESS.rglob("__init__.py")}
    return found


def _tree_entries(package: Path) -> list[str]:
    modules = [f"{f.stem}.py" for f in package.glob("*.py") if f.name != "__init__.py"]
    subpackages = [f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()]
    return sorted(modules + subpackages)


def test_every_package_has_exactly_its_modules_in_the_map() -> None:
    sections = _sections()
    packages = _packages()
    assert {"harness", "harness/cluster", "harness/kube"} <= set(packages)
    assert sorted(sections) == sorted(packages), "the Module map's sections are not the packages"
    for name, package in packages.items():
        listed = sections[name]
        assert len(listed) == len(set(listed)), f"{name}/ lists a module twice"
        assert sorted(listed) == _tree_entries(package), f"{name}/: map and tree differ"


def test_the_top_table_names_every_package_and_top_level_module() -> None:
    text = PAGE.read_text(encoding="utf-8").split("## Layers", 1)[0]
    listed = {name.rstrip("/") for name in _rows(text.splitlines())}
    tree = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    tree |= {f.stem for f in PACKAGE.glob("*.py") if f.name != "__init__.py"}
    assert {name.removesuffix(".py") for name in listed} == tree
