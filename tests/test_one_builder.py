"""One ModelCanary builder for the tests (issue 34): no test file makes a canary of its own.

Every spec a test needs comes from :mod:`support.canaries` (``canary_dict`` / ``model_canary``,
or a preset of a support module built on them). This scans each test file outside
``tests/support/`` (its AST) and fails on:

- a ModelCanary written out as a dict: a ``"kind"`` of ``"ModelCanary"`` (or of ``KIND`` from
  :mod:`controlplane.spec.models`) beside a ``"spec"`` key, or beside both ``"apiVersion"`` and
  ``"metadata"`` (a whole object; a reference such as an ``involvedObject`` has no metadata);
- a ModelCanary written out as YAML text: a string with a ``kind: ModelCanary`` line and a
  ``spec:`` line;
- a private canary factory: a function other than a test that returns (or yields) a canary it
  made, by ``ModelCanary(...)``, ``ModelCanary.model_validate(...)``, a call of the builder or of a
  preset, or a dict as above, directly or through a local name (``def _canary(...)``,
  ``def spec_with(...)``...). Helpers that make one section (``traffic(router)``,
  ``one_step(checks)``) or take a canary are fine.

:data:`ALLOWED` lists the files that keep such a text or dict, each with its reason; an entry the
scan no longer needs fails too, so the list only shrinks.

The support modules are held to the first rule too: outside the builder (``support/canaries.py``,
whose ``EXAMPLE`` is the one literal), no module of ``tests/support/`` writes a ModelCanary out as
a dict, at module level or inside a preset. Their presets are factories by design, and the YAML
texts of ``support.gitops_world`` are what the write-back tests edit, so only dicts are checked.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SUPPORT = TESTS / "support"
BUILDER = SUPPORT / "canaries.py"

ALLOWED: dict[str, str] = {
    # the tests replace parts of MINIMAL's text and assert the YAML line of each problem
    "spec/test_spec_load.py": "MINIMAL: text edits and YAML line numbers",
    # the sequential-validation tests append to SEQ_HEAD and assert problems from its line 12 on
    "spec/test_spec_validate.py": "SEQ_HEAD: YAML line numbers",
    # an opaque custom resource for the fake API server: its spec ({model, weight}) is no
    # ModelCanary spec, and the tests compare it whole after patches and applies
    "harness/test_fake_kube.py": "an opaque object of kind ModelCanary",
    # an opaque body for the client's offline HTTP tests: spec {weight: 5}, compared whole
    "kube/test_kube_real_offline.py": "an opaque object of kind ModelCanary",
    # this file: the examples the scan must find
    "test_one_builder.py": "the scan's own examples",
}

BUILDERS = frozenset(
    {"canary_dict", "model_canary", "world_canary", "fleet_canary", "canary_obj", "ModelCanary"}
)
"""Callables that make a canary: the builder, the support presets on it, the model itself."""
PRESET_MODULES = frozenset({"support.api", "support.canaries", "support.controller_world"})
"""Support modules whose ``canary`` (under whatever alias) is a preset of the builder."""
COPIES = frozenset({"copy.deepcopy", "deepcopy", "copy.copy", "dict"})
"""Calls that return a copy of their argument: a copy of a canary made here is one too."""
YAML_KIND = re.compile(r"^\s*kind:\s*ModelCanary\s*$", re.MULTILINE)
YAML_SPEC = re.compile(r"^\s*spec:", re.MULTILINE)


def scanned_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if SUPPORT not in p.parents)


def support_files() -> list[Path]:
    """The support modules other than the builder."""
    return sorted(p for p in SUPPORT.rglob("*.py") if p != BUILDER)


def builder_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The local names of canary-making callables, and the names bound to ``KIND`` of the
    spec models."""
    makers, kinds = set(BUILDERS), set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        for alias in node.names:
            local = alias.asname or alias.name
            if node.module in PRESET_MODULES and alias.name == "canary":
                makers.add(local)
            if node.module == "controlplane.spec.models" and alias.name == "KIND":
                kinds.add(local)
    return makers, kinds


def is_canary_dict(node: ast.AST, kinds: set[str]) -> bool:
    """A dict literal with ``"kind": "ModelCanary"`` (or ``KIND``) and a ``"spec"`` key, or both
    ``"apiVersion"`` and ``"metadata"``."""
    if not isinstance(node, ast.Dict):
        return False
    keys = {
        k.value: v
        for k, v in zip(node.keys, node.values, strict=True)
        if isinstance(k, ast.Constant) and isinstance(k.value, str)
    }
    kind = keys.get("kind")
    named = isinstance(kind, ast.Constant) and kind.value == "ModelCanary"
    named = named or (isinstance(kind, ast.Name) and kind.id in kinds)
    return named and ("spec" in keys or {"apiVersion", "metadata"} <= keys.keys())


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def is_making_call(node: ast.AST, makers: set[str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name):
        return func.id in makers
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "ModelCanary"
        and func.attr in ("model_validate", "model_validate_json", "model_construct")
    )


def factories(
    tree: ast.Module, makers: set[str], kinds: set[str]
) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Functions other than tests that return or yield a canary they made (a function that
    calls one of them to return its canary is one too)."""
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    while True:
        more = {f.name: f for f in _factories(tree, makers | set(found), kinds)}
        if more.keys() == found.keys():
            return sorted(found.values(), key=lambda f: f.lineno)
        found = more


def _factories(
    tree: ast.Module, makers: set[str], kinds: set[str]
) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if func.name.startswith("test_"):
            continue
        made: set[str] = set()  # local names bound to a canary made here
        for node in ast.walk(func):
            if (
                isinstance(node, ast.Assign | ast.AnnAssign)
                and node.value is not None
                and (is_making_call(node.value, makers) or is_canary_dict(node.value, kinds))
            ):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                made |= {t.id for t in targets if isinstance(t, ast.Name)}
        if any(
            isinstance(node, ast.Return | ast.Yield) and a_canary(node.value, makers, kinds, made)
            for node in ast.walk(func)
        ):
            yield func


def a_canary(value: ast.AST | None, makers: set[str], kinds: set[str], made: set[str]) -> bool:
    """Whether a returned or yielded value is (or holds, in a tuple) a canary made here."""
    if value is None:
        return False
    if isinstance(value, ast.Tuple):
        return any(a_canary(v, makers, kinds, made) for v in value.elts)
    if isinstance(value, ast.Call) and _name(value.func) in COPIES and value.args:
        return a_canary(value.args[0], makers, kinds, made)
    return (
        is_making_call(value, makers)
        or is_canary_dict(value, kinds)
        or (isinstance(value, ast.Name) and value.id in made)
    )


def canary_dicts(tree: ast.Module, kinds: set[str]) -> list[tuple[int, str]]:
    """The ModelCanary dict literals of a module, module level or not."""
    return [
        (node.lineno, "a ModelCanary dict")
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict) and is_canary_dict(node, kinds)
    ]


def findings(source: str) -> list[str]:
    """What the scan finds in one file's source, as ``line: what``, in line order."""
    tree = ast.parse(source)
    makers, kinds = builder_names(tree)
    found = [(f.lineno, f"factory {f.name}()") for f in factories(tree, makers, kinds)]
    found += canary_dicts(tree, kinds)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and YAML_KIND.search(node.value)
            and YAML_SPEC.search(node.value)
        ):
            found.append((node.lineno, "a ModelCanary YAML text"))
    return [f"{line}: {what}" for line, what in sorted(found)]


@pytest.mark.parametrize("path", scanned_files(), ids=lambda p: str(p.relative_to(TESTS)))
def test_no_test_makes_a_canary_of_its_own(path: Path) -> None:
    name = str(path.relative_to(TESTS))
    found = findings(path.read_text(encoding="utf-8"))
    if name in ALLOWED:
        assert found, f"{name} needs no place in ALLOWED any more: remove it"
    else:
        assert found == [], (
            f"{name} makes ModelCanaries of its own; use support.canaries "
            f"(canary_dict / model_canary): {found}"
        )


@pytest.mark.parametrize("path", support_files(), ids=lambda p: str(p.relative_to(TESTS)))
def test_no_support_module_but_the_builder_writes_a_canary_out(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [f"{line}: {what}" for line, what in canary_dicts(tree, builder_names(tree)[1])]
    assert found == [], (
        f"{path.relative_to(TESTS)} writes ModelCanaries out by hand; build them with "
        f"support.canaries (canary_dict / model_canary): {found}"
    )


def test_the_builder_holds_the_one_literal() -> None:
    tree = ast.parse(BUILDER.read_text(encoding="utf-8"))
    assert len(canary_dicts(tree, builder_names(tree)[1])) == 1


def test_the_allow_list_names_scanned_files() -> None:
    names = {str(p.relative_to(TESTS)) for p in scanned_files()}
    assert set(ALLOWED) <= names


FACTORY = """
from controlplane.spec.models import KIND, ModelCanary
from support.api import canary as api_canary
from support.canaries import canary_dict


def _canary(name):
    data = canary_dict(name)
    data["metadata"]["uid"] = "u"
    return data


def spec_with(**spec):
    return ModelCanary.model_validate({"spec": spec})


def seeded(router):
    return object(), api_canary(router)


def by_hand():
    return {"apiVersion": "v", "kind": KIND, "metadata": {}, "spec": {}}


def traffic(router):
    return {"router": router}


def copied(name):
    body = api_canary(name)
    return copy.deepcopy(body)


def wrapping(name):
    obj = _canary(name)
    return obj


def test_may_build_one():
    assert model_canary(router="kserve")


TEXT = '''
kind: ModelCanary
spec:
  steps: []
'''
LITERAL = {"kind": "ModelCanary", "metadata": {"name": "x"}, "spec": {}}
BASE: dict = {"apiVersion": "v", "kind": "ModelCanary", "metadata": {"name": "x"}}
OWNER = {"apiVersion": "v", "kind": "ModelCanary", "name": "x", "uid": "u"}
"""


def test_the_scan_finds_each_way_of_making_a_canary() -> None:
    assert findings(FACTORY) == [
        "7: factory _canary()",
        "13: factory spec_with()",
        "17: factory seeded()",
        "21: factory by_hand()",
        "22: a ModelCanary dict",
        "29: factory copied()",
        "34: factory wrapping()",
        "43: a ModelCanary YAML text",
        "48: a ModelCanary dict",
        "49: a ModelCanary dict",
    ]
