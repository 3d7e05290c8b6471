"""A fake KServe controller living inside a :class:`~harness.kube.fake.FakeKube`.

Owns :class:`FakeKServe`: it watches (through the fake's listener hook, so no API calls show up in
the call log) every ``InferenceService`` (``serving.kserve.io/v1beta1``) and
``LLMInferenceService`` (``serving.kserve.io/v1alpha1`` / ``v1alpha2``) write, and when a new
``metadata.generation`` has been waiting ``ready_after_s`` on the injected clock, :meth:`tick`
writes a plausible Ready status through the status subresource: conditions, ``url``,
``address``, ``components.predictor`` (Knative-style revisions and traffic, honouring
``canaryTrafficPercent``), ``canaryStatuses`` for Standard-mode ``spec.canary`` and
``observedGeneration`` (in Standard mode the predictor Deployment's generation, as KServe v0.20.0
reports it: it does not move when only a canary's ``trafficPercent`` does), and with
``gateway_routes`` KServe's top-level HTTPRoute. :meth:`never_ready` and :meth:`fail` script the
unhappy paths, :meth:`crash_loop` a predictor whose pods crash on start.

Called by controller, router and plugin tests; tick-driven, no threads: tests move the clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from controlplane.kube.client import Obj, Ref, WatchEvent
from controlplane.serving.object_names import child_name, predictor_service
from controlplane.status.times import format_time
from harness.kube.fake import FakeKube

GROUP = "serving.kserve.io"
ISVC = ("serving.kserve.io/v1beta1", "InferenceService")
LLMISVC_VERSIONS = ("serving.kserve.io/v1alpha1", "serving.kserve.io/v1alpha2")
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
ROUTE_API_VERSION = "gateway.networking.k8s.io/v1"


@dataclass
class _Pending:
    generation: int
    due: float


@dataclass
class _History:
    revisions: int = 0
    rolled_out: str | None = None
    previous: str | None = None
    handled: int = 0
    """The last generation this fake made Ready (KServe keeps no such record in the object)."""
    predictor: str | None = None
    deployment_generation: int = 0
    """Standard mode: the predictor Deployment's generation, which KServe reports as the
    InferenceService's ``observedGeneration``; it moves only when ``spec.predictor`` does."""


def _is_served(api_version: str, kind: str) -> bool:
    return (api_version, kind) == ISVC or (
        kind == "LLMInferenceService" and api_version in LLMISVC_VERSIONS
    )


def standard(obj: Obj) -> bool:
    annotations = obj["metadata"].get("annotations") or {}
    return bool(annotations.get(MODE_ANNOTATION, "Serverless") != "Serverless")


RUNTIME_ARGS = ("--model_dir=/mnt/models", "--http_port=8080")
"""What KServe v0.20.0's ``kserve-huggingfaceserver`` runtime puts before an InferenceService's
own ``args`` (``config/runtimes/kserve-huggingfaceserver.yaml``), after ``--model_name``."""
SOURCE_URI = "internal.serving.kserve.io/storage-initializer-sourceuri"


def stable_model(predictor: Obj) -> Obj:
    return dict(predictor.get("model") or {})


def model_of(entry: Obj) -> Obj:
    return dict((entry.get("predictor") or {}).get("model") or {})


RUNTIME_IMAGE = "kserve/huggingfaceserver:latest"
"""The image of that runtime as KServe v0.20.0 installs it: ``huggingfaceserver:replace`` in
``config/runtimes/kserve-huggingfaceserver.yaml``, renamed by ``config/runtimes/
kustomization.yaml`` (an API server refuses a Deployment whose container has no image)."""


def pod_template(isvc: str, predictor: Obj, labels: dict[str, str]) -> Obj:
    """The predictor Deployment's pod template as KServe makes it: the predictor's labels, the
    storage URI kept in an annotation for the storage initializer, and the engine container
    ``kserve-container`` running the runtime's arguments followed by the model's
    (``components/predictor.go``, ``MergeRuntimeContainers``)."""
    model = predictor.get("model") or {}
    annotations = {SOURCE_URI: model["storageUri"]} if model.get("storageUri") else {}
    args = [f"--model_name={isvc}", *RUNTIME_ARGS, *(model.get("args") or [])]
    container = {"name": "kserve-container", "image": RUNTIME_IMAGE, "args": args}
    if model.get("resources"):
        container["resources"] = model["resources"]
    return {
        "metadata": {"labels": dict(labels), "annotations": annotations},
        "spec": {"containers": [container]},
    }


def member_routes(members: list[Obj], namespace: str) -> tuple[list[Obj], list[Ref]]:
    """LLMInferenceService routes as KServe v0.20.0 writes them (pure): each member with
    ``spec.router.route`` gets the HTTPRoute ``<member>-kserve-route``, its per-participant rule
    to its own workload Service and a shared rule to every Ready member of its ``group`` with
    that member's ``weight`` (``rewriteRulesForGroup`` / ``filterEligibleMembers``); a member
    without a route has none (KServe deletes it). The shape ``tests/controller/
    test_controller_llmisvc.py`` observes on the real controller, cut to one shared rule.
    Returns the routes to apply and the refs of routes that must not exist."""
    alive = [o for o in members if not o["metadata"].get("deletionTimestamp")]

    def route_of(member: Obj) -> Obj:
        return (member.get("spec") or {}).get("router", {}).get("route") or {}

    def ready(member: Obj) -> bool:
        conditions = (member.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def backend(member: Obj, weight: int) -> Obj:
        service = child_name(member["metadata"]["name"], "-kserve-workload-svc")
        return {"kind": "Service", "name": service, "port": 8000, "weight": weight}

    routes: list[Obj] = []
    gone: list[Ref] = []
    for member in alive:
        name = member["metadata"]["name"]
        ref = Ref(ROUTE_API_VERSION, "HTTPRoute", namespace, child_name(name, "-kserve-route"))
        own = route_of(member)
        if "group" not in own:
            gone.append(ref)
            continue
        split = [
            backend(other, int(route_of(other).get("weight", 0)))
            for other in sorted(alive, key=lambda o: o["metadata"]["name"])
            if route_of(other).get("group") == own["group"] and (other is member or ready(other))
        ]
        prefix = f"/{namespace}/{name}"
        exact = {"path": {"type": "Exact", "value": "/v1/completions"}}
        routes.append(
            {
                "apiVersion": ROUTE_API_VERSION,
                "kind": "HTTPRoute",
                "metadata": {"name": ref.name, "namespace": namespace},
                "spec": {
                    "rules": [
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
                            "backendRefs": [backend(member, 1)],
                        },
                        {"matches": [exact], "backendRefs": split},
                    ]
                },
            }
        )
    return routes, gone


GatewayRoutes = Literal["v0.20.0", "ready-canaries"]
"""How a Standard-mode InferenceService's top-level HTTPRoute treats ``spec.canary`` (written
only when ``gateway_routes`` is set, as KServe does with ``ingress.enableGatewayApi``):
``v0.20.0`` routes everything to the stable predictor whatever ``trafficPercent`` says (observed
on the real KServe v0.20.0, ``tests/controller/test_controller_kserve.py``); ``ready-canaries``
weights the stable and each Ready canary by ``trafficPercent`` (``applyCanaryWeights`` in
``reconcilers/ingress/httproute_reconciler.go``, KServe main after v0.20.0: read, not run)."""


class FakeKServe:
    """Marks InferenceServices / LLMInferenceServices Ready ``ready_after_s`` after each spec
    change, measured on ``now``; :meth:`tick` applies what is due (and, with
    ``gateway_routes``, writes KServe's top-level HTTPRoute of a Standard-mode
    InferenceService)."""

    def __init__(
        self,
        kube: FakeKube,
        *,
        now: Callable[[], float],
        ready_after_s: float = 0.0,
        domain: str = "example.com",
        gateway_routes: GatewayRoutes | None = None,
    ) -> None:
        self._kube = kube
        self.gateway_routes = gateway_routes
        self._now = now
        self.ready_after_s = ready_after_s
        self._domain = domain
        self._lock = threading.Lock()
        self._pending: dict[Ref, _Pending] = {}
        self._history: dict[Ref, _History] = {}
        self._never: set[str] = set()
        self._failed: dict[str, tuple[str, str]] = {}
        kube.add_listener(self._on_event)

    # --- scripting -------------------------------------------------------------------------------

    def never_ready(self, name: str) -> None:
        """Objects named ``name`` (any namespace) never become Ready."""
        with self._lock:
            self._never.add(name)

    def fail(self, name: str, reason: str, message: str = "") -> None:
        """Objects named ``name`` report Ready False with ``reason`` now and after every change."""
        with self._lock:
            self._failed[name] = (reason, message or reason)
            refs = [r for r in self._known() if r.name == name]
        for ref in refs:
            obj = self._kube.peek(ref)
            if obj is not None:
                self._kube.system_replace_status(ref, self._failed_status(obj, reason, message))

    def crash_loop(self, name: str, restarts: int, last_words: str, exit_code: int = 1) -> None:
        """Objects named ``name`` crash-loop on start: KServe's ``FailedToLoad`` (:meth:`fail`,
        reason ``ModelLoadFailed`` with ``last_words``), and one pod of each predictor
        Deployment as the kubelet (Kubernetes v1.34) reports a container that crashed
        ``restarts`` times: not ready, waiting in ``CrashLoopBackOff``, its last termination
        ``Error`` with ``exit_code`` and ``last_words`` as the termination message (what
        ``terminationMessagePolicy: FallbackToLogsOnError`` puts there). Called again with more
        restarts, the same pod counts them."""
        self.fail(name, "ModelLoadFailed", last_words)
        with self._lock:
            namespaces = sorted({r.namespace or "default" for r in self._known() if r.name == name})
        owner = {"serving.kserve.io/inferenceservice": name}
        for ns in namespaces:
            for deployment in self._kube.list("apps/v1", "Deployment", ns, label_selector=owner):
                self._crashing_pod(deployment, restarts, last_words, exit_code)

    def short_of_a_pod(self, name: str) -> None:
        """Objects named ``name`` lose one pod of their predictor Deployments (a node drained, a
        pod deleted) while another still serves: KServe v0.20.0 reads the Deployment's
        ``Available`` condition, False while it is short of its minimum, as the
        InferenceService not Ready (:meth:`fail` with the Deployment controller's
        ``MinimumReplicasUnavailable``), and one pod of each Deployment is Ready. :meth:`heal`
        ends it."""
        self.fail(
            name, "MinimumReplicasUnavailable", "Deployment does not have minimum availability."
        )
        with self._lock:
            namespaces = sorted({r.namespace or "default" for r in self._known() if r.name == name})
        owner = {"serving.kserve.io/inferenceservice": name}
        ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        for ns in namespaces:
            for deployment in self._kube.list("apps/v1", "Deployment", ns, label_selector=owner):
                self._kube.system_replace_status(Ref.of(self._pod(deployment, "-1")), ready)

    def _pod(self, deployment: Obj, suffix: str) -> Obj:
        """A pod of ``deployment``'s template, named ``<deployment><suffix>``, as created."""
        meta = deployment["metadata"]
        template = deployment["spec"]["template"]
        return self._kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{meta['name']}{suffix}",
                    "namespace": meta["namespace"],
                    "labels": dict(template["metadata"].get("labels") or {}),
                },
                "spec": template["spec"],
            },
            field_manager="kube-controller-manager",
        )

    def _crashing_pod(
        self, deployment: Obj, restarts: int, last_words: str, exit_code: int
    ) -> None:
        container = deployment["spec"]["template"]["spec"]["containers"][0]["name"]
        pod = self._pod(deployment, "-0")
        stamp = format_time(self._now())
        self._kube.system_replace_status(
            Ref.of(pod),
            {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
                ],
                "containerStatuses": [
                    {
                        "name": container,
                        "ready": False,
                        "started": False,
                        "restartCount": restarts,
                        "state": {
                            "waiting": {
                                "reason": "CrashLoopBackOff",
                                "message": f"back-off restarting failed container={container}",
                            }
                        },
                        "lastState": {
                            "terminated": {
                                "reason": "Error",
                                "exitCode": exit_code,
                                "message": last_words,
                                "finishedAt": stamp,
                            }
                        },
                    }
                ],
            },
        )

    def heal(self, name: str) -> None:
        """Undo :meth:`never_ready` / :meth:`fail`: the next due tick makes it Ready again."""
        with self._lock:
            self._never.discard(name)
            self._failed.pop(name, None)
            for ref in self._known():
                if ref.name == name and ref not in self._pending:
                    obj = self._kube.peek(ref)
                    if obj is not None:
                        self._pending[ref] = _Pending(
                            int(obj["metadata"].get("generation", 1)),
                            self._now() + self.ready_after_s,
                        )

    def pending(self) -> dict[Ref, float]:
        """Objects waiting for readiness and when each is due."""
        with self._lock:
            return {ref: p.due for ref, p in self._pending.items()}

    # --- the controller loop ---------------------------------------------------------------------

    def tick(self) -> list[Ref]:
        """Write Ready status for every object whose time has come; return their refs."""
        now = self._now()
        with self._lock:
            due = [(r, p) for r, p in self._pending.items() if p.due <= now]
            blocked = set(self._never) | set(self._failed)
        done: list[Ref] = []
        for ref, pending in sorted(due, key=lambda item: (item[1].due, item[0].name)):
            obj = self._kube.peek(ref)
            if obj is None or "deletionTimestamp" in obj["metadata"]:
                with self._lock:
                    self._pending.pop(ref, None)
                continue
            if int(obj["metadata"].get("generation", 1)) != pending.generation:
                continue  # a newer spec arrived; its own entry is pending
            if ref.name in blocked:
                continue
            status = self._ready_status(ref, obj, now)
            with self._lock:
                self._pending.pop(ref, None)
                self._history.setdefault(ref, _History()).handled = pending.generation
            self._kube.system_replace_status(ref, status)
            if ref.kind == "InferenceService" and standard(obj):
                self._deployments(obj)
            if ref.kind == "LLMInferenceService":
                self._member_routes(ref.namespace or "default")
            if self.gateway_routes is not None and ref.kind == "InferenceService":
                route = self._route(obj, status)
                if route is not None:
                    self._kube.apply(route, field_manager="kserve-controller")
            done.append(ref)
        return done

    def _route(self, obj: Obj, status: Obj) -> Obj | None:
        """KServe's top-level HTTPRoute of a Standard-mode InferenceService (its
        ``createRawTopLevelHTTPRoute``): one rule to the stable predictor's Service, weighted
        against the Ready canaries when ``gateway_routes`` is ``ready-canaries``."""
        meta = obj["metadata"]
        if (meta.get("annotations") or {}).get(MODE_ANNOTATION, "Serverless") == "Serverless":
            return None
        name, ns = meta["name"], meta.get("namespace") or "default"
        spec = obj.get("spec") or {}

        def backend(predictor: str | None, weight: int) -> Obj:
            return {
                "group": "",
                "kind": "Service",
                "name": predictor_service(name, predictor),
                "namespace": ns,
                "port": 80,
                "weight": weight,
            }

        stable = (spec.get("predictor") or {}).get("name")
        backends = [backend(stable, 1)]
        if self.gateway_routes == "ready-canaries" and spec.get("canary"):
            ready = {c["name"] for c in status.get("canaryStatuses") or [] if c.get("ready")}
            split = [
                backend(c["predictor"]["name"], int(c.get("trafficPercent", 0)))
                for c in spec["canary"]
                if c["predictor"]["name"] in ready
            ]
            backends = [backend(stable, 100 - sum(b["weight"] for b in split)), *split]
        return {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": ns, "labels": dict(meta.get("labels") or {})},
            "spec": {
                "hostnames": [f"{name}-{ns}.{self._domain}"],
                "parentRefs": [
                    {
                        "group": "gateway.networking.k8s.io",
                        "kind": "Gateway",
                        "name": "kserve-ingress-gateway",
                        "namespace": "kserve",
                    }
                ],
                "rules": [
                    {
                        "matches": [{"path": {"type": "RegularExpression", "value": "^/.*$"}}],
                        "backendRefs": backends,
                    }
                ],
            },
        }

    def _member_routes(self, namespace: str) -> None:
        """Apply :func:`member_routes` for ``namespace``'s LLMInferenceServices."""
        members = self._kube.list(LLMISVC_VERSIONS[1], "LLMInferenceService", namespace)
        routes, gone = member_routes(members, namespace)
        for ref in gone:
            if self._kube.peek(ref) is not None:
                self._kube.delete(ref)
        for route in routes:
            self._kube.apply(route, field_manager="kserve-controller")

    def _deployments(self, obj: Obj) -> None:
        """Standard mode: the predictor Deployments KServe keeps, rolled out at once.

        One per predictor, named ``<isvc>[-<name>]-predictor`` (a named ``spec.predictor``
        adopts the canary's Deployment of that name: KServe's promotion), each canary's pod
        template the stable's merged with the entry (``buildCanaryPredictor``), the stable's
        replicas its minimum less the canaries' (never below 1; ``canaryReplicaCount`` in
        ``components/predictor.go``, v0.20.0); Deployments of predictors that left the spec
        are deleted. A Deployment whose template changes gets a new generation (a rollout)."""
        meta = obj["metadata"]
        name, ns = meta["name"], meta.get("namespace") or "default"
        spec = obj.get("spec") or {}
        stable = spec.get("predictor") or {}
        stable_min = int(stable.get("minReplicas", 1))
        wanted: dict[str, tuple[Obj, int]] = {}
        canary_total = 0
        for entry in spec.get("canary") or []:
            predictor = entry.get("predictor") or {}
            replicas = predictor.get("minReplicas")
            if replicas is None:
                replicas = -(-stable_min * int(entry.get("trafficPercent", 0)) // 100)
            canary_total += int(replicas)
            labels = {**(stable.get("labels") or {}), **(predictor.get("labels") or {})}
            merged = {**stable, **predictor, "model": {**stable_model(stable), **model_of(entry)}}
            wanted[predictor_service(name, predictor.get("name"))] = (
                pod_template(name, merged, labels),
                int(replicas),
            )
        own = max(1, stable_min - canary_total) if canary_total else stable_min
        wanted[predictor_service(name, stable.get("name"))] = (
            pod_template(name, stable, dict(stable.get("labels") or {})),
            own,
        )
        owner = {"serving.kserve.io/inferenceservice": name}
        for existing in self._kube.list("apps/v1", "Deployment", ns, label_selector=owner):
            if existing["metadata"]["name"] not in wanted:
                self._kube.delete(Ref.of(existing))
        for deployment, (template, replicas) in wanted.items():
            applied = self._kube.apply(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": deployment, "namespace": ns, "labels": owner},
                    "spec": {
                        "replicas": replicas,
                        "selector": {"matchLabels": {"app": deployment}},
                        "template": {
                            **template,
                            "metadata": {
                                **template["metadata"],
                                "labels": {**template["metadata"]["labels"], "app": deployment},
                            },
                        },
                    },
                },
                field_manager="kserve-controller",
            )
            generation = int(applied["metadata"].get("generation", 1))
            self._kube.system_replace_status(
                Ref.of(applied),
                {
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                },
            )

    def _on_event(self, event: WatchEvent) -> None:
        obj = event.object
        if not _is_served(obj.get("apiVersion", ""), obj.get("kind", "")):
            return
        ref = Ref.of(obj)
        with self._lock:
            if event.type == "DELETED":
                self._pending.pop(ref, None)
                self._history.pop(ref, None)
                return
            history = self._history.setdefault(ref, _History())
            generation = int(obj["metadata"].get("generation", 1))
            pending = self._pending.get(ref)
            if history.handled == generation or (pending and pending.generation == generation):
                return
            self._pending[ref] = _Pending(generation, self._now() + self.ready_after_s)
            failed = self._failed.get(ref.name)
        if failed is not None:
            self._kube.system_replace_status(ref, self._failed_status(obj, *failed))

    def _known(self) -> list[Ref]:
        return list(self._history)

    # --- status documents ------------------------------------------------------------------------

    def _ready_status(self, ref: Ref, obj: Obj, now: float) -> Obj:
        name, ns = ref.name, ref.namespace or "default"
        stamp = format_time(now)
        url = f"http://{name}-{ns}.{self._domain}"
        generation = int(obj["metadata"].get("generation", 1))
        conditions = [
            {"type": t, "status": "True", "lastTransitionTime": stamp}
            for t in ("IngressReady", "PredictorReady", "Ready")
        ]
        if ref.kind == "LLMInferenceService":
            return {
                "observedGeneration": generation,
                "url": url,
                "addresses": [{"url": f"http://{name}.{ns}.svc.cluster.local"}],
                "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": stamp}
                    for t in ("MainWorkloadReady", "RouterReady", "Ready")
                ],
            }
        annotations = obj["metadata"].get("annotations") or {}
        mode = annotations.get(MODE_ANNOTATION, "Serverless")
        spec: dict[str, Any] = obj.get("spec") or {}
        predictor_url = f"http://{name}-predictor-{ns}.{self._domain}"
        predictor: Obj = {"url": predictor_url}
        status: Obj = {
            "observedGeneration": generation,
            "url": url,
            "address": {"url": f"http://{name}-predictor.{ns}.svc.cluster.local"},
            "conditions": conditions,
            "deploymentMode": mode,
            "modelStatus": {
                "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
                "transitionStatus": "UpToDate",
            },
            "components": {"predictor": predictor},
        }
        if mode == "Serverless":
            predictor.update(self._revisions(ref, spec))
        else:
            status["observedGeneration"] = self._deployment_generation(ref, spec)
        canaries = spec.get("canary")
        if mode != "Serverless" and isinstance(canaries, list) and canaries:
            status["canaryStatuses"] = [
                {
                    "name": (c.get("predictor") or {}).get("name", f"canary-{i}"),
                    "ready": True,
                    "trafficPercent": int(c.get("trafficPercent", 0)),
                    "modelStatus": {"transitionStatus": "UpToDate"},
                }
                for i, c in enumerate(canaries)
                if isinstance(c, dict)
            ]
        return status

    def _deployment_generation(self, ref: Ref, spec: dict[str, Any]) -> int:
        """Standard mode: the stable Deployment's generation (KServe's ``PropagateRawStatus``
        copies it into the InferenceService's ``observedGeneration``): it moves with
        ``spec.predictor``, not with a canary's ``trafficPercent``."""
        predictor = json.dumps(spec.get("predictor"), sort_keys=True)
        with self._lock:
            history = self._history.setdefault(ref, _History())
            if history.predictor != predictor:
                history.predictor = predictor
                history.deployment_generation += 1
            return history.deployment_generation

    def _revisions(self, ref: Ref, spec: dict[str, Any]) -> Obj:
        """Knative-style revision bookkeeping: one revision per ready generation."""
        with self._lock:
            history = self._history.setdefault(ref, _History())
            history.revisions += 1
            latest = f"{ref.name}-predictor-{history.revisions:05d}"
            percent = (spec.get("predictor") or {}).get("canaryTrafficPercent")
            if percent is not None and history.rolled_out is not None:
                traffic = [
                    {
                        "tag": "prev",
                        "revisionName": history.rolled_out,
                        "percent": 100 - int(percent),
                        "latestRevision": False,
                    },
                    {
                        "tag": "latest",
                        "revisionName": latest,
                        "percent": int(percent),
                        "latestRevision": True,
                    },
                ]
            else:
                history.previous, history.rolled_out = history.rolled_out, latest
                traffic = [{"revisionName": latest, "percent": 100, "latestRevision": True}]
            result: Obj = {
                "latestCreatedRevision": latest,
                "latestReadyRevision": latest,
                "latestRolledoutRevision": history.rolled_out,
                "traffic": traffic,
            }
            if history.previous is not None:
                result["previousRolledoutRevision"] = history.previous
            return result

    def _failed_status(self, obj: Obj, reason: str, message: str) -> Obj:
        stamp = format_time(self._now())
        condition = {
            "status": "False",
            "reason": reason,
            "message": message or reason,
            "lastTransitionTime": stamp,
        }
        return {
            "observedGeneration": int(obj["metadata"].get("generation", 1)),
            "conditions": [
                {"type": "PredictorReady", **condition},
                {"type": "Ready", **condition},
            ],
            "modelStatus": {
                "transitionStatus": "BlockedByFailedLoad",
                "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
                "lastFailureInfo": {"reason": reason, "message": message or reason},
            },
        }
