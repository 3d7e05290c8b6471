"""Adopting the live InferenceService as the stable (pure): what is read from it, what is
refused, what the routes and the promotion look like (#37)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from support.adoption import LIVE, STORAGE_URI, adopting_canary, adopting_model, live_isvc

from controlplane.desired import desired_objects
from controlplane.profiles.catalog import load_catalog
from controlplane.rollout.state import spec_hash
from controlplane.routing import gateway_api, istio
from controlplane.serving import adopt
from controlplane.spec.models import ModelCanary
from controlplane.validation import check_object

NS = "support"
CATALOG = load_catalog()


def served(isvc: dict[str, Any]) -> dict[str, Any]:
    """``isvc`` as KServe v0.20.0 reports it once Ready (status.url and the predictor's)."""
    out = copy.deepcopy(isvc)
    out["metadata"]["uid"] = "u-1"
    out["status"] = {
        "url": f"http://{LIVE}-{NS}.example.com",
        "components": {"predictor": {"url": f"http://{LIVE}-predictor-{NS}.example.com"}},
    }
    return out


def test_the_stable_is_read_from_the_live_service() -> None:
    args = [
        "--model_name=chat",
        "--max-model-len=8192",
        "--gpu-memory-utilization=0.85",
        "--quantization=fp8",
        "--enable-prefix-caching",
    ]
    got, problems = adopt.adoption_of(
        adopting_model("triage", NS), served(live_isvc(NS, args=args)), CATALOG
    )
    assert problems == []
    assert got is not None
    v = got.variant
    assert (v.name, v.storage_uri, v.gpu, v.gpu_count, v.replicas) == (
        "live",
        STORAGE_URI,
        "nvidia-l40s",
        1,
        2,
    )
    assert (v.quantization, v.gpu_memory_utilization) == ("fp8", 0.85)
    assert v.args == ["--enable-prefix-caching"]  # the flags the product owns were read, not kept
    assert got.service == "chat-predictor"
    assert got.hosts == (f"chat-{NS}.example.com", f"chat-predictor-{NS}.example.com")
    assert got.served_model == "chat"
    assert adopt.Adoption.from_dict(got.to_dict()) == got


def test_a_named_predictor_is_reached_by_its_own_service() -> None:
    isvc = served(live_isvc(NS))
    isvc["spec"]["predictor"]["name"] = "blue"
    got, _ = adopt.adoption_of(adopting_model("triage", NS), isvc, CATALOG)
    assert got is not None
    assert got.service == "chat-blue-predictor"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda p: p.pop("model"), "has no 'model'"),
        (lambda p: p["model"]["resources"]["limits"].clear(), "no nvidia.com/gpu"),
        (lambda p: p.pop("nodeSelector"), "names no GPU"),
        (lambda p: p.update(nodeSelector={"nvidia.com/gpu.product": "X-1"}), "'X-1' is not in"),
        (lambda p: p["model"].update(args=["--model_name=other"]), "answers to model 'other'"),
        (lambda p: p["model"].update(args=["--max-model-len=4096"]), "--max-model-len=4096"),
        (lambda p: p["model"].update(args=["--quantization=marlin"]), "no method"),
    ],
)
def test_what_cannot_be_adopted_is_said(change: Any, words: str) -> None:
    isvc = served(live_isvc(NS))
    change(isvc["spec"]["predictor"])
    got, problems = adopt.adoption_of(adopting_model("triage", NS), isvc, CATALOG)
    assert got is None
    assert len(problems) == 1
    assert problems[0].path == "spec.stable.targetRef"
    assert words in problems[0].message, problems[0].message


def test_a_gpu_read_from_a_required_node_affinity() -> None:
    isvc = served(live_isvc(NS, product=None))
    term = {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-L40S"]}
    isvc["spec"]["predictor"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [term]}]
            }
        }
    }
    got, _ = adopt.adoption_of(adopting_model("triage", NS), isvc, CATALOG)
    assert got is not None
    assert got.variant.gpu == "nvidia-l40s"


def test_resolving_keeps_the_spec_hash_and_says_what_it_was_made_with() -> None:
    document = adopting_model("triage", NS)
    got, _ = adopt.adoption_of(document, served(live_isvc(NS)), CATALOG)
    assert got is not None
    resolved = adopt.resolve(document, got)
    assert spec_hash(resolved) == spec_hash(document)
    assert adopt.adoption(resolved) == got
    assert adopt.adoption(document) is None
    assert resolved.spec.stable.storage_uri == STORAGE_URI
    assert not document.spec.candidate_is_stable()


def resolved(**spec: Any) -> ModelCanary:
    document = adopting_model("triage", NS, **spec)
    got, problems = adopt.adoption_of(document, served(live_isvc(NS)), CATALOG)
    assert got is not None, problems
    return adopt.resolve(document, got)


def test_the_route_takes_the_inference_paths_of_the_live_hosts() -> None:
    route = gateway_api.build_httproute(resolved(), 25, False)
    spec = route["spec"]
    assert spec["hostnames"] == [f"chat-{NS}.example.com", f"chat-predictor-{NS}.example.com"]
    (rule,) = spec["rules"]
    paths = [m["path"] for m in rule["matches"]]
    assert {p["type"] for p in paths} == {"Exact"}
    assert "/v1/chat/completions" in {p["value"] for p in paths}
    assert "/openai/v1/completions" in {p["value"] for p in paths}
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [
        ("chat-predictor", 75),
        ("chat-fp8-predictor", 25),
    ]
    assert gateway_api.weights_of(resolved(), route).candidate == 25


def test_a_cohort_matches_each_value_on_each_path() -> None:
    cohort = {"header": "x-cohort", "values": ["beta", "staff"]}
    route = gateway_api.build_httproute(
        resolved(traffic={"router": "gateway-api", "cohort": cohort}), 50, False
    )
    first, rest = route["spec"]["rules"]
    assert len(first["matches"]) == 2 * len(adopt.INFERENCE_PATHS)
    assert all("path" in m and m["headers"][0]["name"] == "x-cohort" for m in first["matches"])
    assert [b["name"] for b in rest["backendRefs"]] == ["chat-predictor"]
    assert len(rest["matches"]) == len(adopt.INFERENCE_PATHS)


def test_istio_routes_the_live_services_own_host() -> None:
    vs = istio.build_virtualservice(resolved(traffic={"router": "istio"}), 5, False)
    host = f"chat-predictor.{NS}.svc.cluster.local"
    assert vs["spec"]["hosts"] == [host]
    dests = [d["destination"]["host"] for d in vs["spec"]["http"][0]["route"]]
    assert dests == [host, f"chat-fp8-predictor.{NS}.svc.cluster.local"]
    assert istio.model_service(resolved(traffic={"router": "istio"})) is None


def test_the_canary_applies_nothing_of_the_live_service() -> None:
    objects = desired_objects(resolved(), CATALOG, 25)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert kinds == [
        ("PodMonitor", "triage-adopted"),
        ("InferenceService", "chat-fp8"),
        ("HTTPRoute", "triage"),
    ]
    monitor = objects[0]["spec"]
    assert monitor["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": "chat",
        "component": "predictor",
    }
    statics = {
        r["targetLabel"]: r["replacement"]
        for r in monitor["podMetricsEndpoints"][0]["relabelings"]
        if "replacement" in r and "sourceLabels" not in r
    }
    assert statics == {"canary": "triage", "variant": "live"}


def test_the_promotion_writes_the_candidate_without_the_canarys_labels() -> None:
    predictor = adopt.promoted_predictor(resolved(), CATALOG)
    assert "labels" not in predictor
    assert "annotations" not in predictor
    model = predictor["model"]
    assert model["storageUri"] == STORAGE_URI
    assert "--quantization=fp8" in model["args"]
    assert "--served-model-name=chat" in model["args"]
    assert predictor["minReplicas"] == 2


def problems_of(data: dict[str, Any]) -> dict[str, str]:
    return {p.path: p.message for p in check_object(data, CATALOG)}


def test_an_adopting_spec_is_valid_without_the_stables_fields() -> None:
    assert problems_of(adopting_canary("triage", NS)) == {}


def test_a_stable_that_names_a_service_names_nothing_else() -> None:
    data = adopting_canary(
        "triage", NS, stable={"name": "live", "targetRef": {"name": "chat"}, "gpu": "nvidia-l4"}
    )
    found = problems_of(data)
    assert "read from InferenceService 'chat'" in found["spec.stable.gpu"]


def test_only_the_stable_names_a_service() -> None:
    candidate = {"name": "fp8", "targetRef": {"name": "other"}}
    found = problems_of(adopting_canary("triage", NS, candidate=candidate))
    assert "only the stable" in found["spec.candidate.targetRef"]


def test_a_variant_written_out_needs_its_storage_and_gpu() -> None:
    found = problems_of(adopting_canary("triage", NS, stable={"name": "bf16"}))
    assert found["spec.stable.storageUri"] == "Field required"
    assert found["spec.stable.gpu"] == "Field required"


@pytest.mark.parametrize("router", ["kserve", "kserve-knative", "llmisvc"])
def test_routers_that_would_rewrite_the_live_service_refuse_it(router: str) -> None:
    found = problems_of(adopting_canary("triage", NS, traffic={"router": router}))
    assert f"the {router} router cannot adopt" in found["spec.traffic.router"]


def test_capacity_and_llminferenceservice_are_refused_with_the_reason() -> None:
    data = adopting_canary(
        "triage",
        NS,
        stable={
            "name": "live",
            "targetRef": {
                "apiVersion": "serving.kserve.io/v1alpha2",
                "kind": "LLMInferenceService",
                "name": "chat",
            },
        },
        capacity={"maxGPUs": 8},
    )
    found = problems_of(data)
    assert "not built" in found["spec.stable.targetRef.kind"]
    assert "never rewrites the live service" in found["spec.capacity"]


def test_too_many_cohort_values_for_the_paths_are_refused() -> None:
    values = [f"v{i}" for i in range(adopt.MAX_ADOPTED_COHORT_VALUES + 1)]
    traffic = {"router": "gateway-api", "cohort": {"header": "x-c", "values": values}}
    found = problems_of(adopting_canary("triage", NS, traffic=traffic))
    assert "64 matches" in found["spec.traffic.cohort.values"]


def test_a_prompt_candidate_is_refused_with_the_reason() -> None:
    candidate = {
        "name": "prompt",
        "storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct",
        "gpu": "nvidia-l40s",
        "systemPrompt": "Be brief.",
    }
    found = problems_of(adopting_canary("triage", NS, candidate=candidate))
    assert "not built with an adopted stable" in found["spec.candidate.systemPrompt"]


@pytest.mark.parametrize("name", ["chat", "chat-predictor", "chat-fp8", "chat-fp8-predictor"])
def test_a_canary_named_like_a_kserve_route_is_refused(name: str) -> None:
    found = problems_of(adopting_canary(name, NS))
    assert "the name of an HTTPRoute KServe writes" in found["metadata.name"]
