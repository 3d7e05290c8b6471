"""Whether a ModelCanary is valid for this product: the one entry point for every caller.

Owns the rules that consult the layers above spec (the sequential judge, histogram resolution,
the vLLM version, GPU fit, router capabilities), run inside :mod:`controlplane.spec.rules`' walk,
so a spec is checked the same by ``canaryctl``, the controller's admission, the git source and the
tests; and the warnings a valid spec may still get (only ``validate`` prints them). Pure given a
catalogue. See docs/spec.md, "Validation rules".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from controlplane.analysis import resolution
from controlplane.analysis.sequential import support as sequential_support
from controlplane.capacity import notes as capacity_notes
from controlplane.capacity import plan as capacity_plan
from controlplane.capacity.estimate import sizes_of
from controlplane.errors import Problem, ProfileError, SpecError
from controlplane.profiles.catalog import Catalog, load_catalog
from controlplane.profiles.measured import preferred_fit
from controlplane.routing.base import capability_problems
from controlplane.serving import adopt, object_names
from controlplane.serving.render import isvc_name
from controlplane.serving.versions import version_problems, vllm_version
from controlplane.spec import rules
from controlplane.spec.document import Document
from controlplane.spec.load import build, parse_text, read_source
from controlplane.spec.models import SINGLE_SERVICE_ROUTERS
from controlplane.spec.paths import Loc, format_path
from controlplane.spec.words import did_you_mean

if TYPE_CHECKING:
    from controlplane.spec.models import CheckSpec, ModelCanary, VariantSpec


class ProductRules:
    """The product's rules of a spec that need the layers above spec, on one catalogue: the
    :class:`~controlplane.spec.rules.RuleHooks` that :func:`~controlplane.spec.rules.problems`
    calls."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def check(self, canary: ModelCanary, check: CheckSpec, loc: Loc) -> list[Problem]:
        """What ``judge: sequential`` does not support in this check."""
        return sequential_support.problems(canary, check, format_path(loc))

    def versions(self, canary: ModelCanary) -> list[Problem]:
        """A vLLM version the catalogue's quantization methods do not serve."""
        return version_problems(canary, self.catalog)

    def variant(self, canary: ModelCanary, variant: VariantSpec, loc: Loc) -> list[Problem]:
        """An unknown GPU, a quantization the catalogue lacks, a model that does not fit."""
        if self.catalog.gpu(variant.gpu) is None:
            known = self.catalog.gpu_names()
            message = (
                f"unknown GPU {variant.gpu!r}{did_you_mean(variant.gpu, known)} "
                f"(known: {', '.join(known)})"
            )
            return [Problem(path=format_path((*loc, "gpu")), message=message)]
        try:
            report = preferred_fit(canary.spec.model, variant, self.catalog)
        except ProfileError as exc:
            return [Problem(path=format_path((*loc, "quantization")), message=str(exc))]
        if not report.fits:
            message = f"the model does not fit: {report.message}"
            return [Problem(path=format_path((*loc, "gpu")), message=message)]
        return []

    def traffic(self, canary: ModelCanary) -> list[Problem]:
        """What the router cannot do (cohort, mirror) or needs (gateway, hosts)."""
        return capability_problems(canary)

    def canary(self, canary: ModelCanary) -> list[Problem]:
        """Latency thresholds the canary's vLLM histograms cannot resolve; a capacity plan its
        router cannot run or its GPU budget cannot hold."""
        found = resolution.problems(canary, vllm_version(canary))
        return [
            *found,
            *route_name_problems(canary),
            *adoption_problems(canary),
            *autoscaling_problems(canary),
            *capacity_problems(canary, self.catalog),
        ]


"""Routers that serve both variants from one InferenceService, whose canary replicas KServe
derives itself (docs/capacity.md, "Routers")."""


ADOPTING_ROUTERS = ("gateway-api", "istio")
"""Routers that can take over the split of a live InferenceService's clients without rewriting
it (docs/adopt.md, "Routers")."""

_NOT_ADOPTING = {
    "kserve": "it would add a canary entry to the live InferenceService, and KServe v0.20.0 then "
    "lowers the stable's replicas by the canary's (predictor.go, canaryReplicaCount) and routes "
    "the entry nothing (httproute_reconciler.go)",
    "kserve-knative": "it would rewrite the live InferenceService's predictor to start the "
    "canary, so Knative makes a new revision of it",
    "llmisvc": "it would rewrite the live LLMInferenceService's spec.router.route to put it in a "
    "routing group",
}


def route_name_problems(canary: ModelCanary) -> list[Problem]:
    """A ``gateway-api`` canary whose HTTPRoute (named after the canary) would have the name of
    an HTTPRoute KServe writes for one of its InferenceServices: ``<isvc>`` and
    ``<isvc>-predictor`` (``httproute_reconciler.go``, KServe v0.20.0), for the candidate's,
    the stable's, or the live service it adopts. The two would be one object."""
    if canary.spec.traffic.router != "gateway-api":
        return []
    route = object_names.route_name(canary.metadata.name)
    services = [isvc_name(canary, "stable"), isvc_name(canary, "candidate")]
    taken = {name for isvc in services for name in (isvc, object_names.predictor_service(isvc))}
    if route not in taken:
        return []
    message = (
        f"the canary's HTTPRoute would be named {route!r}, the name of an HTTPRoute KServe writes "
        f"for InferenceService {route.removesuffix(object_names.PREDICTOR_SUFFIX)!r}: name the "
        "canary otherwise"
    )
    return [Problem(path="metadata.name", message=message)]


def adoption_problems(canary: ModelCanary) -> list[Problem]:
    """A ``stable.targetRef`` on a router that cannot adopt without rewriting the live
    service, of a kind not adopted yet, or with ``spec.capacity`` (which resizes the stable)."""
    ref = canary.spec.stable.target_ref
    if ref is None:
        return []
    found: list[Problem] = []
    router = canary.spec.traffic.router
    if router not in ADOPTING_ROUTERS:
        why = _NOT_ADOPTING.get(router, "it cannot")
        message = (
            f"the {router} router cannot adopt a live service: {why}. Adopt it with router "
            f"gateway-api or istio, which route to it as it is"
        )
        found.append(Problem(path="spec.traffic.router", message=message))
    expected = (
        "serving.kserve.io/v1beta1"
        if ref.kind == "InferenceService"
        else ("serving.kserve.io/v1alpha2")
    )
    if ref.kind == "LLMInferenceService":
        message = (
            "adopting an LLMInferenceService is not built: splitting its traffic needs its "
            "spec.router.route rewritten (a routing group), which is the live service's own. "
            "Name an InferenceService, or describe the stable in full with router llmisvc"
        )
        found.append(Problem(path="spec.stable.targetRef.kind", message=message))
    elif ref.api_version != expected:
        message = f"a {ref.kind} is {expected}, got {ref.api_version}"
        found.append(Problem(path="spec.stable.targetRef.apiVersion", message=message))
    cohort = canary.spec.traffic.cohort
    if cohort is not None and router == "gateway-api":
        limit = adopt.MAX_ADOPTED_COHORT_VALUES
        if len(cohort.values) > limit:
            message = (
                f"at most {limit} values with an adopted stable: the cohort rule matches each "
                f"value on each of the {len(adopt.INFERENCE_PATHS)} inference paths, and Gateway "
                "API allows 64 matches in a rule"
            )
            found.append(Problem(path="spec.traffic.cohort.values", message=message))
    if canary.spec.candidate.system_prompt is not None:
        message = (
            "a promotion writes the candidate into the live service, and the chat template of a "
            "systemPrompt is a ConfigMap of the candidate's, deleted with it: not built with an "
            "adopted stable"
        )
        found.append(Problem(path="spec.candidate.systemPrompt", message=message))
    if canary.spec.capacity is not None and canary.spec.capacity.mode == "plan":
        message = (
            "capacity would resize the adopted stable as traffic leaves it, and the canary never "
            "rewrites the live service before promotion: size the candidate with its replicas "
            "and autoscaling"
        )
        found.append(Problem(path="spec.capacity", message=message))
    return found


def autoscaling_problems(canary: ModelCanary) -> list[Problem]:
    """A variant's ``autoscaling`` whose ``maxReplicas`` is below its ``replicas``, or on a
    router that cannot keep it: ``kserve`` / ``kserve-knative`` (KServe refuses autoscaling
    fields on a canary entry) and ``llmisvc`` (not built for LLMInferenceServices)."""
    found: list[Problem] = []
    router = canary.spec.traffic.router
    for role, variant in (("stable", canary.spec.stable), ("candidate", canary.spec.candidate)):
        scaling = variant.autoscaling
        if scaling is None:
            continue
        path = f"spec.{role}.autoscaling"
        if router in (*SINGLE_SERVICE_ROUTERS, "llmisvc"):
            message = (
                f"the {router} router cannot keep a variant's autoscaling: it is kept on "
                "gateway-api and istio, where each variant is its own InferenceService"
            )
            found.append(Problem(path=path, message=message))
        elif scaling.max_replicas < variant.replicas:
            message = (
                f"maxReplicas {scaling.max_replicas} is below the variant's replicas "
                f"{variant.replicas}: the autoscaler runs between the two"
            )
            found.append(Problem(path=f"{path}.maxReplicas", message=message))
    return found


def capacity_problems(canary: ModelCanary, catalog: Catalog) -> list[Problem]:
    """A capacity plan asked for on a router that cannot size each variant on its own, a plan
    that holds more GPUs than its budget at some moment (the first such change is named), or
    fixed replicas that a variant outgrows at some step without ``acceptOverload``. An unknown
    GPU is the variant rule's to report."""
    asked = canary.spec.capacity
    router = canary.spec.traffic.router
    if asked is not None and asked.mode == "plan" and router in SINGLE_SERVICE_ROUTERS:
        message = (
            f"the {router} router serves both variants from one InferenceService, whose canary "
            "replicas KServe sizes itself: capacity follows traffic on gateway-api, istio and "
            "llmisvc (mode: fixed says so here)"
        )
        return [Problem(path="spec.capacity", message=message)]
    try:
        sizes = sizes_of(canary, catalog)
    except ProfileError:
        return []
    if asked is not None and asked.mode == "fixed":
        overload = capacity_notes.fixed_overload(canary, sizes)
        if overload is None or asked.accept_overload:
            return []
        message = f"{overload}: remove mode fixed to follow the plan, or set acceptOverload"
        return [Problem(path="spec.capacity.mode", message=message)]
    spec = canary.spec.plan
    if spec is None:
        return []
    stages = capacity_plan.rollout_plan(canary, sizes, capacity_plan.sized_demand(canary, sizes))
    overrun = capacity_plan.first_overrun(stages, sizes)
    if overrun is None:
        return []
    stage, moved = overrun
    what = "its rollback" if moved is stage.rollback else stage.name
    field = "maxGPUs" if spec.max_gpus == moved.budget else "maxSurgeGPUs"
    message = (
        f"{what} needs {moved.peak_gpus(sizes)} GPUs while the weights move ({moved.before} "
        f"replicas), more than the budget of {moved.budget}: raise it, or lower the headroom "
        f"({spec.headroom:g}) or the stable's replicas"
    )
    return [Problem(path=f"spec.capacity.{field}", message=message)]


def validate(canary: ModelCanary, catalog: Catalog | None = None) -> list[Problem]:
    """Every cross-field problem of ``canary``, the spec's and the product's (paths set; no
    lines or file: see check_*). ``catalog`` None: the packaged GPU catalogue.
    """
    product = ProductRules(catalog if catalog is not None else load_catalog())
    return rules.problems(canary, product)


More = Callable[["ModelCanary"], list[Problem]]
"""More rules a caller runs on each canary that builds (paths set; the lines are added here):
``canaryctl validate --cluster``'s, which read the live service a stable adopts."""


def _check_document(doc: Document, catalog: Catalog | None, more: More | None) -> list[Problem]:
    canary, problems = build(doc)
    if canary is not None:
        problems.extend(doc.problem(p.path, p.message) for p in validate(canary, catalog))
        if more is not None and not problems:
            problems.extend(doc.problem(p.path, p.message) for p in more(canary))
    return sorted(problems, key=lambda p: p.line if p.line is not None else 0)


def check_text(
    source: str | bytes,
    filename: str | None = None,
    catalog: Catalog | None = None,
    *,
    more: More | None = None,
) -> list[Problem]:
    """Every problem of every document in ``source``: YAML, structure and cross-field rules
    (and ``more``'s, for a canary with no other problem)."""
    try:
        documents = parse_text(source, filename)
    except SpecError as exc:
        return list(exc.problems)
    problems: list[Problem] = []
    for doc in documents:
        problems.extend(_check_document(doc, catalog, more))
    return problems


def check_file(
    path: str | os.PathLike[str], catalog: Catalog | None = None, *, more: More | None = None
) -> list[Problem]:
    """Every problem of the file at ``path`` (an unreadable file is one problem)."""
    try:
        source = read_source(path)
    except SpecError as exc:
        return list(exc.problems)
    return check_text(source, os.fspath(path), catalog, more=more)


def check_object(data: Mapping[str, object], catalog: Catalog | None = None) -> list[Problem]:
    """Every problem of a ModelCanary given as plain data (e.g. read from Kubernetes); no lines."""
    return _check_document(Document(data=dict(data), lines={}, line=None), catalog, None)


def validated_text(
    source: str | bytes, filename: str | None = None, catalog: Catalog | None = None
) -> list[ModelCanary]:
    """The canaries of ``source`` when all are valid; else :class:`SpecError` with every problem."""
    documents = parse_text(source, filename)
    canaries: list[ModelCanary] = []
    problems: list[Problem] = []
    for doc in documents:
        canary, found = build(doc)
        if canary is not None:
            found.extend(doc.problem(p.path, p.message) for p in validate(canary, catalog))
            canaries.append(canary)
        problems.extend(sorted(found, key=lambda p: p.line if p.line is not None else 0))
    if problems:
        raise SpecError(problems)
    return canaries


def validated_file(
    path: str | os.PathLike[str], catalog: Catalog | None = None
) -> list[ModelCanary]:
    """:func:`validated_text` of the file at ``path``."""
    return validated_text(read_source(path), os.fspath(path), catalog)


def warnings(canary: ModelCanary) -> list[Problem]:
    """The warnings of ``canary`` (paths set; no lines or file): latency thresholds inside a
    coarse bucket of its vLLM version's histograms. Never problems: the canary stays valid."""
    return resolution.warnings(canary, vllm_version(canary))


def warnings_text(
    source: str | bytes, filename: str | None = None, *, more: More | None = None
) -> list[Problem]:
    """The warnings of every document of ``source`` that builds, with lines (none when the text
    does not parse: that is :func:`check_text`'s to report); ``more``: more warnings per canary
    (``validate --cluster``'s, which read the routes beside it)."""
    try:
        documents = parse_text(source, filename)
    except SpecError:
        return []
    found: list[Problem] = []
    for doc in documents:
        canary, _ = build(doc)
        if canary is not None:
            found.extend(doc.problem(w.path, w.message) for w in warnings(canary))
            if more is not None:
                found.extend(doc.problem(w.path, w.message) for w in more(canary))
    return found


def warnings_file(path: str | os.PathLike[str], *, more: More | None = None) -> list[Problem]:
    """:func:`warnings_text` of the file at ``path`` (none when it cannot be read)."""
    try:
        source = read_source(path)
    except SpecError:
        return []
    return warnings_text(source, os.fspath(path), more=more)
