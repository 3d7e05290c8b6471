"""``canaryctl validate`` and ``canaryctl schema`` through the real entry point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from controlplane.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "canary" / "four-week.yml"


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    text = EXAMPLE.read_text()
    text = text.replace("- weight: 100", "- weight: 90").replace("above: 300ms", "above: 5%")
    path = tmp_path / "bad.yml"
    path.write_text(text)
    return path


def line_of(path: Path, needle: str) -> int:
    return (
        path.read_text()
        .split("\n")
        .index(next(ln for ln in path.read_text().split("\n") if needle in ln))
        + 1
    )


def test_valid_files_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    # no spec.capacity: the plan sizes each step, and validate prints it, no warning
    *notes, last = err.splitlines()
    assert last == "1 file(s) valid"
    assert all(n.startswith(f"{EXAMPLE}: capacity: ") for n in notes), notes
    assert not [n for n in notes if "would run at" in n], notes
    step_3 = "step 3: stable 1, candidate 2 (3 GPUs), 4 GPUs while moving in"
    assert f"{EXAMPLE}: capacity: {step_3}" in notes


def test_invalid_file_exits_2_with_one_line_per_problem(
    bad_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(EXAMPLE), str(bad_file)]) == 2
    out, err = capsys.readouterr()
    first, second = line_of(bad_file, "above: 5%"), line_of(bad_file, "- weight: 90")
    assert out.splitlines() == [
        f"{bad_file}:{first}: spec.steps[0].rollbackOn[0].above: '5%' does not fit metric "
        "'latency' (e2e-latency is a latency in seconds): write e.g. 300ms or 1.5s",
        f"{bad_file}:{second}: spec.steps[3].weight: the last step's weight must be 100 (it "
        "promotes the candidate), got 90",
    ]
    assert [x for x in err.splitlines() if ": capacity: " not in x] == [
        "2 problems in 1 of 2 file(s)"
    ]


def test_json_output(bad_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-o", "json", str(bad_file)]) == 2
    report = json.loads(capsys.readouterr().out)
    assert [sorted(r) for r in report] == [["file", "line", "message", "path"]] * 2
    assert [(r["file"], r["path"]) for r in report] == [
        (str(bad_file), "spec.steps[0].rollbackOn[0].above"),
        (str(bad_file), "spec.steps[3].weight"),
    ]
    assert report[1]["line"] == line_of(bad_file, "- weight: 90")


def test_json_output_of_valid_files_is_an_empty_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-o", "json", str(EXAMPLE)]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_directory_means_its_yaml_files(
    tmp_path: Path, bad_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(EXAMPLE, tmp_path / "good.yaml")
    (tmp_path / "notes.txt").write_text("not yaml: [")
    assert main(["validate", "-o", "json", str(tmp_path)]) == 2
    report = json.loads(capsys.readouterr().out)
    assert {r["file"] for r in report} == {str(bad_file)}
    assert main(["validate", str(ROOT / "canary")]) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "no such file", id="missing"),
        pytest.param(
            b"\xff\xfe\x00garbage", "not UTF-8 text (invalid byte at offset 0)", id="binary"
        ),
        pytest.param(b"- a\n", "expected a mapping (a ModelCanary object), got a list", id="list"),
    ],
)
def test_bad_input_is_a_problem_not_a_traceback(
    tmp_path: Path, content: bytes | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yml"
    if content is not None:
        path.write_bytes(content)
    assert main(["validate", "-o", "json", str(path)]) == 2
    (problem,) = json.loads(capsys.readouterr().out)
    assert (problem["file"], problem["message"]) == (str(path), message)


def test_empty_directory_is_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    assert capsys.readouterr().out == f"{tmp_path}: no *.yml or *.yaml files\n"


def test_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "ModelCanary"
    assert "rollbackOn" in schema["$defs"]["StepSpec"]["properties"]


def test_schema_crd_prints_the_committed_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--crd"]) == 0
    assert capsys.readouterr().out == (ROOT / "manifests" / "crd" / "modelcanary.yaml").read_text()
