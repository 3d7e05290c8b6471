"""Property tests: whatever bytes arrive, loading and validating end in problems, never a traceback.

Inputs are random text and bytes, and the canary/ examples mutated both as data (keys deleted,
values swapped for other types, junk keys inserted) and as text (characters inserted, slices cut).
Every call must raise nothing but SpecError, within the loader's work limits (nodes composed and
walked, depth: ``support.loadwork``; ``bench/hostile_input.py`` measures the seconds).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.loadwork import counted

from controlplane.errors import Problem, SpecError
from controlplane.spec.load import load_text, parse_text
from controlplane.validation import check_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "canary").glob("*.yml"))
TEXTS = [p.read_text() for p in EXAMPLES]
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["5%", "200ms", "7d", "0", "-1", "1e400", "{{x}}", "nvidia-l40s", "100"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


def exercise(source: str | bytes) -> None:
    """Both entry points: problems or SpecError, nothing else, within the work limits each."""
    with counted() as work:
        problems = check_text(source, "fuzz.yml")
    assert all(isinstance(p, Problem) for p in problems)
    assert work.within_limits(), work
    raised: SpecError | None = None
    with counted() as work:
        try:
            load_text(source, "fuzz.yml")
        except SpecError as exc:
            raised = exc
    assert raised is None or raised.problems
    assert work.within_limits(), work


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.extend(paths(value, (*prefix, index)))
    return out


def parent_of(data: Any, path: tuple[Any, ...]) -> Any:
    for seg in path[:-1]:
        data = data[seg]
    return data


@st.composite
def mutated_data(draw: st.DrawFn) -> str:
    data = copy.deepcopy(parse_text(draw(st.sampled_from(TEXTS)))[0].data)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        targets = [p for p in paths(data) if p]
        if not targets:
            break
        path = draw(st.sampled_from(targets))
        parent = parent_of(data, path)
        action = draw(st.sampled_from(["delete", "swap", "junk"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "swap":
            parent[path[-1]] = draw(VALUES)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(VALUES)
        else:
            parent.append(draw(VALUES))
    return yaml.safe_dump(data, allow_unicode=True)


@st.composite
def mutated_text(draw: st.DrawFn) -> str | bytes:
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        action = draw(st.sampled_from(["insert", "cut", "junk-line"]))
        if action == "insert":
            text = text[:at] + draw(st.text(min_size=1, max_size=8)) + text[at:]
        elif action == "cut":
            text = text[:at] + text[at + draw(st.integers(min_value=1, max_value=40)) :]
        else:
            junk = draw(st.sampled_from(["&a [*a]", "- - -", ": :", "!!binary x", "<<: *a", "\t"]))
            text = text[:at] + "\n" + junk + "\n" + text[at:]
    if draw(st.booleans()):
        return text.encode("utf-8", "surrogatepass") + draw(st.binary(max_size=8))
    return text


@FUZZ
@given(st.text(max_size=2000))
def test_random_text(source: str) -> None:
    exercise(source)


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes(source: bytes) -> None:
    exercise(source)


@FUZZ
@given(mutated_data())
def test_examples_mutated_as_data(source: str) -> None:
    exercise(source)


@FUZZ
@given(mutated_text())
def test_examples_mutated_as_text(source: str | bytes) -> None:
    exercise(source)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_round_trip_through_yaml_dump(path: Path) -> None:
    data = parse_text(path.read_text())[0].data
    assert check_text(yaml.safe_dump(data)) == []
