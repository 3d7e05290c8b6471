"""Everything the controller applies for a canary at one rollout point, and the router factory.

Owns the composition of serving objects (:mod:`controlplane.serving.render`) with the router's
objects, per router, in apply order (ConfigMaps, then serving objects, then routes), so that the
controller and ``canaryctl render`` print and apply the same list. :func:`desired_objects` is
pure; :func:`make_router` builds the :class:`~controlplane.routing.base.Router` of a spec.
"""

from __future__ import annotations

from controlplane.errors import RouterError
from controlplane.kube.client import KubeClient, Obj
from controlplane.profiles.catalog import Catalog
from controlplane.routing import gateway_api, istio, kserve, kserve_knative, llmisvc
from controlplane.routing.base import Outcome, Router
from controlplane.serving.render import ROLES, chat_template_configmap, inference_service
from controlplane.spec.models import ModelCanary, RouterName


def _configmaps(canary: ModelCanary) -> list[Obj]:
    maps = (chat_template_configmap(canary, role) for role in ROLES)
    return [cm for cm in maps if cm is not None]


def desired_objects(
    canary: ModelCanary,
    catalog: Catalog,
    weight: int = 0,
    mirror: bool = False,
    outcome: Outcome | None = None,
) -> list[Obj]:
    """Every object of ``canary`` when the candidate has ``weight`` percent (mirrored when
    ``mirror``), or after ``outcome``. Raises SpecError / RouterError on what cannot be served."""
    router = canary.spec.traffic.router
    objs = _configmaps(canary)
    if router in ("gateway-api", "istio"):
        objs += [inference_service(canary, role, catalog) for role in ROLES]
        if router == "gateway-api":
            objs.append(gateway_api.build_httproute(canary, weight, mirror, outcome))
        else:
            service = istio.model_service(canary)
            objs += [service] if service is not None else []
            objs.append(istio.build_virtualservice(canary, weight, mirror, outcome))
    elif router == "kserve":
        objs.append(kserve.build_inferenceservice(canary, catalog, weight, mirror, outcome))
    elif router == "kserve-knative":
        objs.append(kserve_knative.build_inferenceservice(canary, catalog, weight, mirror, outcome))
    elif router == "llmisvc":
        objs += llmisvc.build_llminferenceservices(canary, catalog, weight, mirror, outcome)
    else:  # pragma: no cover - the spec model admits only the routers above
        raise RouterError(f"unknown router {router!r}")
    return objs


def make_router(name: RouterName, kube: KubeClient, catalog: Catalog) -> Router:
    """The router called ``name``, writing through ``kube``."""
    if name == "gateway-api":
        return gateway_api.router(kube)
    if name == "istio":
        return istio.router(kube)
    if name == "kserve":
        return kserve.router(kube, catalog)
    if name == "kserve-knative":
        return kserve_knative.router(kube, catalog)
    if name == "llmisvc":
        return llmisvc.LLMISvcRouter(kube)
    raise RouterError(f"unknown router {name!r}")  # pragma: no cover
