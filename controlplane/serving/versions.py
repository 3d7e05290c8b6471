"""Which vLLM a canary's variants run, and what that version can serve (pure).

Owns the answer: ``spec.model.vllmVersion``, else the vLLM of the runtime image the router
deploys, else :data:`DEFAULT_VLLM_VERSION`; both variants share it. Also
:func:`version_problems` for validation. The tables cite what they were read from; docs/serving.md,
"vLLM versions" and "Verified against vLLM".
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from controlplane.errors import Problem
from controlplane.profiles.catalog import Catalog
from controlplane.spec.vllm_version import format_version, parse_vllm_version

if TYPE_CHECKING:
    from controlplane.spec.models import ModelCanary, ModelSpec, RouterName

PINNED_KSERVE = "v0.20.0"
"""The KServe release the product is built and tested against (scripts/build-kube.sh)."""

HUGGINGFACESERVER_IMAGE = "kserve/huggingfaceserver"
"""The image of KServe's ``kserve-huggingfaceserver`` ClusterServingRuntime, tagged with KServe's
own version (``-gpu`` for the GPU build): config/runtimes/kustomization.yaml and the release's
install/<tag>/kserve-cluster-resources.yaml at each KServe tag."""

KSERVE_VLLM: dict[str, str] = {
    "v0.16.0": "0.9.2",
    "v0.17.0": "0.15.1",
    "v0.17.1": "0.15.1",
    "v0.18.0": "0.19.0",
    "v0.18.1": "0.19.0",
    "v0.19.0": "0.20.0",
    "v0.20.0": "0.24.0",
}
"""KServe release -> the vLLM its huggingfaceserver image installs: ``ARG VLLM_VERSION`` of
python/huggingface_server.Dockerfile and ``vllm==`` of python/kserve/pyproject.toml (equal at every
tag listed; v0.20.0's python/huggingfaceserver/uv.lock also locks vllm 0.24.0)."""

VLLM_IMAGE = "vllm/vllm-openai"
"""vLLM's own OpenAI-server image, tagged ``v<vLLM version>``."""

LLMISVC_IMAGE = "ghcr.io/llm-d/llm-d-cuda:v0.8.0"
"""The ``main`` container image of KServe v0.20.0's LLMInferenceServiceConfig presets
(config/llmisvcconfig/config-llm-template.yaml). llm-d builds it from a vLLM commit
(docker/common-versions: VLLM_COMMIT_SHA), not a release, so its tag gives no vLLM version."""

DEFAULT_VLLM_VERSION = KSERVE_VLLM[PINNED_KSERVE]
"""The version assumed when neither the spec nor the image says: the pinned KServe's vLLM."""

_TAGGED = re.compile(r"^(?P<repo>[^@]+?)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?$")


def runtime_image(router: RouterName) -> str:
    """The image that serves a variant on ``router`` with the pinned KServe's defaults."""
    if router == "llmisvc":
        return LLMISVC_IMAGE
    return f"{HUGGINGFACESERVER_IMAGE}:{PINNED_KSERVE}-gpu"


def vllm_version_of_image(image: str) -> str | None:
    """The vLLM release ``image`` runs, or None when its reference does not say.

    ``kserve/huggingfaceserver:v0.20.0`` (or ``-gpu``) -> the vLLM that KServe release pins
    (:data:`KSERVE_VLLM`); ``vllm/vllm-openai:v0.33.0`` -> ``0.33.0``. A registry host in front
    (``docker.io/``, a mirror) is ignored; a digest, an unknown tag or another image is None.
    """
    match = _TAGGED.match(image.strip())
    if match is None or match["tag"] is None:
        return None
    repo, tag = match["repo"], match["tag"]
    if _names(repo, HUGGINGFACESERVER_IMAGE):
        return KSERVE_VLLM.get(tag.removesuffix("-gpu"))
    if _names(repo, VLLM_IMAGE):
        key = parse_vllm_version(tag)
        return None if key is None else format_version(key)
    return None


def _names(repo: str, name: str) -> bool:
    """True when ``repo`` is ``name``, with or without a registry host in front."""
    host = repo.split("/", 1)[0]
    return repo == name or (repo.endswith(f"/{name}") and ("." in host or ":" in host))


def vllm_version(canary: ModelCanary) -> str:
    """The vLLM version serving ``canary`` (both variants): see :func:`resolve_vllm_version`."""
    return resolve_vllm_version(canary.spec.model, canary.spec.traffic.router)


def resolve_vllm_version(model: ModelSpec, router: RouterName | None = None) -> str:
    """The vLLM version of ``model`` served through ``router``.

    ``spec.model.vllmVersion`` first: it states what the cluster's runtime runs, which only the
    cluster knows (another KServe release, an edited ClusterServingRuntime). Then the vLLM of the
    image ``router`` deploys by default (:func:`runtime_image`; skipped when ``router`` is None),
    then :data:`DEFAULT_VLLM_VERSION`. Every router's default image gives the default today (a
    test holds that), so callers without the router (the vLLM flags of a bare variant) agree.
    """
    if model.vllm_version is not None:
        return model.vllm_version
    if router is not None:
        from_image = vllm_version_of_image(runtime_image(router))
        if from_image is not None:
            return from_image
    return DEFAULT_VLLM_VERSION


def version_problems(canary: ModelCanary, catalog: Catalog) -> list[Problem]:
    """Each variant whose ``quantization`` the canary's vLLM version does not have, with its path.

    The method was removed from vLLM (bitsandbytes in 0.28.0: the message says what to use
    instead), or the version is older than the catalogue's first range for it. A quantization
    the catalogue does not know is left to the other rules.
    """
    problems = []
    for role in ("stable", "candidate"):
        variant = canary.spec.variant(role)
        message = quantization_problem(variant.quantization, catalog, vllm_version(canary))
        if message is not None:
            problems.append(Problem(f"spec.{role}.quantization", f"{message} ({_why(canary)})"))
    return problems


def quantization_problem(quantization: str, catalog: Catalog, version: str) -> str | None:
    """Why vLLM ``version`` cannot serve ``quantization`` (None: it can, or the catalogue does not
    know the method, which the GPU rules report). An unparseable ``version`` is a problem too."""
    key = parse_vllm_version(version)
    if key is None:
        return f"{version!r} is not a vLLM version"
    method = catalog.methods.get(quantization)
    if method is None or method.range_for(key) is not None:
        return None
    return method.missing_version(key)


def _why(canary: ModelCanary) -> str:
    """Where the version came from, for messages."""
    if canary.spec.model.vllm_version is not None:
        return "vLLM version from spec.model.vllmVersion"
    image = runtime_image(canary.spec.traffic.router)
    if vllm_version_of_image(image) is not None:
        return (
            f"vLLM version of the runtime image {image}; set spec.model.vllmVersion if yours "
            "differs"
        )
    return (
        f"{image} names no vLLM release: assumed the pinned KServe {PINNED_KSERVE}'s vLLM "
        f"{DEFAULT_VLLM_VERSION}; set spec.model.vllmVersion"
    )
