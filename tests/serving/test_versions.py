"""Which vLLM serves a canary (image tables, spec field, default) and the flags rendered for it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.canaries import CANDIDATE, MODEL, model_canary

from controlplane.errors import SpecError
from controlplane.profiles.catalog import load_catalog
from controlplane.serving.render import llm_inference_service, predictor_spec
from controlplane.serving.versions import (
    DEFAULT_VLLM_VERSION,
    KSERVE_VLLM,
    LLMISVC_IMAGE,
    PINNED_KSERVE,
    resolve_vllm_version,
    runtime_image,
    version_problems,
    vllm_version,
    vllm_version_of_image,
)
from controlplane.spec.models import ModelCanary, RouterName

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog()
ROUTERS: tuple[RouterName, ...] = ("gateway-api", "istio", "kserve", "kserve-knative", "llmisvc")


# the traffic of these tests' canaries
TRAFFIC = {"router": "gateway-api", "gateway": {"name": "gw"}, "hosts": ["m.example"]}


def quantization_flags(c: ModelCanary, router: str) -> list[str]:
    if router == "llmisvc":
        args = llm_inference_service(c, "candidate", CATALOG)["spec"]["template"]["containers"][0]
    else:
        args = predictor_spec(c, "candidate", CATALOG)["model"]
    return [a for a in args["args"] if a.startswith("--quantization")]


# ----------------------------------------------------------------------------- the tables


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("kserve/huggingfaceserver:v0.20.0", "0.24.0"),
        ("kserve/huggingfaceserver:v0.20.0-gpu", "0.24.0"),
        ("docker.io/kserve/huggingfaceserver:v0.19.0-gpu", "0.20.0"),
        ("localhost:5000/kserve/huggingfaceserver:v0.18.1", "0.19.0"),
        ("kserve/huggingfaceserver:v0.17.0", "0.15.1"),
        ("vllm/vllm-openai:v0.33.0", "0.33.0"),
        ("vllm/vllm-openai:v0.8.5.post1", "0.8.5"),
        ("docker.io/vllm/vllm-openai:v0.24.0", "0.24.0"),
        ("vllm/vllm-openai:latest", None),
        ("vllm/vllm-openai", None),
        ("kserve/huggingfaceserver:latest-gpu", None),
        ("kserve/huggingfaceserver:v0.99.0", None),
        ("kserve/huggingfaceserver@sha256:" + "a" * 64, None),
        ("someone/kserve/huggingfaceserver:v0.20.0", None),  # not a registry host
        (LLMISVC_IMAGE, None),  # llm-d builds from a vLLM commit, not a release
    ],
)
def test_vllm_version_of_image(image: str, version: str | None) -> None:
    assert vllm_version_of_image(image) == version


def test_the_pinned_kserve_is_the_one_the_build_uses() -> None:
    build = (ROOT / "scripts" / "build-kube.sh").read_text()
    assert f'KSERVE_VERSION="{PINNED_KSERVE}"' in build
    assert DEFAULT_VLLM_VERSION == KSERVE_VLLM[PINNED_KSERVE] == "0.24.0"


@pytest.mark.parametrize("router", ROUTERS)
def test_every_router_default_image_agrees_with_the_default(router: RouterName) -> None:
    # vllm_flags resolves without the router: that is right only while this holds.
    model = model_canary(traffic={**TRAFFIC, "router": router}).spec.model
    assert resolve_vllm_version(model, router) == resolve_vllm_version(model) == "0.24.0"
    image = runtime_image(router)
    if router == "llmisvc":
        assert image == LLMISVC_IMAGE
    else:
        assert image == f"kserve/huggingfaceserver:{PINNED_KSERVE}-gpu"


@pytest.mark.parametrize("router", ROUTERS)
def test_the_spec_field_wins_over_the_image(router: RouterName) -> None:
    traffic = {**TRAFFIC, "router": router}
    pinned_033 = model_canary(traffic=traffic, model={**MODEL, "vllmVersion": "0.33.0"})
    pinned_020 = model_canary(traffic=traffic, model={**MODEL, "vllmVersion": "0.20.0"})
    assert vllm_version(model_canary(traffic=traffic)) == "0.24.0"
    assert vllm_version(pinned_033) == "0.33.0"
    assert vllm_version(pinned_020) == "0.20.0"


# ----------------------------------------------------------------------------- rendered flags


@pytest.mark.parametrize("router", ["gateway-api", "llmisvc"])
@pytest.mark.parametrize(
    ("quantization", "vllm", "expected"),
    [
        ("fp8", None, ["--quantization=fp8"]),
        ("fp8", "0.24.0", ["--quantization=fp8"]),
        ("fp8", "0.30.0", ["--quantization=fp8"]),
        ("fp8", "0.31.0", ["--quantization=fp8_per_tensor"]),
        ("fp8", "0.33.0", ["--quantization=fp8_per_tensor"]),
        ("awq", "0.20.0", ["--quantization=awq_marlin"]),
        ("awq", "0.33.0", ["--quantization=awq_marlin"]),
        ("gptq", "0.33.0", ["--quantization=gptq_marlin"]),
        ("bitsandbytes-nf4", "0.27.1", ["--quantization=bitsandbytes"]),
        ("none", "0.33.0", []),
    ],
)
def test_flags_follow_the_vllm_version(
    router: str, quantization: str, vllm: str | None, expected: list[str]
) -> None:
    c = model_canary(
        traffic={**TRAFFIC, "router": router},
        model={**MODEL, "vllmVersion": vllm},
        candidate={**CANDIDATE, "quantization": quantization, "gpu": "nvidia-h100-80gb"},
    )
    assert quantization_flags(c, router) == expected


@pytest.mark.parametrize("router", ["kserve", "llmisvc"])
def test_bitsandbytes_on_vllm_033_is_a_spec_error_at_render(router: str) -> None:
    c = model_canary(
        traffic={**TRAFFIC, "router": router},
        model={**MODEL, "vllmVersion": "0.33.0"},
        candidate={**CANDIDATE, "quantization": "bitsandbytes-nf4"},
    )
    with pytest.raises(SpecError) as err:
        quantization_flags(c, router)
    [problem] = err.value.problems
    assert problem.path == "spec.candidate.quantization"
    assert "does not exist in vLLM 0.33.0" in problem.message
    assert "removed it in 0.28.0" in problem.message
    assert "use awq or gptq" in problem.message


# ----------------------------------------------------------------------------- problems


def test_version_problems_name_method_version_and_what_to_use() -> None:
    c = model_canary(
        traffic=TRAFFIC,
        model={**MODEL, "vllmVersion": "0.28.0"},
        candidate={**CANDIDATE, "quantization": "bitsandbytes-nf4"},
    )
    [problem] = version_problems(c, CATALOG)
    assert problem.path == "spec.candidate.quantization"
    assert re.search(r"'bitsandbytes-nf4' does not exist in vLLM 0\.28\.0", problem.message)
    assert "use awq or gptq with a 4-bit checkpoint" in problem.message
    assert problem.message.endswith("(vLLM version from spec.model.vllmVersion)")


def test_a_method_before_its_first_range_is_a_problem() -> None:
    c = model_canary(
        traffic=TRAFFIC,
        model={**MODEL, "vllmVersion": "0.15.1"},
        candidate={**CANDIDATE, "quantization": "fp8"},
    )
    [problem] = version_problems(c, CATALOG)
    assert problem.path == "spec.candidate.quantization"
    assert "not known for vLLM 0.15.1" in problem.message
    assert "from vLLM 0.19.0 on" in problem.message


def test_the_default_version_has_no_problem_and_says_where_it_came_from() -> None:
    nf4 = {**CANDIDATE, "quantization": "bitsandbytes-nf4"}
    pinned = model_canary(traffic=TRAFFIC, model={**MODEL, "vllmVersion": "0.27.1"}, candidate=nf4)
    assert version_problems(model_canary(traffic=TRAFFIC, candidate=nf4), CATALOG) == []
    assert version_problems(pinned, CATALOG) == []
