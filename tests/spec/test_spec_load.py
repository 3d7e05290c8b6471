"""The loader: YAML dialect, line numbers, structural messages and hostile input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.canaries import model_canary
from support.loadwork import Work, counted

from controlplane.errors import SpecError
from controlplane.spec import load
from controlplane.spec.load import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_EXPANDED,
    MAX_NODES,
    load_file,
    load_text,
    parse_text,
)
from controlplane.spec.paths import format_path, parse_path
from controlplane.validation import check_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "canary" / "four-week.yml").read_text()
MINIMAL = """\
apiVersion: canary.controlplane.dev/v1alpha1
kind: ModelCanary
metadata: {name: m}
spec:
  model: {name: m}
  stable: {name: a, storageUri: hf://x/y, gpu: nvidia-l4}
  candidate: {name: b, storageUri: hf://x/z, gpu: nvidia-l4}
  traffic: {router: kserve}
  steps:
    - weight: 100
"""


def problems_of(text: str | bytes) -> list[tuple[int | None, str, str]]:
    return [(p.line, p.path, p.message) for p in check_text(text, "c.yml")]


def test_the_example_loads_with_yaml_1_2_floats() -> None:
    (canary,) = load_text(EXAMPLE, "four-week.yml")
    assert canary.spec.model.parameters == 8.0e9
    assert canary.spec.steps[1].rollback_on[0].window is not None
    assert canary.spec.steps[1].rollback_on[0].window.seconds == 4 * 3600


def test_load_file_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(MINIMAL)
    (canary,) = load_file(path)
    assert canary.metadata.name == "m"


def test_multi_document_files_give_one_canary_per_document() -> None:
    second = MINIMAL.replace("metadata: {name: m}", "metadata: {name: n}")
    canaries = load_text(f"{MINIMAL}---\n{second}---\n", "c.yml")
    assert [c.metadata.name for c in canaries] == ["m", "n"]


def test_problems_of_each_document_carry_file_lines() -> None:
    bad = MINIMAL.replace("- weight: 100", "- weight: 90")
    text = f"{MINIMAL}---\n{bad}"
    line = MINIMAL.count("\n") + 1 + bad.split("\n").index("    - weight: 90") + 1
    assert problems_of(text) == [
        (
            line,
            "spec.steps[0].weight",
            "the last step's weight must be 100 (it promotes the candidate), got 90",
        )
    ]


def test_line_map_records_keys_and_items() -> None:
    (doc,) = parse_text(EXAMPLE)
    assert doc.line_of("spec.steps[0]") == EXAMPLE.split("\n").index("    - weight: 5") + 1
    assert doc.line_of("spec.steps[0].nosuchfield") == doc.line_of("spec.steps[0]")
    assert (
        doc.line_of("")
        == EXAMPLE.split("\n").index("apiVersion: canary.controlplane.dev/v1alpha1") + 1
    )


STRUCTURAL = [
    (
        "unknown-field-with-hint",
        ("  candidate: {name: b,", "  candidate: {name: b, sytemPrompt: hi,"),
        [
            (
                7,
                "spec.candidate.sytemPrompt",
                "unknown field 'sytemPrompt'; did you mean 'systemPrompt'?",
            )
        ],
    ),
    (
        "unknown-field-without-hint",
        ("metadata: {name: m}", "metadata: {name: m}\nfoo: 1"),
        [(4, "foo", "unknown field 'foo'")],
    ),
    (
        "missing-required-field",
        ("  model: {name: m}\n", ""),
        [(4, "spec.model", "required field 'model' is missing")],
    ),
    (
        "string-where-integer-belongs",
        ("- weight: 100", '- weight: "100"'),
        [(10, "spec.steps[0].weight", "expected an integer, got string '100'")],
    ),
    (
        "float-where-integer-belongs",
        ("gpu: nvidia-l4}\n  candidate", "gpu: nvidia-l4, replicas: 2.0}\n  candidate"),
        [(6, "spec.stable.replicas", "expected an integer, got number 2.0")],
    ),
    (
        "number-where-string-belongs",
        ("storageUri: hf://x/z", "storageUri: 5"),
        [
            (
                7,
                "spec.candidate.storageUri",
                "expected a string, got integer 5 (quote it to make it a string)",
            )
        ],
    ),
    (
        "list-where-mapping-belongs",
        ("  model: {name: m}", "  model: [m]"),
        [(5, "spec.model", "expected a mapping, got a list")],
    ),
    (
        "unknown-enum-value-with-hint",
        ("router: kserve}", "router: istoi}"),
        [
            (
                8,
                "spec.traffic.router",
                "must be one of 'gateway-api', 'istio', 'kserve', 'kserve-knative' or 'llmisvc'; "
                "got string 'istoi'; did you mean 'istio'?",
            )
        ],
    ),
    (
        "bad-duration",
        ("- weight: 100", "- weight: 100\n      duration: 5"),
        [
            (
                11,
                "spec.steps[0].duration",
                "a duration needs a unit (ms, s, m, h, d, w): got 5, try '5s'",
            )
        ],
    ),
    (
        "bad-threshold",
        ("- weight: 100", "- weight: 100\n      rollbackOn: [{metric: x, above: 5 %%}]"),
        [
            (
                11,
                "spec.steps[0].rollbackOn[0].above",
                "invalid threshold '5 %%': expected e.g. 200ms, 1.5s, 0.1%, 5% or 3",
            )
        ],
    ),
    (
        "name-not-a-dns-label",
        ("metadata: {name: m}", "metadata: {name: My_Canary}"),
        [
            (
                3,
                "metadata.name",
                "must be a DNS name: lowercase letters, digits, '-' and '.', starting and ending "
                "with a letter or digit; got string 'My_Canary'",
            )
        ],
    ),
    (
        "out-of-range",
        ("- weight: 100", "- weight: 101"),
        [(10, "spec.steps[0].weight", "must be less than or equal to 100; got integer 101")],
    ),
    (
        "empty-steps",
        ("  steps:\n    - weight: 100\n", "  steps: []\n"),
        [(9, "spec.steps", "must have at least 1 item, not 0")],
    ),
    (
        "duplicate-key",
        ("metadata: {name: m}", "metadata: {name: m, name: n}"),
        [(3, "metadata.name", "duplicate key 'name' (first at line 3)")],
    ),
    (
        "bare-on-key-is-a-boolean",
        ("  steps:", '  alerts: [{webhook: {url: "http://h"}, on: [rollback]}]\n  steps:'),
        [
            (
                9,
                "spec.alerts[0]",
                "key 'on' reads as the boolean true in YAML 1.1 (kubectl reads it so too): quote "
                'it as "on"',
            )
        ],
    ),
    (
        "yes-is-a-boolean-value",
        ("  model: {name: m}", "  model: {name: yes}"),
        [
            (
                5,
                "spec.model.name",
                "expected a string, got boolean true (quote it to make it a string)",
            )
        ],
    ),
    (
        "wrong-kind",
        ("kind: ModelCanary", "kind: Rollout"),
        [(2, "kind", "must be one of 'ModelCanary'; got string 'Rollout'")],
    ),
]


@pytest.mark.parametrize(("edit", "expected"), [pytest.param(e, x, id=i) for i, e, x in STRUCTURAL])
def test_structural_problems_are_readable(
    edit: tuple[str, str], expected: list[tuple[int, str, str]]
) -> None:
    text = MINIMAL.replace(*edit)
    assert text != MINIMAL
    assert problems_of(text) == expected


def test_load_text_raises_spec_error_with_every_problem() -> None:
    text = MINIMAL.replace("- weight: 100", '- weight: "x"').replace(
        "model: {name: m}", "model: {name: m, x: 1}"
    )
    with pytest.raises(SpecError) as caught:
        load_text(text, "c.yml")
    assert [p.path for p in caught.value.problems] == ["spec.model.x", "spec.steps[0].weight"]
    assert str(caught.value).startswith("c.yml:5: spec.model.x: unknown field 'x'")


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


HOSTILE: list[tuple[str, str | bytes, tuple[int | None, str]]] = [
    ("empty", "", (1, "empty file: expected a ModelCanary")),
    ("only-comments", "# nothing\n", (1, "empty file: expected a ModelCanary")),
    ("a-list", "- a\n- b\n", (1, "expected a mapping (a ModelCanary object), got a list")),
    ("a-scalar", "hello\n", (1, "expected a mapping (a ModelCanary object), got string 'hello'")),
    (
        "billion-laughs",
        _bomb(9),
        (1, "refused: the document expands to more than 10000 nodes (aliases included)"),
    ),
    ("deep-flow-nesting", "[" * 100_000, (1, "refused: nesting deeper than 64 levels")),
    (
        "deep-block-nesting",
        "".join("  " * i + f"k{i}:\n" for i in range(200)),
        (64, "refused: nesting deeper than 64 levels"),
    ),
    (
        "recursive-alias",
        "&a [*a]\n",
        (1, "refused: a recursive alias (a node that contains itself)"),
    ),
    (
        "too-many-nodes",
        "[" + ",".join(["1"] * 60_000) + "]",
        (1, "refused: more than 50000 YAML nodes"),
    ),
    (
        "too-large",
        "a: " + "x" * (5 * 1024 * 1024),
        (None, f"file is too large ({5 * 1024 * 1024 + 3} bytes; the limit is 1024 KiB)"),
    ),
    ("binary", bytes(range(256)) * 4, (None, "not UTF-8 text (invalid byte at offset 128)")),
    ("nul-bytes", b"a: b\x00c\n", (None, "binary data (NUL bytes) is not YAML")),
    (
        "control-character",
        "a: b\x07\n",
        (1, "invalid YAML: U+0007 (a control character) is not allowed"),
    ),
    (
        "tab-indent",
        "a:\n\t- b\n",
        (
            2,
            "invalid YAML: found character that cannot start any token "
            "(while scanning for the next token)",
        ),
    ),
    (
        "unclosed-flow",
        "a: [1, 2\nb: c\n",
        (2, "invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence)"),
    ),
    ("undefined-alias", "a: *nope\n", (1, "invalid YAML: found undefined alias 'nope'")),
    (
        "python-tag",
        "a: !!python/object/apply:os.system [ls]\n",
        (1, "unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
    ),
    (
        "duplicate-anchor",
        "a: &x 1\nb: &x 2\n",
        (2, "invalid YAML: found duplicate anchor 'x' (first at line 1)"),
    ),
    (
        "too-many-documents",
        "a: 1\n---\n" * 101,
        (201, "refused: more than 100 documents in one file"),
    ),
]


@pytest.fixture
def work() -> Iterator[Work]:
    with counted() as seen:
        yield seen


@pytest.mark.parametrize(("source", "expected"), [pytest.param(s, x, id=i) for i, s, x in HOSTILE])
def test_hostile_input_is_refused_within_bounded_work(
    source: str | bytes, expected: tuple[int | None, str], work: Work
) -> None:
    """Refused with its line, after at most the limits' worth of work (bench/hostile_input.py
    measures the seconds that takes)."""
    problems = check_text(source, "c.yml")
    assert [(p.line, p.message) for p in problems][:1] == [expected]
    assert work.composed <= MAX_NODES + 1
    assert work.walked <= MAX_EXPANDED + 1
    assert work.depth <= MAX_DEPTH + 1
    with pytest.raises(SpecError):
        load_text(source, "c.yml")


def test_the_work_counts_see_an_unbounded_loader(
    work: Work, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counts are not vacuous: with the node budget lifted, 60,000 nodes are composed."""
    monkeypatch.setattr(load, "MAX_NODES", 10**9)
    check_text("[" + ",".join(["1"] * 60_000) + "]", "c.yml")
    assert work.composed > MAX_NODES + 1


def test_a_huge_file_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.yml"
    path.write_bytes(b"a: " + b"x" * (5 * 1024 * 1024))
    with pytest.raises(SpecError) as caught:
        load_file(path)
    assert caught.value.problems[0].message == (
        f"file is too large ({MAX_BYTES + 1} bytes; the limit is 1024 KiB)"
    )


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        pytest.param(
            ("spec", "steps", 1, "rollbackOn", 0, "above"),
            "spec.steps[1].rollbackOn[0].above",
            id="nested",
        ),
        pytest.param(
            ("metadata", "labels", "app.kubernetes.io/name"),
            'metadata.labels["app.kubernetes.io/name"]',
            id="quoted",
        ),
        pytest.param((), "", id="root"),
    ],
)
def test_paths_round_trip(loc: tuple[str | int, ...], text: str) -> None:
    assert format_path(loc) == text
    assert parse_path(text) == loc


def test_a_role_names_its_variant() -> None:
    spec = model_canary().spec
    assert spec.variant("stable") is spec.stable
    assert spec.variant("candidate") is spec.candidate
    with pytest.raises(ValueError, match="stable or candidate"):
        spec.variant("canary")
