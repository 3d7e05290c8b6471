"""Serving: vLLM flags per quantization, InferenceService / LLMInferenceService shape, KServe SDK
deserialisation of every rendered InferenceService, system-prompt templates and DNS names."""

from __future__ import annotations

import re
from typing import Any

import kserve
import kubernetes.client
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from support.canaries import CANDIDATE, model_canary

from controlplane.desired import desired_objects
from controlplane.errors import SpecError
from controlplane.profiles.catalog import load_catalog
from controlplane.serving import object_names
from controlplane.serving.chat_template import chat_template, jinja_string
from controlplane.serving.render import (
    inference_service,
    llm_inference_service,
    predictor_spec,
    variant_objects,
)
from controlplane.spec.models import LABEL_CANARY, LABEL_VARIANT, ModelCanary

CATALOG = load_catalog()
LLAMA = "hf://meta-llama/Llama-3.1-8B-Instruct"
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


# the traffic of these tests' canaries
TRAFFIC = {"router": "gateway-api", "gateway": {"name": "gw"}, "hosts": ["m.example"]}


def args_of(c: ModelCanary) -> list[str]:
    return list(predictor_spec(c, "candidate", CATALOG)["model"]["args"])


# ----------------------------------------------------------------------------- vLLM flags


@pytest.mark.parametrize(
    ("quantization", "expected"),
    [
        ("none", []),
        ("fp8", ["--quantization=fp8"]),
        ("awq", ["--quantization=awq_marlin"]),
        ("gptq", ["--quantization=gptq_marlin"]),
        ("bitsandbytes-nf4", ["--quantization=bitsandbytes"]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_quantization_flags(quantization: str, expected: list[str]) -> None:
    args = args_of(
        model_canary(traffic=TRAFFIC, candidate={**CANDIDATE, "quantization": quantization})
    )
    assert [a for a in args if a.startswith("--quantization")] == expected
    assert "--quantization=awq" not in args  # before vLLM 0.24 plain awq was the legacy kernel


def test_bitsandbytes_int8_is_a_spec_error_naming_the_field() -> None:
    with pytest.raises(SpecError) as err:
        args_of(
            model_canary(
                traffic=TRAFFIC, candidate={**CANDIDATE, "quantization": "bitsandbytes-int8"}
            )
        )
    [problem] = err.value.problems
    assert problem.path == "spec.candidate.quantization"
    assert "4-bit" in problem.message


def test_fp8_on_ampere_runs_weight_only_and_renders() -> None:
    assert "--quantization=fp8" in args_of(
        model_canary(
            traffic=TRAFFIC,
            candidate={**CANDIDATE, "quantization": "fp8", "gpu": "nvidia-a100-80gb"},
        )
    )


def test_model_name_memory_and_user_args_order() -> None:
    args = args_of(
        model_canary(
            traffic=TRAFFIC,
            candidate={
                **CANDIDATE,
                "gpuMemoryUtilization": 0.85,
                "args": ["--enable-prefix-caching"],
            },
        )
    )
    assert args[:4] == [
        "--model_name=support-triage-llm",
        "--served-model-name=support-triage-llm",
        "--max-model-len=8192",
        "--gpu-memory-utilization=0.85",
    ]
    assert args[-1] == "--enable-prefix-caching"
    assert not any(a.startswith("--tensor-parallel-size") for a in args)


def test_tensor_parallel_and_gpu_resources_follow_gpu_count() -> None:
    pred = predictor_spec(
        model_canary(traffic=TRAFFIC, candidate={**CANDIDATE, "gpuCount": 4}), "candidate", CATALOG
    )
    assert "--tensor-parallel-size=4" in pred["model"]["args"]
    assert pred["model"]["resources"] == {
        "requests": {"nvidia.com/gpu": "4"},
        "limits": {"nvidia.com/gpu": "4"},
    }


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"gpu": "nvidia-t4000"}, "spec.candidate.gpu"),
        ({"args": ["--quantization=awq"]}, "spec.candidate.args[0]"),
        ({"args": ["--x", "--max-model-len=99"]}, "spec.candidate.args[1]"),
    ],
    ids=["unknown-gpu", "owned-quantization-flag", "owned-max-model-len"],
)
def test_bad_variant_is_a_spec_error_with_its_path(changes: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as err:
        args_of(model_canary(traffic=TRAFFIC, candidate={**CANDIDATE, **changes}))
    assert [p.path for p in err.value.problems] == [path]


# ----------------------------------------------------------------------------- object shape


def test_inference_service_shape() -> None:
    c = model_canary(traffic=TRAFFIC)
    isvc = inference_service(c, "candidate", CATALOG)
    pred = isvc["spec"]["predictor"]
    assert isvc["metadata"]["name"] == "support-triage-llm-nf4"
    assert pred["model"]["modelFormat"] == {"name": "huggingface"}
    assert pred["model"]["runtime"] == "kserve-huggingfaceserver"
    assert pred["model"]["storageUri"] == "hf://m/x"
    assert pred["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L40S"}
    assert pred["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pred["labels"][LABEL_CANARY] == "support-triage"
    assert pred["labels"][LABEL_VARIANT] == "nf4"
    assert pred["annotations"]["prometheus.io/scrape"] == "true"
    assert pred["annotations"]["prometheus.io/path"] == "/metrics"
    assert (pred["minReplicas"], pred["maxReplicas"]) == (1, 1)
    stable = inference_service(c, "stable", CATALOG)["spec"]["predictor"]
    assert (stable["minReplicas"], stable["maxReplicas"]) == (2, 2)


def test_llm_inference_service_shape() -> None:
    obj = llm_inference_service(
        model_canary(traffic=TRAFFIC, candidate={**CANDIDATE, "gpuCount": 2}), "candidate", CATALOG
    )
    assert obj["apiVersion"] == "serving.kserve.io/v1alpha2"
    spec = obj["spec"]
    assert spec["model"] == {"uri": "hf://m/x", "name": "support-triage-llm"}
    assert spec["parallelism"] == {"tensor": 2}
    [main] = spec["template"]["containers"]
    assert main["name"] == "main"
    assert "--quantization=bitsandbytes" in main["args"]
    assert spec["labels"][LABEL_VARIANT] == "nf4"


# ----------------------------------------------------------------------------- KServe SDK


def _sdk_class(name: str) -> type:
    for module in (kserve.models, kubernetes.client.models):
        if hasattr(module, name):
            return getattr(module, name)  # type: ignore[no-any-return]
    raise AssertionError(f"no SDK model {name}")


def strict_deserialize(data: Any, type_name: str, path: str = "") -> Any:
    """Like the SDKs' ApiClient.deserialize, but an unknown key fails instead of vanishing."""
    if match := re.fullmatch(r"(?:list|List)\[(.+)\]", type_name):
        assert isinstance(data, list), path
        return [strict_deserialize(v, match[1], f"{path}[{i}]") for i, v in enumerate(data)]
    if match := re.fullmatch(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])", type_name):
        assert isinstance(data, dict), path
        inner = match[1] or match[2]
        return {k: strict_deserialize(v, inner, f"{path}.{k}") for k, v in data.items()}
    if type_name in {"str", "int", "bool", "float", "object", "ResourceQuantity"}:
        expected = {"str": str, "int": int, "bool": bool, "float": (int, float)}.get(type_name)
        assert expected is None or isinstance(data, expected), f"{path}: {data!r} not {type_name}"
        return data
    klass = _sdk_class(type_name)
    assert isinstance(data, dict), f"{path}: expected an object for {type_name}"
    by_json = {json_key: attr for attr, json_key in klass.attribute_map.items()}
    unknown = set(data) - set(by_json)
    assert not unknown, f"{path}: {type_name} has no field(s) {sorted(unknown)}"
    kwargs = {
        by_json[k]: strict_deserialize(v, klass.openapi_types[by_json[k]], f"{path}.{k}")
        for k, v in data.items()
    }
    return klass(**kwargs)


POINTS = {
    "start": (0, False, None),
    "step": (25, False, None),
    "promoted": (0, False, "promoted"),
    "rolled-back": (0, False, "rolled_back"),
}


@pytest.mark.parametrize("router", ["gateway-api", "istio", "kserve", "kserve-knative"])
@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize(
    "quantization", ["none", "fp8", "awq", "gptq", "bitsandbytes-nf4"], ids=str
)
def test_every_rendered_inference_service_deserializes_into_the_sdk(
    router: str, point: str, quantization: str
) -> None:
    c = model_canary(
        traffic={**TRAFFIC, "router": router},
        candidate={
            **CANDIDATE,
            "quantization": quantization,
            "systemPrompt": "Be brief.",
            "storageUri": LLAMA,
            "gpuCount": 2,
        },
    )
    objs = desired_objects(c, CATALOG, *POINTS[point])
    isvcs = [o for o in objs if o["kind"] == "InferenceService"]
    assert isvcs
    for obj in isvcs:
        model = strict_deserialize(obj, "V1beta1InferenceService")
        assert isinstance(model, kserve.V1beta1InferenceService)
        assert model.spec.predictor.model.runtime == "kserve-huggingfaceserver"


def test_strict_deserializer_can_fail() -> None:
    obj = inference_service(model_canary(traffic=TRAFFIC), "stable", CATALOG)
    obj["spec"]["predictor"]["model"]["storageURI"] = "typo"
    with pytest.raises(AssertionError, match="storageURI"):
        strict_deserialize(obj, "V1beta1InferenceService")


# ----------------------------------------------------------------------------- system prompt


def _render(template: str, messages: list[dict[str, str]]) -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return str(
        env.from_string(template).render(
            messages=messages, add_generation_prompt=True, bos_token="<s>"
        )
    )


NASTY = 'Say "hi" {{ 7*7 }} {% raw %} \\ 100% sûr 🚀\nline two'


@pytest.mark.parametrize("prompt", ["You are terse.", NASTY], ids=["plain", "nasty"])
@pytest.mark.parametrize("uri", [LLAMA, "hf://Qwen/Qwen2.5-7B-Instruct"], ids=["llama3", "chatml"])
def test_system_prompt_is_injected_verbatim(prompt: str, uri: str) -> None:
    out = _render(chat_template(prompt, uri, path="p"), [{"role": "user", "content": "Q?"}])
    assert prompt.strip() in out
    assert out.index(prompt.strip()) < out.index("Q?")
    assert "49" not in out  # the prompt is data, never evaluated as a template


def test_a_request_with_its_own_system_message_keeps_it() -> None:
    template = chat_template("DEFAULT", LLAMA, path="p")
    out = _render(
        template, [{"role": "system", "content": "MINE"}, {"role": "user", "content": "Q"}]
    )
    assert "MINE" in out
    assert "DEFAULT" not in out


def test_jinja_string_escapes_everything_special() -> None:
    literal = jinja_string(NASTY)
    assert not set(literal[1:-1]) & set('"{}%\\\n') - {"\\"}
    assert "{{" not in literal
    assert "{%" not in literal


def test_unknown_template_family_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as err:
        variant_objects(
            model_canary(
                traffic=TRAFFIC,
                candidate={**CANDIDATE, "systemPrompt": "x", "storageUri": "s3://bucket/model"},
            ),
            "candidate",
            CATALOG,
        )
    assert err.value.problems[0].path == "spec.candidate.systemPrompt"


def test_system_prompt_configmap_is_mounted() -> None:
    objs = variant_objects(
        model_canary(
            traffic=TRAFFIC,
            candidate={**CANDIDATE, "systemPrompt": "Be brief.", "storageUri": LLAMA},
        ),
        "candidate",
        CATALOG,
    )
    cm, isvc = objs
    assert cm["kind"] == "ConfigMap"
    pred = isvc["spec"]["predictor"]
    assert pred["volumes"] == [
        {"name": "chat-template", "configMap": {"name": cm["metadata"]["name"]}}
    ]
    mount = pred["model"]["volumeMounts"][0]["mountPath"]
    [flag] = [a for a in pred["model"]["args"] if a.startswith("--chat-template=")]
    assert flag.split("=", 1)[1].startswith(mount + "/")
    assert flag.rsplit("/", 1)[1] in cm["data"]


# ----------------------------------------------------------------------------- DNS names


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("support-triage-llm", "nf4"), "support-triage-llm-nf4"),
        (("Model_Name", "V1"), "model-name-v1"),
        (("7b", "x"), "x7b-x"),
        (("a--b", "-c-"), "a-b-c"),
    ],
    ids=["plain", "upper-underscore", "leading-digit", "dashes"],
)
def test_dns_name(parts: tuple[str, ...], expected: str) -> None:
    assert object_names.dns_name(*parts) == expected


@pytest.mark.parametrize("length", [40, 53, 54, 63, 64, 200])
def test_long_names_are_cut_hashed_and_valid(length: int) -> None:
    model = "m" * length
    name = object_names.variant_service_name(model, "candidate")
    assert len(name) <= 63 - len("-predictor")
    assert DNS_LABEL.match(name)
    assert DNS_LABEL.match(object_names.predictor_service(name))
    assert len(object_names.chat_template_configmap(name)) <= 63
    other = object_names.variant_service_name(model, "candidat3")
    assert other != name


def test_hashed_names_are_stable() -> None:
    assert object_names.dns_name("x" * 100) == object_names.dns_name("x" * 100)
    assert object_names.dns_name("x" * 100) != object_names.dns_name("x" * 101)


# ----------------------------------------------------------------------------- stopping pods


def _shutdown_s(args: list[str]) -> int:
    (flag,) = [a for a in args if a.startswith("--shutdown-timeout=")]
    return int(flag.split("=", 1)[1])


def test_a_stopping_engine_finishes_its_requests_within_the_pods_grace() -> None:
    """The InferenceService: the ``preStop`` drain, then vLLM draining what is in flight
    (``--shutdown-timeout``, whose default aborts it), both inside the pod's grace period."""
    predictor = predictor_spec(model_canary(traffic=TRAFFIC), "candidate", CATALOG)
    drain = predictor["model"]["lifecycle"]["preStop"]["sleep"]["seconds"]
    shutdown = _shutdown_s(predictor["model"]["args"])
    assert drain > 0
    assert shutdown > 0
    assert predictor["terminationGracePeriodSeconds"] > drain + shutdown


def test_kserve_drains_the_llminferenceservice_for_as_long_as_the_inferenceservice() -> None:
    """KServe v0.20.0's LLMInferenceService template has its own ``preStop`` (15 s) and derives
    ``--shutdown-timeout`` from the pod's grace (grace - 15 - 5): no second handler, no flag of
    ours, and a grace that makes KServe's flag the InferenceService's."""
    canary = model_canary(traffic=TRAFFIC)
    pod = llm_inference_service(canary, "candidate", CATALOG)["spec"]["template"]
    (main,) = pod["containers"]
    assert "lifecycle" not in main
    assert not [a for a in main["args"] if a.startswith("--shutdown-timeout")]
    isvc_shutdown = _shutdown_s(predictor_spec(canary, "candidate", CATALOG)["model"]["args"])
    assert pod["terminationGracePeriodSeconds"] - 15 - 5 == isvc_shutdown


def test_a_variant_may_not_set_the_shutdown_timeout_the_grace_is_sized_for() -> None:
    canary = model_canary(
        traffic=TRAFFIC, candidate={**CANDIDATE, "args": ["--shutdown-timeout=9"]}
    )
    with pytest.raises(SpecError, match="shutdown-timeout"):
        inference_service(canary, "candidate", CATALOG)
