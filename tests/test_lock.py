"""The lock file: ``uv.lock`` still answers ``pyproject.toml``, and the pinned uv is the one used.

``make setup`` and ``.ci/run`` install the development and CI environment from ``uv.lock`` with
``uv sync --locked``, which refuses a lock made for other requirements. These tests say so sooner
and offline, naming the requirement: every requirement of ``pyproject.toml`` (dependencies and
each extra) is recorded in the lock exactly as written, nothing else is, and every version the
lock pins satisfies the range that asked for it. ``make lock`` refreshes the lock.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
Key = tuple[str, frozenset[str], frozenset[str], str]


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _lock() -> dict[str, Any]:
    return tomllib.loads((REPO / "uv.lock").read_text())


def _marker(text: str) -> str:
    return str(Marker(text)) if text else ""


def _key(name: str, specifier: str, extras: list[str], marker: str) -> Key:
    specs = frozenset(str(s) for s in SpecifierSet(specifier))
    return canonicalize_name(name), specs, frozenset(extras), _marker(marker)


def declared(project: dict[str, Any]) -> set[Key]:
    """pyproject's requirements, each extra's marked ``extra == '...'`` as uv records them."""
    keys = set()
    groups = [("", project["dependencies"])]
    groups += sorted(project.get("optional-dependencies", {}).items())
    for extra, requirements in groups:
        for text in requirements:
            req = Requirement(text)
            marker = str(req.marker) if req.marker else ""
            if extra:
                base = f"({marker})" if " or " in marker else marker
                marker = f"{base} and extra == '{extra}'" if base else f"extra == '{extra}'"
            keys.add(_key(req.name, str(req.specifier), sorted(req.extras), marker))
    return keys


def recorded(lock: dict[str, Any]) -> set[Key]:
    """What the lock was resolved for: its editable root's ``requires-dist``."""
    (root,) = [p for p in lock["package"] if p.get("source") == {"editable": "."}]
    return {
        _key(r["name"], r.get("specifier", ""), r.get("extras", []), r.get("marker", ""))
        for r in root["metadata"]["requires-dist"]
    }


def test_the_lock_was_resolved_for_the_requirements_of_pyproject() -> None:
    want, have = declared(_pyproject()["project"]), recorded(_lock())
    assert sorted(want - have) == [], "in pyproject.toml, not in uv.lock: run `make lock`"
    assert sorted(have - want) == [], "in uv.lock, no longer in pyproject.toml: run `make lock`"


def test_every_pinned_version_satisfies_the_range_that_asked_for_it() -> None:
    lock = _lock()
    versions: dict[str, list[Version]] = {}
    for package in lock["package"]:
        if "version" in package:
            versions.setdefault(package["name"], []).append(Version(package["version"]))
    problems = []
    for name, specs, _extras, _marker in declared(_pyproject()["project"]):
        pinned = versions.get(name)
        if not pinned:
            problems.append(f"{name}: not pinned")
            continue
        wanted = SpecifierSet(",".join(sorted(specs)))
        problems += [f"{name}=={v} outside {wanted}" for v in pinned if v not in wanted]
    assert problems == []


def test_the_checks_see_a_stale_lock() -> None:
    """The comparison is not vacuous: a range changed in pyproject is told apart."""
    project = _pyproject()["project"]
    changed = dict(project, dependencies=[*project["dependencies"][1:], "pydantic>=2.99"])
    assert declared(changed) != recorded(_lock())


def test_one_uv_pinned_with_hashes_and_admitted_by_pyproject() -> None:
    text = (REPO / "scripts" / "uv-requirements.txt").read_text()
    pins = re.findall(r"^uv==(\S+)", text, flags=re.MULTILINE)
    assert len(pins) == 1
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", text)) >= 2  # a wheel per platform
    required = SpecifierSet(_pyproject()["tool"]["uv"]["required-version"])
    assert Version(pins[0]) in required


@pytest.mark.parametrize("path", [".ci/run", "Makefile"])
def test_ci_and_make_install_from_the_lock(path: str) -> None:
    text = (REPO / path).read_text()
    if path == "Makefile":
        assert re.search(r"\$\(UV\) sync .*--locked", text)
    else:
        assert "make test" in text
        assert "pip install" not in text  # nothing resolved outside the lock
