"""The desired state: everything the controller applies for a canary at one rollout point.

Composes the serving objects (:mod:`controlplane.serving`), the capacity plan's replicas and the
routers' objects (:mod:`controlplane.routing`) in apply order, so that the controller and
``canaryctl render`` apply and print the same list; builds the router of a spec. For an adopted
stable the live service is the user's: the candidate's objects, the route and the PodMonitor of
the live pods. Pure but for the routers it builds; called by the reconciler and ``render``.
"""

from __future__ import annotations

from controlplane.capacity import plan as capacity_plan
from controlplane.capacity.estimate import sizes_of
from controlplane.errors import RouterError
from controlplane.kube.client import KubeClient, Obj
from controlplane.profiles.catalog import Catalog
from controlplane.promql import queries
from controlplane.routing import gateway_api, istio, kserve, kserve_knative, llmisvc
from controlplane.routing.adopting import AdoptingRouter
from controlplane.routing.base import Outcome, Router
from controlplane.serving import adopt, pairer
from controlplane.serving.render import ROLES, Role, chat_template_configmap, inference_service
from controlplane.spec.models import ModelCanary, RouterName


def _configmaps(canary: ModelCanary) -> list[Obj]:
    roles: tuple[Role, ...] = ("candidate",) if canary.spec.adopted else ROLES
    maps = (chat_template_configmap(canary, role) for role in roles)
    return [cm for cm in maps if cm is not None]


def desired_objects(
    canary: ModelCanary,
    catalog: Catalog,
    weight: int = 0,
    mirror: bool = False,
    outcome: Outcome | None = None,
    replicas: capacity_plan.Replicas | None = None,
    pairer_image: str | None = None,
) -> list[Obj]:
    """Every object of ``canary`` when the candidate has ``weight`` percent (mirrored when
    ``mirror``), or after ``outcome``. With ``spec.capacity``, each variant runs ``replicas``
    (default: the plan's for that point, :func:`planned_replicas`); with ``spec.quality``, the
    pairer runs ``pairer_image`` before the route sends to it. Raises SpecError / RouterError on
    what cannot be served."""
    router = canary.spec.traffic.router
    objs = _configmaps(canary)
    counts: dict[Role, int] | None = None
    planned = capacity_plan.fixed_replicas(canary)
    if canary.spec.plan is not None:
        planned = replicas or planned_replicas(canary, catalog, weight, mirror, outcome)
        counts = {"stable": planned.stable, "candidate": planned.candidate}
    tops = capacity_plan.ceilings(canary, _share(weight, mirror, outcome), planned)
    if router in ("gateway-api", "istio"):
        # the live stable is not ours to apply
        roles: tuple[Role, ...] = ("candidate",) if canary.spec.adopted else ROLES
        if canary.spec.adopted:
            objs.append(adopt.stable_podmonitor(canary))
        objs += [
            inference_service(
                canary,
                role,
                catalog,
                replicas=None if counts is None else counts[role],
                max_replicas=tops.stable if role == "stable" else tops.candidate,
                autoscale=queue_autoscaling(canary, role),
            )
            for role in roles
        ]
        if router == "gateway-api":
            objs += _pairer(canary, pairer_image, outcome)
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
        objs += llmisvc.build_llminferenceservices(canary, catalog, weight, mirror, outcome, counts)
    else:  # pragma: no cover - the spec model admits only the routers above
        raise RouterError(f"unknown router {router!r}")
    return objs


def _pairer(canary: ModelCanary, image: str | None, outcome: Outcome | None) -> list[Obj]:
    """The quality judge's pairer while the rollout runs (``spec.quality``), else nothing."""
    if canary.spec.quality is None or outcome is not None:
        return []
    if image is None:
        raise RouterError(
            "spec.quality needs the pairer's image: run the controller with --pairer-image "
            "(the chart sets its own image)"
        )
    return pairer.pairer_objects(canary, image)


def planned_replicas(
    canary: ModelCanary,
    catalog: Catalog,
    weight: int = 0,
    mirror: bool = False,
    outcome: Outcome | None = None,
    demand_rps: float | None = None,
) -> capacity_plan.Replicas:
    """What each variant runs at a rollout point once its weights are in effect: the capacity
    plan's (:mod:`controlplane.capacity.plan`) for the traffic the stable was sized for, or
    ``demand_rps``; after ``outcome`` all traffic is on the winner."""
    sizes = sizes_of(canary, catalog)
    demand = capacity_plan.demand_of(canary, sizes, demand_rps)
    return capacity_plan.replicas_at(canary, sizes, demand, _share(weight, mirror, outcome))


def _share(weight: int, mirror: bool, outcome: Outcome | None) -> capacity_plan.Share:
    """Where traffic goes at a rollout point: after ``outcome`` all of it on the winner."""
    if outcome == "promoted":
        return capacity_plan.Share(100)
    if outcome == "rolled_back":
        return capacity_plan.Share(0)
    return capacity_plan.Share(weight, mirror)


def queue_autoscaling(canary: ModelCanary, role: Role) -> Obj | None:
    """The predictor's ``autoScaling`` of a variant that scales on vLLM's queue
    (``autoscaling.queue``), else None: one ``External`` Prometheus metric, the variant's waiting
    requests, target ``value`` its ``waitingPerReplica`` (KServe's webhook requires ``value``, and
    hands it to KEDA as the threshold of an average per replica): docs/capacity.md, "Autoscaling
    kept"; checked on the real KServe in ``tests/controller/test_controller_kserve.py``."""
    variant = canary.spec.variant(role)
    scaling = variant.autoscaling
    if scaling is None or scaling.queue is None:
        return None
    query = queries.waiting_query(canary, variant.name)
    metric = {
        "backend": "prometheus",
        "serverAddress": scaling.queue.server_address,
        "query": query,
    }
    target = {"type": "Value", "value": f"{scaling.queue.waiting_per_replica:g}"}
    return {"metrics": [{"type": "External", "external": {"metric": metric, "target": target}}]}


def adopting_router(
    router: Router, canary: ModelCanary, kube: KubeClient, catalog: Catalog
) -> Router:
    """``router`` for ``canary``: wrapped to promote into the live service when the stable is
    adopted (:class:`~controlplane.routing.adopting.AdoptingRouter`), else as it is."""
    if canary.spec.adopted:
        return AdoptingRouter(router, kube, catalog)
    return router


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
