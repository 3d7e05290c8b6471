"""Routers: golden files of every router x rollout point, read-back and verify through the fake
API server, capabilities, the in-memory router and ``canaryctl render``.

Golden files live in ``tests/golden/<router>/<case>.yaml``; after an intended change regenerate
them with ``UPDATE_GOLDEN=1 pytest tests/routing/test_routing.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.canaries import CANDIDATE, SHADOW, STABLE, canary_dict, model_canary

from controlplane.cli.main import main
from controlplane.desired import desired_objects, make_router
from controlplane.errors import RouterError, RouterPending
from controlplane.kube.client import Ref
from controlplane.profiles.catalog import load_catalog
from controlplane.routing import gateway_api, istio, kserve, kserve_knative, llmisvc
from controlplane.routing.base import CAPABILITIES, Weights, capability_problems
from controlplane.routing.memory import MemoryRouter
from controlplane.serving.render import ROLES, llm_inference_service
from controlplane.spec.models import ModelCanary
from harness.kube.fake import FakeKube
from harness.kube.fake_kserve import FakeKServe, GatewayRoutes

CATALOG = load_catalog()
GOLDEN = Path(__file__).resolve().parent.parent / "golden"
LLAMA = "hf://meta-llama/Llama-3.1-8B-Instruct"


COHORT = {"header": "x-customer-tier", "values": ["tier_1", "tier_2"]}


def traffic(router: str, cohort: bool = False) -> dict[str, Any]:
    """``spec.traffic`` on ``router`` in these tests: the golden files name these gateways."""
    section: dict[str, Any] = {"router": router}
    if router == "gateway-api":
        section["gateway"] = {"name": "inference-gateway", "namespace": "gateways"}
        section["hosts"] = ["llm.example.com"]
    if router == "istio":
        section["hosts"] = ["llm.example.com"]
        section["gateway"] = {"name": "public", "namespace": "istio-system"}
    if cohort:
        section["cohort"] = COHORT
    return section


def router_objects(c: ModelCanary, weight: int, mirror: bool, outcome: Any) -> list[Any]:
    router = c.spec.traffic.router
    if router == "gateway-api":
        return [gateway_api.build_httproute(c, weight, mirror, outcome)]
    if router == "istio":
        return [istio.build_virtualservice(c, weight, mirror, outcome)]
    if router == "kserve":
        return [kserve.build_inferenceservice(c, CATALOG, weight, mirror, outcome)]
    if router == "kserve-knative":
        return [kserve_knative.build_inferenceservice(c, CATALOG, weight, mirror, outcome)]
    return llmisvc.build_llminferenceservices(c, CATALOG, weight, mirror, outcome)


def check_golden(path: Path, text: str) -> None:
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"missing golden file {path}: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{path} drifted: if intended, regenerate with UPDATE_GOLDEN=1 and review the diff"
    )


def dump(objs: list[Any]) -> str:
    return yaml.safe_dump_all(objs, sort_keys=False)


# (case, cohort, weight, mirror, outcome)
CASES = {
    "step": (False, 25, False, None),
    "cohort": (True, 25, False, None),
    "shadow": (False, 0, True, None),
    "shadow-cohort": (True, 0, True, None),
    "promotion": (False, 0, False, "promoted"),
    "rollback": (False, 0, False, "rolled_back"),
}
ROUTERS = list(CAPABILITIES)


def supported(router: str, case: str) -> bool:
    caps = CAPABILITIES[router]  # type: ignore[index]
    cohort, _, mirror, _ = CASES[case]
    return (caps.cohort or not cohort) and (caps.mirror or not mirror)


GOLDEN_CASES = [(r, c) for r in ROUTERS for c in CASES if supported(r, c)]


@pytest.mark.parametrize(
    ("router", "case"), GOLDEN_CASES, ids=[f"{r}-{c}" for r, c in GOLDEN_CASES]
)
def test_router_golden(router: str, case: str) -> None:
    cohort, weight, mirror, outcome = CASES[case]
    c = model_canary(traffic=traffic(router, cohort))
    check_golden(GOLDEN / router / f"{case}.yaml", dump(router_objects(c, weight, mirror, outcome)))


@pytest.mark.parametrize(
    "quantization", ["none", "fp8", "awq", "gptq", "bitsandbytes-nf4"], ids=str
)
def test_vllm_args_golden(quantization: str) -> None:
    c = model_canary(
        router="llmisvc",
        candidate={
            **CANDIDATE,
            "quantization": quantization,
            "gpuCount": 2,
            "args": ["--enable-prefix-caching"],
        },
    )
    isvc = llm_inference_service(c, "candidate", CATALOG)
    args = isvc["spec"]["template"]["containers"][0]["args"]
    check_golden(GOLDEN / "vllm" / f"{quantization}.yaml", yaml.safe_dump({"args": args}))


def test_full_render_golden(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = canary_dict(
        traffic={
            "router": "gateway-api",
            "gateway": {"name": "inference-gateway", "namespace": "gateways"},
            "cohort": {"header": "x-customer-tier", "values": ["tier_1"]},
        },
        stable={**STABLE, "storageUri": LLAMA},
        candidate={
            **CANDIDATE,
            "storageUri": LLAMA,
            "systemPrompt": "You are a meticulous assistant. Cite sources.",
        },
    )
    spec = tmp_path / "canary.yml"
    spec.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["render", str(spec), "--step", "2"]) == 0
    out = capsys.readouterr().out
    check_golden(GOLDEN / "render" / "gateway-api-step-2.yaml", out)
    kinds = [d["kind"] for d in yaml.safe_load_all(out)]
    assert kinds == ["ConfigMap", "InferenceService", "InferenceService", "HTTPRoute"]


# ----------------------------------------------------------------------------- semantics


def test_cohort_rule_is_the_only_path_to_the_candidate() -> None:
    route = gateway_api.build_httproute(
        model_canary(traffic=traffic("gateway-api", True)), 25, False
    )
    cohort_rule, default_rule = route["spec"]["rules"]
    assert [m["headers"][0]["value"] for m in cohort_rule["matches"]] == ["tier_1", "tier_2"]
    assert "matches" not in default_rule
    assert [b["name"] for b in default_rule["backendRefs"]] == ["support-triage-llm-bf16-predictor"]


def test_istio_cohort_route_comes_first_and_default_is_stable_only() -> None:
    vs = istio.build_virtualservice(model_canary(traffic=traffic("istio", True)), 25, True)
    first, second = vs["spec"]["http"]
    assert first["match"][0] == {"headers": {"x-customer-tier": {"exact": "tier_1"}}}
    assert first["mirrorPercentage"] == {"value": 100.0}
    assert "mirror" not in second
    assert vs["spec"]["gateways"] == ["istio-system/public"]


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("weight", [0, 1, 5, 33, 50, 99, 100])
def test_weights_read_back_from_built_objects(router: str, weight: int) -> None:
    c = model_canary(traffic=traffic(router))
    objs = router_objects(c, weight, False, None)
    module = {
        "gateway-api": gateway_api,
        "istio": istio,
        "kserve": kserve,
        "kserve-knative": kserve_knative,
    }.get(router)
    got = llmisvc.weights_of(c, *objs) if module is None else module.weights_of(c, objs[0])
    assert got == Weights(weight)


@pytest.mark.parametrize(
    ("router", "fields"),
    [
        ("kserve", ["spec.traffic.cohort", "spec.shadow"]),
        ("kserve-knative", ["spec.traffic.cohort", "spec.shadow"]),
        ("llmisvc", ["spec.traffic.cohort", "spec.shadow"]),
        ("gateway-api", []),
        ("istio", []),
    ],
)
def test_capability_problems_name_router_and_field(router: str, fields: list[str]) -> None:
    problems = capability_problems(model_canary(traffic=traffic(router, True)))
    assert [p.path for p in problems] == fields
    assert all(router in p.message for p in problems)


@pytest.mark.parametrize("router", ["kserve", "kserve-knative", "llmisvc"])
def test_mirror_on_a_router_without_mirroring_is_a_router_error(router: str) -> None:
    with pytest.raises(RouterError, match=router):
        router_objects(model_canary(traffic=traffic(router)), 0, True, None)


def test_kserve_replicas_are_what_the_canary_names() -> None:
    # KServe v0.20.0 gives a canary entry without minReplicas ceil(stable x percent) pods and
    # lowers the stable's minimum by the canary's replicas (tests/controller/
    # test_controller_kserve.py observes it): the entry names its replicas, the stable asks
    # for both, maxReplicas (refused on a canary entry) stays off it, and no HPA moves them.
    c = model_canary(router="kserve")
    isvc = kserve.build_inferenceservice(c, CATALOG, 5, False)
    [entry] = isvc["spec"]["canary"]
    assert entry["trafficPercent"] == 5
    assert entry["predictor"]["name"] == "nf4"
    assert entry["predictor"]["minReplicas"] == c.spec.candidate.replicas
    assert "maxReplicas" not in entry["predictor"]
    both = c.spec.stable.replicas + c.spec.candidate.replicas
    assert isvc["spec"]["predictor"]["minReplicas"] == both
    assert isvc["spec"]["predictor"]["maxReplicas"] == both
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "none"
    # a promotion's roll phase: the stable slot runs the candidate's replicas next to the
    # canary's; once dropped, the candidate's replicas alone
    rolling = kserve.build_inferenceservice(c, CATALOG, 0, False, "promoted")
    assert rolling["spec"]["predictor"]["minReplicas"] == 2 * c.spec.candidate.replicas
    done = kserve.Live(serving="nf4", has_canary=True, rolled_out=True)
    promoted = kserve.build_inferenceservice(c, CATALOG, 0, False, "promoted", done)
    assert promoted["spec"]["predictor"]["minReplicas"] == c.spec.candidate.replicas


@pytest.mark.parametrize(
    ("backends", "weight"),
    [
        ([("support-triage-llm-predictor", None)], 0),
        ([("support-triage-llm-predictor", 95), ("support-triage-llm-nf4-predictor", 5)], 5),
        ([("support-triage-llm-predictor", 0), ("support-triage-llm-nf4-predictor", 100)], 100),
    ],
)
def test_kserve_weights_are_read_from_the_route_in_effect(
    backends: list[tuple[str, int | None]], weight: int
) -> None:
    refs = [{"name": n, **({} if w is None else {"weight": w})} for n, w in backends]
    route = {"metadata": {"name": "support-triage-llm"}, "spec": {"rules": [{"backendRefs": refs}]}}
    assert kserve.route_weights(model_canary(router="kserve"), route) == Weights(weight)
    # after promotion the stable predictor's Service serves the candidate
    if weight == 0:
        live = kserve.Live(serving="nf4")
        assert kserve.route_weights(model_canary(router="kserve"), route, live) == Weights(100)
        # after a renamed promotion the stable Service is named after the candidate
        renamed = {
            "metadata": route["metadata"],
            "spec": {"rules": [{"backendRefs": [{"name": "support-triage-llm-nf4-predictor"}]}]},
        }
        live = kserve.Live(predictor_name="nf4", serving="nf4")
        assert kserve.route_weights(model_canary(router="kserve"), renamed, live) == Weights(100)


def test_kserve_route_to_a_stranger_is_a_router_error() -> None:
    refs = [{"name": "someone-else-predictor"}]
    route = {"metadata": {"name": "support-triage-llm"}, "spec": {"rules": [{"backendRefs": refs}]}}
    with pytest.raises(RouterError, match="someone-else-predictor"):
        kserve.route_weights(model_canary(router="kserve"), route)


@pytest.mark.parametrize(("routes", "in_effect"), [("v0.20.0", 0), ("ready-canaries", 25)])
def test_kserve_verify_reads_what_kserve_routed(routes: GatewayRoutes, in_effect: int) -> None:
    c = model_canary(router="kserve")
    kube = seeded(c)
    fake = FakeKServe(kube, now=lambda: 1_700_000_000.0, gateway_routes=routes)
    r = make_router("kserve", kube, CATALOG)
    r.set_weights(c, 25, False)
    with pytest.raises(RouterError, match="not written HTTPRoute"):
        r.verify(c, Weights(25))  # KServe has not reconciled yet
    fake.tick()
    assert r.get_weights(c) == Weights(in_effect)
    if in_effect == 25:
        r.verify(c, Weights(25))
    else:
        with pytest.raises(RouterError, match=r"KServe v0\.20\.0 routes none"):
            r.verify(c, Weights(25))


def test_kserve_canary_entry_names_its_model_container() -> None:
    # KServe v0.20.0's CRD requires spec.canary[].predictor.model.name (a corev1.Container name);
    # tests/manifests/test_render_real_server.py holds it against the real API server.
    isvc = kserve.build_inferenceservice(model_canary(router="kserve"), CATALOG, 5, False)
    [entry] = isvc["spec"]["canary"]
    assert entry["predictor"]["model"]["name"] == kserve.CONTAINER_NAME == "kserve-container"
    assert entry["predictor"]["model"]["modelFormat"] == {"name": "huggingface"}


# ----------------------------------------------------------------------------- apply + verify


def finalize(r: Any, c: ModelCanary, outcome: Any, fake: FakeKServe) -> None:
    """Finalize as the controller does: again after KServe's tick while a phase is pending."""
    for _ in range(3):
        try:
            r.finalize(c, outcome)
        except RouterPending:
            fake.tick()
            continue
        fake.tick()
        return
    raise AssertionError("finalize never completed")


def seeded(c: ModelCanary) -> FakeKube:
    """A fake cluster for ``c``: with its two LLMInferenceServices on the llmisvc router."""
    kube = FakeKube(now=lambda: 1_700_000_000.0)
    if c.spec.traffic.router == "llmisvc":
        for role in ROLES:
            kube.create(llm_inference_service(c, role, CATALOG))
    return kube


@pytest.mark.parametrize("router", ROUTERS)
def test_apply_read_back_verify_and_finalize(router: str) -> None:
    c = model_canary(traffic=traffic(router))
    kube = seeded(c)
    r = make_router(router, kube, CATALOG)  # type: ignore[arg-type]
    # the kserve router reads KServe's own HTTPRoute: a KServe that splits must write it
    fake = FakeKServe(kube, now=lambda: 1_700_000_000.0, gateway_routes="ready-canaries")
    for weight in (0, 5, 25, 75, 100):
        r.set_weights(c, weight, False)
        fake.tick()
        assert r.get_weights(c) == Weights(weight)
        r.verify(c, Weights(weight))
    with pytest.raises(RouterError, match="expected"):
        r.verify(c, Weights(50))
    r.set_weights(c, 25, False)
    finalize(r, c, "promoted", fake)
    assert r.get_weights(c) == Weights(100)
    r.finalize(c, "rolled_back")
    fake.tick()
    assert r.get_weights(c) == Weights(0)


@pytest.mark.parametrize("router", ["gateway-api", "istio"])
def test_mirror_is_read_back(router: str) -> None:
    c = model_canary(traffic=traffic(router))
    kube = seeded(c)
    r = make_router(router, kube, CATALOG)  # type: ignore[arg-type]
    r.set_weights(c, 0, True)
    r.verify(c, Weights(0, mirror=True))
    r.set_weights(c, 5, False)
    with pytest.raises(RouterError):
        r.verify(c, Weights(5, mirror=True))


def test_promotion_removes_knative_percent_and_kserve_canary_entry() -> None:
    for router, ref_kind in (
        ("kserve-knative", "InferenceService"),
        ("kserve", "InferenceService"),
    ):
        c = model_canary(traffic=traffic(router))
        kube = seeded(c)
        r = make_router(router, kube, CATALOG)  # type: ignore[arg-type]
        fake = FakeKServe(kube, now=lambda: 1_700_000_000.0)
        r.set_weights(c, 25, False)
        fake.tick()
        finalize(r, c, "promoted", fake)
        stored = kube.get(
            Ref("serving.kserve.io/v1beta1", ref_kind, "ml-serving", "support-triage-llm")
        )
        assert "canary" not in stored["spec"]
        assert "canaryTrafficPercent" not in stored["spec"]["predictor"]


def test_verify_sees_a_route_changed_behind_its_back() -> None:
    c = model_canary(traffic=traffic("gateway-api"))
    kube = seeded(c)
    r = make_router("gateway-api", kube, CATALOG)
    r.set_weights(c, 5, False)
    ref = Ref(gateway_api.API_VERSION, "HTTPRoute", "ml-serving", "support-triage")
    route = kube.get(ref)
    route["spec"]["rules"][0]["backendRefs"][1]["weight"] = 50
    kube.replace(route)
    with pytest.raises(RouterError, match="candidate 34%"):
        r.verify(c, Weights(5))


def _parent(
    seen: int, accepted: str = "True", name: str = "inference-gateway", **ref: str
) -> dict[str, Any]:
    """One ``status.parents`` entry as a Gateway controller writes it (Traefik v3.6.12)."""
    parent_ref = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": name, **ref}
    parent_ref.setdefault("namespace", "gateways")
    condition = {"type": "Accepted", "status": accepted, "observedGeneration": seen}
    condition["reason"] = "Accepted" if accepted == "True" else "NotAllowedByListeners"
    return {
        "parentRef": parent_ref,
        "controllerName": "traefik.io/gateway-controller",
        "conditions": [condition],
    }


@pytest.mark.parametrize(
    ("parents", "raises", "match"),
    [
        pytest.param(None, None, "", id="no-controller-reports"),
        pytest.param([_parent(3)], None, "", id="current-generation"),
        pytest.param([_parent(4)], None, "", id="a-later-generation"),
        pytest.param([_parent(2)], RouterPending, "has not taken up generation 3", id="older"),
        pytest.param(
            [_parent(3, name="other")], None, "", id="another-gateway-s-parent-is-not-ours"
        ),
        pytest.param([_parent(2, sectionName="https")], None, "", id="another-section-is-not-ours"),
        pytest.param(
            [_parent(3), _parent(2, namespace="gateways")],
            RouterPending,
            "reports 2",
            id="every-report-on-our-parent-counts",
        ),
        pytest.param(
            [_parent(3, accepted="False")],
            RouterError,
            "does not accept the HTTPRoute: NotAllowedByListeners",
            id="refused",
        ),
        pytest.param(
            [{"parentRef": _parent(3)["parentRef"], "conditions": []}],
            RouterPending,
            "reports none",
            id="no-accepted-condition-yet",
        ),
    ],
)
def test_weights_count_once_the_gateway_s_controller_took_them_up(
    parents: list[dict[str, Any]] | None, raises: type[Exception] | None, match: str
) -> None:
    c = model_canary(traffic=traffic("gateway-api"))
    route = gateway_api.build_httproute(c, 25, False)
    route["metadata"]["generation"] = 3
    if parents is not None:
        route["status"] = {"parents": parents}
    if raises is None:
        gateway_api.taken_up(c, route)
    else:
        with pytest.raises(raises, match=match) as caught:
            gateway_api.taken_up(c, route)
        assert isinstance(caught.value, RouterPending) == (raises is RouterPending)


def test_verify_waits_for_the_gateway_to_take_up_the_route() -> None:
    c = model_canary(traffic=traffic("gateway-api"))
    kube = seeded(c)
    r = make_router("gateway-api", kube, CATALOG)
    r.set_weights(c, 5, False)
    ref = Ref(gateway_api.API_VERSION, "HTTPRoute", "ml-serving", "support-triage")
    r.verify(c, Weights(5))  # nobody reports on the route: the read-back decides
    kube.system_replace_status(ref, {"parents": [_parent(1)]})
    r.set_weights(c, 25, False)  # generation 2
    with pytest.raises(RouterPending, match="generation 2"):
        r.verify(c, Weights(25))
    kube.system_replace_status(ref, {"parents": [_parent(2)]})
    r.verify(c, Weights(25))
    with pytest.raises(RouterError, match="candidate 25%"):  # the weights still come first
        r.verify(c, Weights(75))


@pytest.mark.parametrize("router", ROUTERS)
def test_reading_before_applying_is_a_router_error(router: str) -> None:
    kube = FakeKube()
    with pytest.raises(RouterError, match=r"does not exist|not written"):
        make_router(router, kube, CATALOG).get_weights(model_canary(traffic=traffic(router)))  # type: ignore[arg-type]


def test_memory_router_records_history_and_checks_capabilities() -> None:
    r = MemoryRouter()
    c = model_canary(traffic=traffic("gateway-api"))
    r.set_weights(c, 5, False)
    r.verify(c, Weights(5))
    r.finalize(c, "promoted")
    assert r.get_weights(c) == Weights(100)
    assert [h for _, h in r.history] == [Weights(5), "promoted"]
    with pytest.raises(RouterError):
        r.set_weights(model_canary(router="kserve"), 0, True)
    with pytest.raises(RouterError):
        MemoryRouter().get_weights(c)


# ----------------------------------------------------------------------- the contract's defaults


def test_the_contract_example_is_valid_for_every_router() -> None:
    # canary-spec.md's example names no gateway and no hosts: each router has a default
    for router in ROUTERS:
        mirrors = router in ("gateway-api", "istio")
        c = model_canary(router=router, shadow=SHADOW if mirrors else None)
        assert capability_problems(c) == [], router


def test_gateway_api_attaches_to_kserves_gateway_by_default() -> None:
    route = gateway_api.build_httproute(model_canary(router="gateway-api"), 5, False)
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "kserve-ingress-gateway",
            "namespace": "kserve",
        }
    ]
    assert "hostnames" not in route["spec"]


@pytest.mark.parametrize("cohort", [False, True])
def test_gateway_api_backends_each_carry_their_variant(cohort: bool) -> None:
    # a filter on each backendRef: Envoy Gateway gives each backend an Envoy cluster of its own,
    # so the error rate can tell stable's response codes from the candidate's
    route = gateway_api.build_httproute(
        model_canary(traffic=traffic("gateway-api", cohort)), 25, True
    )
    services = {
        "support-triage-llm-bf16-predictor": "bf16",
        "support-triage-llm-nf4-predictor": "nf4",
    }
    for rule in route["spec"]["rules"]:
        for ref in rule["backendRefs"]:
            [modifier] = ref["filters"]
            header = modifier["requestHeaderModifier"]["set"]
            assert header == [{"name": "x-canary-variant", "value": services[ref["name"]]}]
        for mirror in rule.get("filters") or []:
            assert "filters" not in mirror["requestMirror"]["backendRef"]


def test_istio_routes_the_models_own_host_by_default() -> None:
    c = model_canary(router="istio")  # no traffic.gateway, no traffic.hosts
    host = "support-triage-llm.ml-serving.svc.cluster.local"
    vs = istio.build_virtualservice(c, 5, False)
    assert vs["spec"]["hosts"] == [host]
    service = istio.model_service(c)
    assert service is not None
    assert service["metadata"]["name"] == "support-triage-llm"
    assert "selector" not in service["spec"]  # no endpoints: the VirtualService routes it
    kinds = [o["kind"] for o in desired_objects(c, CATALOG, 5, False)]
    assert kinds == ["InferenceService", "InferenceService", "Service", "VirtualService"]
    # given hosts, no Service of ours
    named = model_canary(traffic=traffic("istio"))
    assert istio.model_service(named) is None
    assert "Service" not in [o["kind"] for o in desired_objects(named, CATALOG, 5, False)]


# ----------------------------------------------------------------------------- kserve promotion

DEPLOYMENT_REF = ("apps/v1", "Deployment", "ml-serving")


def deployments(kube: FakeKube) -> dict[str, tuple[str, int]]:
    """Deployment -> (variant of its pod template, generation)."""
    return {
        d["metadata"]["name"]: (
            d["spec"]["template"]["metadata"]["labels"]["canary.controlplane.dev/variant"],
            int(d["metadata"]["generation"]),
        )
        for d in kube.list("apps/v1", "Deployment", "ml-serving")
    }


def test_promotion_with_another_checkpoint_is_kserves_rename() -> None:
    # KServe's own promotion (canary_controller_test.go, v0.20.0): spec.predictor becomes the
    # canary entry, name included; the candidate's Deployment is adopted unchanged
    c = model_canary(
        router="kserve",
        candidate={**CANDIDATE, "storageUri": "hf://m/x-awq", "quantization": "awq"},
    )
    assert kserve.renames_on_promotion(c)
    stepping = kserve.build_inferenceservice(c, CATALOG, 25, False)
    [entry] = stepping["spec"]["canary"]
    promoted = kserve.build_inferenceservice(c, CATALOG, 0, False, "promoted", kserve.Live())
    predictor = promoted["spec"]["predictor"]
    assert "canary" not in promoted["spec"]
    assert predictor["name"] == "nf4"
    slot = {k: v for k, v in predictor.items() if k != "maxReplicas"}
    # the pod template KServe renders is the canary's own; the container name, required on a
    # canary entry and refused on spec.predictor (validatePredictor), is KServe's default
    assert slot["model"] == {k: v for k, v in entry["predictor"]["model"].items() if k != "name"}
    assert {**slot, "model": entry["predictor"]["model"]} == entry["predictor"]


def test_every_build_keeps_the_live_predictor_name() -> None:
    # KServe's webhook refuses a predictor.name change without a model change: after a renamed
    # promotion the next rollout must keep the name (validatePredictorNameChange)
    c = model_canary(router="kserve")
    live = kserve.Live(predictor_name="bf16", serving="bf16")
    for weight, outcome in ((5, None), (0, "rolled_back"), (0, "promoted")):
        obj = kserve.build_inferenceservice(c, CATALOG, weight, False, outcome, live)
        assert obj["spec"]["predictor"]["name"] == "bf16", outcome
    fresh = kserve.build_inferenceservice(c, CATALOG, 5, False)
    assert "name" not in fresh["spec"]["predictor"]


@pytest.mark.parametrize(
    ("live", "phase"),
    [
        (None, "roll"),
        (kserve.Live(serving="bf16", has_canary=True, rolled_out=True), "roll"),
        (kserve.Live(serving="nf4", has_canary=True, rolled_out=False), "roll"),
        (kserve.Live(serving="nf4", has_canary=True, rolled_out=True), "drop"),
        (kserve.Live(serving="nf4", has_canary=False, rolled_out=False), "drop"),
    ],
    ids=["nothing-live", "stable-serving", "rolling", "rolled-out", "dropped"],
)
def test_promotion_of_the_same_checkpoint_rolls_under_a_full_canary(
    live: kserve.Live | None, phase: str
) -> None:
    c = model_canary(router="kserve")
    assert not kserve.renames_on_promotion(c)
    assert kserve.promotion_phase(c, live) == phase
    obj = kserve.build_inferenceservice(c, CATALOG, 0, False, "promoted", live)
    assert obj["spec"]["predictor"]["labels"]["canary.controlplane.dev/variant"] == "nf4"
    entries = [(e["predictor"]["name"], e["trafficPercent"]) for e in obj["spec"].get("canary", [])]
    assert entries == ([("nf4", 100)] if phase == "roll" else [])


def test_live_rolled_out_needs_the_template_of_the_new_predictor() -> None:
    isvc = {"spec": {"predictor": {"labels": {"canary.controlplane.dev/variant": "nf4"}}}}

    def deployment(variant: str, generation: int, observed: int, updated: int) -> dict[str, Any]:
        return {
            "metadata": {"generation": generation},
            "spec": {
                "replicas": 2,
                "template": {"metadata": {"labels": {"canary.controlplane.dev/variant": variant}}},
            },
            "status": {
                "observedGeneration": observed,
                "replicas": 2,
                "updatedReplicas": updated,
                "availableReplicas": 2,
            },
        }

    def rolled(d: dict[str, Any] | None) -> bool:
        live = kserve.live_of(isvc, d)
        assert live is not None
        return live.rolled_out

    assert rolled(deployment("nf4", 3, 3, 2))
    assert not rolled(deployment("bf16", 2, 2, 2))  # KServe has not reconciled the change yet
    assert not rolled(deployment("nf4", 3, 2, 2))  # the Deployment controller has not seen it
    assert not rolled(deployment("nf4", 3, 3, 1))  # still rolling
    assert not rolled(None)
    assert kserve.live_of(None, None) is None


def test_kserve_router_promotes_in_two_phases_without_restarting_serving_pods() -> None:
    c = model_canary(router="kserve")
    kube = seeded(c)
    fake = FakeKServe(kube, now=lambda: 1_700_000_000.0, gateway_routes="ready-canaries")
    r = make_router("kserve", kube, CATALOG)
    r.set_weights(c, 75, False)
    fake.tick()
    r.verify(c, Weights(75))
    canary_pods = deployments(kube)["support-triage-llm-nf4-predictor"]
    with pytest.raises(RouterPending, match="canary serves 100%"):
        r.finalize(c, "promoted")
    fake.tick()
    # phase 1: all traffic on the candidate's running pods, the stable Deployment rolls
    r.verify(c, Weights(100))
    seen = deployments(kube)
    assert seen["support-triage-llm-nf4-predictor"] == canary_pods
    assert seen["support-triage-llm-predictor"][0] == "nf4"
    route = kube.get(Ref(kserve.ROUTE_API_VERSION, "HTTPRoute", "ml-serving", "support-triage-llm"))
    weights = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
    assert weights == {"support-triage-llm-predictor": 0, "support-triage-llm-nf4-predictor": 100}
    # phase 2: the rollout is complete, the entry goes; the stable Service serves the candidate
    r.finalize(c, "promoted")
    fake.tick()
    assert set(deployments(kube)) == {"support-triage-llm-predictor"}
    r.verify(c, Weights(100))


def test_kserve_router_renames_and_keeps_the_candidates_deployment() -> None:
    c = model_canary(
        router="kserve",
        candidate={**CANDIDATE, "storageUri": "hf://m/x-awq", "quantization": "awq"},
    )
    kube = seeded(c)
    fake = FakeKServe(kube, now=lambda: 1_700_000_000.0, gateway_routes="ready-canaries")
    r = make_router("kserve", kube, CATALOG)
    r.set_weights(c, 25, False)
    fake.tick()
    before = deployments(kube)["support-triage-llm-nf4-predictor"]
    r.finalize(c, "promoted")  # one phase: nothing pending
    fake.tick()
    assert deployments(kube) == {"support-triage-llm-nf4-predictor": before}
    r.verify(c, Weights(100))
    # the next rollout of the promoted model keeps the name KServe now serves under
    isvc = kube.get(kserve.single_ref(c))
    assert isvc["spec"]["predictor"]["name"] == "nf4"


# ----------------------------------------------------------------------------- canaryctl render


# the spec file of the ``canaryctl render`` tests
KSERVE_SPEC = yaml.safe_dump(canary_dict(router="kserve", shadow=None))


@pytest.mark.parametrize(
    ("flags", "percent"),
    [([], 0), (["--step", "1"], 5), (["--step", "4"], 100), (["--rolled-back"], None)],
    ids=["start", "step-1", "step-4", "rolled-back"],
)
def test_render_json_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], percent: int | None
) -> None:
    spec = tmp_path / "canary.yml"
    spec.write_text(KSERVE_SPEC, encoding="utf-8")
    assert main(["render", str(spec), "-o", "json", *flags]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["kind"] == "List"
    [isvc] = listing["items"]
    entries = isvc["spec"].get("canary", [])
    assert [e["trafficPercent"] for e in entries] == ([] if percent is None else [percent])


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--step", "9"], "--step must be within 1..4"), (["--shadow"], "no shadow phase")],
    ids=["step-out-of-range", "shadow-without-shadow"],
)
def test_render_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    spec = tmp_path / "canary.yml"
    spec.write_text(KSERVE_SPEC, encoding="utf-8")
    assert main(["render", str(spec), *flags]) == 2
    assert message in capsys.readouterr().err


def test_render_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(tmp_path / "nope.yml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_desired_objects_order() -> None:
    c = model_canary(
        traffic=traffic("gateway-api"),
        candidate={**CANDIDATE, "systemPrompt": "Be brief.", "storageUri": LLAMA},
    )
    kinds = [o["kind"] for o in desired_objects(c, CATALOG, 5)]
    assert kinds == ["ConfigMap", "InferenceService", "InferenceService", "HTTPRoute"]
