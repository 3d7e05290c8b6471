"""The fast copy held to the models: ``canaryctl validate``'s fast path says "valid" exactly when
the models' path does, and then gives the same canaries, warnings and notes.

:func:`controlplane.validation.fast_text` checks a file with the generated light objects
(:mod:`controlplane.spec.fast_models`) instead of the pydantic models (issue 41); for anything
it does not call valid, ``validate`` asks the models (:func:`~controlplane.validation.check_text`),
whose messages are the only ones. Here, over every example in ``canary/``, the spec tests'
``MINIMAL``, the support builder's example (as it is and on each router) and a corpus of
mutations (each field path, the first time an example has it: removed, null, of the wrong type,
out of range, with an unknown key beside it, a bad enum or name, a bare number for a duration
or threshold, a list emptied): fast-valid <=> models-valid; for a valid input the fast objects dump
to what ``model_dump(by_alias=True)`` of the models gives, and the warnings and the notes
``validate`` prints are the same. The corpus size is asserted, so it cannot shrink unnoticed.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.canaries import EXAMPLE

from controlplane.capacity.notes import plan_lines
from controlplane.profiles.catalog import Catalog, load_catalog
from controlplane.profiles.expected import notes
from controlplane.spec.load import parse_text
from controlplane.validation import check_text, fast_text, validated_text, warnings_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "canary").glob("*.yml"))
Path_ = tuple[str | int, ...]


ROUTERS = ("gateway-api", "istio", "kserve", "kserve-knative", "llmisvc")


def _kept_texts() -> list[tuple[str, str]]:
    """The specs the spec tests keep as YAML text (``MINIMAL``: every default, router kserve),
    read from their source (a test module is not imported by another)."""
    path = ROOT / "tests" / "spec" / "test_spec_load.py"
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "MINIMAL":
            return [("test_spec_load.MINIMAL", ast.literal_eval(node.value))]
    raise AssertionError("MINIMAL is gone from test_spec_load.py")


def _bases() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for path in EXAMPLES:
        for doc in parse_text(path.read_bytes(), path.name):
            found.append((f"{path.name}#{doc.index}", doc.data))
    for name, text in _kept_texts():
        found.extend((name, doc.data) for doc in parse_text(text, name))
    found.append(("support.canaries.EXAMPLE", copy.deepcopy(EXAMPLE)))
    for router in ROUTERS:  # each router's own rules (capabilities, adoption, capacity)
        data = copy.deepcopy(EXAMPLE)
        data["spec"]["traffic"] = {"router": router}
        found.append((f"EXAMPLE, router {router}", data))
    return found


def _paths(data: Any, at: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield (*at, key), value
            yield from _paths(value, (*at, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield (*at, index), value
            yield from _paths(value, (*at, index))


def _replaced(data: Any, at: Path_, value: Any) -> Any:
    out = copy.deepcopy(data)
    parent = out
    for part in at[:-1]:
        parent = parent[part]
    if value is _REMOVED:
        del parent[at[-1]]
    else:
        parent[at[-1]] = value
    return out


_REMOVED = object()
_DURATION_OR_THRESHOLD = ("ms", "s", "m", "h", "d", "%")


def _mutations(value: Any) -> Iterator[tuple[str, Any]]:
    yield "removed", _REMOVED
    yield "null", None
    if isinstance(value, dict):
        yield "unknown key", {**value, "bogusKey": 1}
        yield "wrong type", "x"
    elif isinstance(value, list):
        yield "emptied", []
        yield "wrong type", "x"
    elif isinstance(value, bool):
        yield "wrong type", "yes"
    elif isinstance(value, int | float):
        yield "wrong type", "x"
        yield "negative", -1
        yield "too large", 10**13
        yield "zero", 0
        yield "fraction", 0.5
    elif isinstance(value, str):
        yield "wrong type", 12345
        yield "bad enum or name", "No_Such-Value"
        yield "empty", ""
        if value.endswith(_DURATION_OR_THRESHOLD):
            yield "bare number", 0.2
            yield "bare large number", 200
            yield "bad unit", "5parsecs"


@cache
def corpus() -> list[tuple[str, str]]:
    """(name, YAML text) of every input: each example, and each mutation of a field path (list
    indices aside: ``spec.steps[].weight``) the first time an example has that path."""
    seen: dict[str, str] = {}
    done: set[tuple[str, str]] = set()
    for base_name, data in _bases():
        cases: list[tuple[str, Any]] = [(base_name, data)]
        for at, value in _paths(data):
            if isinstance(at[-1], int) and at[-2:-1] != ("steps",):
                continue  # list items: the steps' are mutated whole; others by their fields
            for what, mutated in _mutations(value):
                if isinstance(at[-1], int) and mutated is _REMOVED:
                    continue
                where = ".".join(str(p) for p in at)
                shape = ".".join("[]" if isinstance(p, int) else p for p in at)
                if (shape, what) in done:
                    continue
                done.add((shape, what))
                cases.append((f"{base_name}: {where} {what}", _replaced(data, at, mutated)))
        for name, doc in cases:
            text = yaml.safe_dump(doc, sort_keys=False)
            seen.setdefault(text, name)
    return [(name, text) for text, name in seen.items()]


@cache
def catalog() -> Catalog:
    return load_catalog()


def _outcome(name: str, text: str) -> tuple[bool, bool]:
    fast = fast_text(text, name, catalog())
    full = check_text(text, name, catalog())
    return fast is not None, not full


def test_the_corpus_is_as_large_as_it_was() -> None:
    found = corpus()
    assert len(EXAMPLES) == 7
    assert len(found) == 612
    valid = sum(1 for name, text in found if _outcome(name, text)[1])
    assert valid == 127


@pytest.mark.parametrize("index", range(8))
def test_fast_says_valid_exactly_when_the_models_do(index: int) -> None:
    """The corpus in eight slices (the tiers spread them over the workers)."""
    found = corpus()
    disagree = []
    for name, text in found[index::8]:
        fast, full = _outcome(name, text)
        if fast != full:
            disagree.append(f"{name}: fast {'valid' if fast else 'invalid'}, models {full}")
    assert disagree == []


def test_a_valid_input_gives_the_same_canaries_warnings_and_notes() -> None:
    compared = 0
    for name, text in corpus():
        fast = fast_text(text, name, catalog())
        if fast is None:
            continue
        canaries, warned = fast
        models = validated_text(text, name, catalog())
        assert [c.model_dump(by_alias=True) for c in canaries] == [
            m.model_dump(by_alias=True) for m in models
        ], name
        assert warned == warnings_text(text, name), name
        for light, model in zip(canaries, models, strict=True):
            assert notes(light, catalog()) == notes(model, catalog()), name
            assert plan_lines(light, catalog()) == plan_lines(model, catalog()), name
        compared += 1
    assert compared == 127  # every example and its mutations the fast path takes


def _validate(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from controlplane.cli.main import main

    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("output", ["text", "json"])
def test_validate_prints_the_same_with_and_without_the_fast_path(
    output: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``canaryctl validate`` on several files at once (every example, and a valid and an
    invalid mutation of each field kind), on each alone and on a directory: the same exit code,
    stdout and stderr as the models' path alone (the fast path switched off)."""
    from controlplane.cli import validate as verb

    files = [str(p.relative_to(ROOT)) for p in EXAMPLES]
    valid, invalid = [], []
    for index, (name, text) in enumerate(corpus()[:: len(corpus()) // 40]):
        path = tmp_path / f"case-{index:02d}.yml"
        path.write_text(text, encoding="utf-8")
        (valid if _outcome(name, text)[1] else invalid).append(str(path))
    assert len(valid) >= 3
    assert len(invalid) >= 20
    runs = [files, *([f] for f in files), [*valid, *invalid], [str(tmp_path)], invalid[:1]]
    monkeypatch.chdir(ROOT)
    taken: list[str] = []
    real = verb.fast_file

    def spy(name: str, catalog: Catalog) -> object:
        found = real(name, catalog)
        if found is not None:
            taken.append(name)
        return found

    for argv in runs:
        argv = [*argv, "-o", output]
        with monkeypatch.context() as spied:
            spied.setattr(verb, "fast_file", spy)
            fast = _validate(argv, capsys)
        with monkeypatch.context() as patched:
            patched.setattr(verb, "fast_file", lambda *_a, **_k: None)
            full = _validate(argv, capsys)
        assert fast == full, argv
    assert set(files) | set(valid) <= set(taken)  # the fast path ran for every valid file
