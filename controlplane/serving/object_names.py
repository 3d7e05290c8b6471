"""Names of the objects the controller deploys, derived from the spec (pure).

Owns how a variant's objects and the router objects are named, so the renderer, the routers and
``canaryctl render`` agree: DNS-1035 labels, a name that would be too long cut and given a stable
hash so two never collide. See docs/serving.md, "Names".
"""

from __future__ import annotations

import re

MAX_NAME = 63
_HASH_LEN = 8
_INVALID = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")

# KServe names the predictor's Service ``<isvc>-predictor``; reserve room for the suffix so the
# Service name itself stays a valid label.
PREDICTOR_SUFFIX = "-predictor"
PREDICTOR_PORT = 80
"""The HTTP port of that Service, which every route to a predictor names (KServe v0.20.0:
``constants.CommonDefaultHttpPort`` in ``pkg/constants/constants.go``, the port of
``service_reconciler.go`` and of the backendRefs ``httproute_reconciler.go`` writes)."""
CHAT_TEMPLATE_SUFFIX = "-chat-template"


def dns_name(*parts: str, max_len: int = MAX_NAME) -> str:
    """Join ``parts`` with ``-`` into a DNS-1035 label of at most ``max_len`` characters.

    Characters outside ``[a-z0-9-]`` become ``-`` (upper case is lowered); a name that does not
    start with a letter gets an ``x`` prefix. If the result is too long it is cut and suffixed with
    ``-`` and a hash of the untruncated name, so the output is stable and unique per input.
    """
    if max_len < _HASH_LEN + 2:
        raise ValueError(f"max_len must be at least {_HASH_LEN + 2}")
    raw = "-".join(p for p in parts if p)
    name = _DASHES.sub("-", _INVALID.sub("-", raw.lower())).strip("-")
    if not name:
        name = "x"
    if not name[0].isalpha():
        name = f"x{name}"
    if len(name) <= max_len:
        return name
    import hashlib  # here: names are made on few paths; start-up imports it for none

    digest = hashlib.sha256(raw.encode()).hexdigest()[:_HASH_LEN]
    head = name[: max_len - _HASH_LEN - 1].rstrip("-")
    return f"{head}-{digest}"


def variant_service_name(model_name: str, variant_name: str) -> str:
    """The InferenceService (or LLMInferenceService) of one variant: ``<model>-<variant>``.

    Short enough that ``<name>-predictor`` (the Service KServe creates) is a valid label too.
    """
    return dns_name(model_name, variant_name, max_len=MAX_NAME - len(PREDICTOR_SUFFIX))


def single_service_name(model_name: str) -> str:
    """The one InferenceService holding both variants (the ``kserve`` and ``kserve-knative``
    routers): the model's name, so clients address it as before."""
    return dns_name(model_name, max_len=MAX_NAME - len(PREDICTOR_SUFFIX))


def predictor_service(isvc_name: str, predictor_name: str | None = None) -> str:
    """The Deployment and Service KServe creates for an InferenceService's predictor, or for its
    ``spec.canary[]`` / named predictor ``predictor_name`` (``constants.PredictorServiceName``,
    KServe v0.20.0 ``pkg/constants/constants.go``)."""
    infix = f"-{predictor_name}" if predictor_name else ""
    return f"{isvc_name}{infix}{PREDICTOR_SUFFIX}"


LLMISVC_WORKLOAD_SUFFIX = "-kserve"


def llmisvc_deployment(name: str) -> str:
    """The workload Deployment KServe makes for the LLMInferenceService ``name``:
    ``kmeta.ChildName(<name>, "-kserve")`` (:func:`child_name`)."""
    return child_name(name, LLMISVC_WORKLOAD_SUFFIX)


def chat_template_configmap(isvc_name: str) -> str:
    """The ConfigMap that carries a variant's chat template (system-prompt variants)."""
    return dns_name(isvc_name, "chat-template")


def route_name(canary_name: str) -> str:
    """The HTTPRoute / VirtualService a router owns for one canary."""
    return dns_name(canary_name)


def child_name(parent: str, suffix: str) -> str:
    """knative's ``kmeta.ChildName`` (how KServe names an LLMInferenceService's HTTPRoute and
    workload Service) for a suffix shorter than 31 characters: ``parent + suffix``, or when that
    passes 63 characters the parent cut to fit an md5 of it (pure)."""
    if len(parent) <= MAX_NAME - len(suffix):
        return parent + suffix
    import hashlib

    digest = hashlib.md5(parent.encode(), usedforsecurity=False).hexdigest()
    return parent[: 31 - len(suffix)] + digest + suffix
