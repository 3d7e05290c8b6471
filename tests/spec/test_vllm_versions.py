"""``spec.model.vllmVersion`` and the quantization methods a vLLM version has, through validation
and ``canaryctl validate`` (FILE:LINE: path: message)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.canaries import CANDIDATE, MODEL, STABLE, canary_dict, model_canary
from support.serverside import Refused, apply_and_compare, apply_strict, in_namespace

from controlplane.cli.main import main
from controlplane.errors import Problem
from controlplane.spec.load import parse_text
from controlplane.validation import check_object, validate
from harness.cluster.kubeapi import LoopbackCluster

ROOT = Path(__file__).resolve().parents[2]
FOUR_WEEK = ROOT / "canary" / "four-week.yml"  # candidate: bitsandbytes-nf4 on gateway-api


def with_version(tmp_path: Path, version: str, text: str | None = None) -> Path:
    source = FOUR_WEEK.read_text() if text is None else text
    assert "    runtime: vllm\n" in source
    path = tmp_path / "canary.yml"
    path.write_text(
        source.replace("    runtime: vllm\n", f"    runtime: vllm\n    vllmVersion: {version}\n")
    )
    return path


# the traffic of the hand-built canaries, and their candidate where fp8 is the method
TRAFFIC = {"router": "gateway-api", "gateway": {"name": "gw"}, "hosts": ["m"]}
FP8_ON_H100 = {**CANDIDATE, "quantization": "fp8", "gpu": "nvidia-h100-80gb"}


def pinned(version: str) -> dict[str, Any]:
    """``spec.model`` of the example pinned to vLLM ``version``."""
    return {**MODEL, "vllmVersion": version}


def quantization_problems(problems: list[Problem]) -> list[Problem]:
    """The problems of this rule (other rules judge the example's thresholds)."""
    return [p for p in problems if p.path.endswith(".quantization")]


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().split("\n"), 1) if needle in line)


def test_bitsandbytes_on_vllm_033_is_a_validation_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = with_version(tmp_path, '"0.33.0"')
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    line = line_of(path, "quantization: bitsandbytes-nf4")
    [problem] = out.splitlines()
    assert problem.startswith(
        f"{path}:{line}: spec.candidate.quantization: quantization 'bitsandbytes-nf4' does not "
        "exist in vLLM 0.33.0: vLLM removed it in 0.28.0; use awq or gptq"
    )
    assert "use awq or gptq with a 4-bit checkpoint" in problem
    assert problem.endswith("(vLLM version from spec.model.vllmVersion)")
    assert err == "1 problem in 1 of 1 file(s)\n"


def test_the_same_file_is_valid_on_the_vllm_that_still_has_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(with_version(tmp_path, "0.27.1"))]) == 0
    assert main(["validate", str(FOUR_WEEK)]) == 0  # unset: the pinned KServe's vLLM 0.24.0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("version", ['"latest"', '"0.24"', '"0.24.0-rc1"', "[0, 24]"])
def test_an_unparseable_version_is_an_error_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str
) -> None:
    path = with_version(tmp_path, version)
    assert main(["validate", str(path)]) == 2
    out = capsys.readouterr().out
    line = line_of(path, "vllmVersion:")
    assert out.startswith(f"{path}:{line}: spec.model.vllmVersion: ")
    assert len(out.splitlines()) == 1


def test_a_float_version_is_told_to_quote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = with_version(tmp_path, "0.24")  # YAML reads a number
    assert main(["validate", str(path)]) == 2
    assert "quote it" in capsys.readouterr().out


def test_a_method_older_than_the_catalogue_names_the_version() -> None:
    data = canary_dict(traffic=TRAFFIC, model=pinned("0.15.1"), candidate=FP8_ON_H100)
    [problem] = quantization_problems(check_object(data))
    assert problem.path == "spec.candidate.quantization"
    assert "'fp8' is not known for vLLM 0.15.1" in problem.message


def test_both_variants_are_checked() -> None:
    nf4 = {**STABLE, "quantization": "bitsandbytes-nf4"}
    canary = model_canary(traffic=TRAFFIC, model=pinned("0.30.0"), stable=nf4)
    problems = quantization_problems(validate(canary))
    paths = [p.path for p in problems]
    assert paths == ["spec.stable.quantization", "spec.candidate.quantization"]


def test_fp8_on_vllm_033_is_valid_and_bitsandbytes_on_0271_too() -> None:
    data = canary_dict(traffic=TRAFFIC, model=pinned("0.33.0"), candidate=FP8_ON_H100)
    assert quantization_problems(check_object(data)) == []
    nf4_0271 = canary_dict(traffic=TRAFFIC, model=pinned("0.27.1"))  # bitsandbytes-nf4
    nf4_0280 = canary_dict(traffic=TRAFFIC, model=pinned("0.28.0"))
    assert quantization_problems(check_object(nf4_0271)) == []
    assert len(quantization_problems(check_object(nf4_0280))) == 1


@pytest.mark.binary
@pytest.mark.parametrize(
    ("version", "accepted"),
    [
        ("0.33.0", True),
        ("v0.24.0", True),
        ("0.8.5.post1", True),
        ("latest", False),
        ("0.24", False),
    ],
)
def test_the_crd_takes_what_the_model_takes_on_the_real_api_server(
    loopback: LoopbackCluster, real_ns: str, version: str, accepted: bool
) -> None:
    [doc] = parse_text(FOUR_WEEK.read_text(encoding="utf-8"))
    assert isinstance(doc.data, dict)
    obj = in_namespace(loopback, doc.data, real_ns)
    obj["metadata"]["name"] = f"v-{version.replace('.', '-').lower()}"
    obj["spec"]["model"]["vllmVersion"] = version
    model_accepts = not any(p.path == "spec.model.vllmVersion" for p in check_object(obj))
    assert model_accepts == accepted
    if accepted:
        assert apply_and_compare(loopback, obj) == []
    else:
        with pytest.raises(Refused) as refused:
            apply_strict(loopback, obj)
        assert refused.value.code == 422
        assert "spec.model.vllmVersion" in str(refused.value)
