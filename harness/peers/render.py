"""What the peers are given, as their own documentation gives it (pure): objects and schedules.

Owns the objects ``tests/support/peers.py`` applies for Flagger v1.44.0, Argo Rollouts v1.10.2
and ours around the contest's SLO (:mod:`harness.peers.contest` writes the SLO in each tool's
analysis; this module puts it into each tool's objects). Each setting taken from upstream names
the file it was read from (docs/peers.md lists them all):

- **Flagger** (:func:`flagger_canary`): the Canary of its Gateway API tutorial,
  ``docs/gitbook/tutorials/gatewayapi-progressive-delivery.md`` in
  ``github.com/fluxcd/flagger@v1.44.0``: ``analysis.interval: 1m``, ``threshold: 5``,
  ``maxWeight: 50``, ``stepWeight: 10``, ``progressDeadlineSeconds: 60``, with
  ``service.hosts`` and ``gatewayRefs``; its metrics read Traefik's per-service histogram
  ``traefik_service_request_duration_seconds`` (the series Flagger's own Traefik observer
  reads, ``pkg/metrics/observers/traefik.go``) of the canary and primary Services, under the
  ``service`` labels Traefik's Gateway API provider gives them
  (:func:`flagger_traefik_service`).
- **Argo Rollouts** (:func:`rollout`, :func:`rollouts_objects`, :func:`analysis_template`): see
  their docstrings.
- **Ours** (:func:`ours_analysis`, :func:`ours_steps`, :func:`ours_controller_flags`): the
  sections of the ModelCanary ``canaryctl controller`` runs with the spec's defaults for all
  it has one for, and Flagger's schedule for what it has none for.
- **Time** (:class:`Pace`): every interval of every tool divided by one factor.
- **The workload** (:func:`engine_deployment`): a Deployment of the engine image with the
  arguments KServe's runtime gives it (:mod:`harness.node.serving`), the model from the node's
  model folder, the candidate's faults as ``--inject`` arguments (:class:`Candidate`).

Called by ``tests/support/peers.py`` and tested in ``tests/harness/test_peers_render.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

FLAGGER_VERSION = "v1.44.0"
ARGO_ROLLOUTS_VERSION = "v1.10.2"
ENGINE_PORT = 8080
"""KServe's model server port, which the engine listens on (``harness.node.serving``)."""
ENGINE_COMMAND = ("python3", "-m", "controlplane.local.serve")
MODEL_MOUNT = "/mnt/models"
STABLE, CANDIDATE = "stable", "candidate"
"""The ``--variant`` each side's engine answers in its ``x-canary-variant`` header."""

# Flagger's Gateway API tutorial (docs/gitbook/tutorials/gatewayapi-progressive-delivery.md)
FLAGGER_INTERVAL_S = 60.0  # analysis.interval: 1m
FLAGGER_THRESHOLD = 5  # analysis.threshold
FLAGGER_MAX_WEIGHT = 50  # analysis.maxWeight
FLAGGER_STEP_WEIGHT = 10  # analysis.stepWeight
FLAGGER_PROGRESS_DEADLINE_S = 60.0  # progressDeadlineSeconds


@dataclass(frozen=True)
class Pace:
    """Every interval of every tool divided by ``factor`` (1: as documented), never below
    ``floor_s`` seconds: a rate over less than two of Prometheus's 5 s scrapes has no value."""

    factor: float = 1.0
    floor_s: int = 10

    def seconds(self, upstream_s: float) -> int:
        return max(self.floor_s, round(upstream_s / self.factor))

    def duration(self, upstream_s: float) -> str:
        return f"{self.seconds(upstream_s)}s"


@dataclass(frozen=True)
class Candidate:
    """How a candidate's engine is made to behave: its ``--inject`` arguments (the verdict it
    should get is :class:`harness.peers.contest.ContestCandidate`'s)."""

    name: str
    inject: tuple[str, ...] = ()


DRIFT_PER_MINUTE = 0.5
"""The drift candidate's latency grows by this share of the stable's median every minute from
its engine's start (the engine's ``latency-drift`` fault): healthy at first, +50 % after a
minute, +150 % after three."""


def engine_args(
    model: str, variant: str, inject: tuple[str, ...] = (), extra: tuple[str, ...] = ()
) -> list[str]:
    """The engine's arguments as KServe's Hugging Face runtime gives them (``--model_name``,
    ``--model_dir``, ``--http_port``), the variant it answers as, and its faults."""
    return [
        f"--model_name={model}",
        f"--model_dir={MODEL_MOUNT}",
        f"--http_port={ENGINE_PORT}",
        f"--variant={variant}",
        *extra,
        *(f"--inject={fault}" for fault in inject),
    ]


def pod_template(
    app: str, image: str, model: str, model_dir: str, args: list[str]
) -> dict[str, Any]:
    """The engine's pod: ``app`` labelled (Flagger's and Rollouts' selectors), the node's model
    folder ``model_dir`` mounted, ready once the engine's ``/health`` answers (a crash loop never
    is)."""
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "containers": [
                {
                    "name": "engine",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": list(ENGINE_COMMAND),
                    "args": args,
                    "ports": [{"name": "http", "containerPort": ENGINE_PORT}],
                    "readinessProbe": {
                        "httpGet": {"path": "/health", "port": ENGINE_PORT},
                        "periodSeconds": 2,
                    },
                    "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}},
                    "volumeMounts": [{"name": "model", "mountPath": MODEL_MOUNT}],
                }
            ],
            "volumes": [{"name": "model", "hostPath": {"path": model_dir, "type": "Directory"}}],
            "terminationGracePeriodSeconds": 5,
        },
    }


def engine_deployment(
    namespace: str, app: str, image: str, model: str, model_dir: str, args: list[str]
) -> dict[str, Any]:
    """The Deployment Flagger's Canary targets: one replica of the engine."""
    template = pod_template(app, image, model, model_dir, args)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "namespace": namespace, "labels": {"app": app}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": app}},
            "template": template,
        },
    }


def flagger_traefik_service(
    namespace: str, app: str, side: str = "canary", port: int = ENGINE_PORT
) -> str:
    """The ``service`` label of Traefik v3.6.12's counters for a Service Flagger creates,
    ``<app>-canary`` or ``<app>-primary`` (``GetServiceNames`` in
    ``pkg/apis/flagger/v1beta1/canary.go``), as an HTTPRoute's backendRef
    (:func:`harness.cluster.traefik.traefik_service`)."""
    return f"{namespace}-{app}-{side}-http-{port}@kubernetesgateway"


def flagger_canary(
    namespace: str,
    app: str,
    host: str,
    gateway: tuple[str, str],
    pace: Pace,
    metrics: list[dict[str, Any]],
) -> dict[str, Any]:
    """The tutorial's Canary for the Deployment ``app``, on ``host`` through the Gateway
    ``gateway`` (namespace, name), every interval paced; its ``analysis.metrics`` are
    ``metrics`` (the contest's SLO, :func:`harness.peers.contest.flagger_slo`), each over the
    analysis interval; no HPA (one replica) and no webhooks (the load comes from the benchmark,
    as the tutorial's load tester sends it)."""
    interval = pace.duration(FLAGGER_INTERVAL_S)
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
            "progressDeadlineSeconds": pace.seconds(FLAGGER_PROGRESS_DEADLINE_S),
            "service": {
                "port": ENGINE_PORT,
                "targetPort": ENGINE_PORT,
                "hosts": [host],
                "gatewayRefs": [{"name": gateway[1], "namespace": gateway[0]}],
            },
            "analysis": {
                "interval": interval,
                "threshold": FLAGGER_THRESHOLD,
                "maxWeight": FLAGGER_MAX_WEIGHT,
                "stepWeight": FLAGGER_STEP_WEIGHT,
                "metrics": [{**m, "interval": interval} for m in metrics],
            },
        },
    }


# Argo Rollouts v1.10.2: docs/features/analysis.md, "Background Analysis" (the Rollout's steps and
# the success-rate AnalysisTemplate), docs/features/traffic-management/traefik.md (the router)
ROLLOUTS_WEIGHTS = (20, 40, 60, 80)  # setWeight steps
ROLLOUTS_PAUSE_S = 600.0  # pause: {duration: 10m} after each
ROLLOUTS_STARTING_STEP = 2  # analysis.startingStep: from setWeight: 40
ROLLOUTS_INTERVAL_S = 300.0  # the metric's interval: 5m
ROLLOUTS_FAILURE_LIMIT = 3  # failureLimit: 3
ROLLOUTS_PROGRESS_DEADLINE_S = 600.0  # spec.progressDeadlineSeconds' default (specification.md)


def rollouts_traefik_service(
    namespace: str, app: str, side: str = "canary", port: int = ENGINE_PORT
) -> str:
    """The ``service`` label Traefik v3.6.12 gives the Service ``<app>-canary`` or
    ``<app>-stable`` as a server of a TraefikService (``fullServiceName`` in
    ``pkg/provider/kubernetes/crd/kubernetes_http.go``: ``<namespace>-<name>-<port>``)."""
    return f"{namespace}-{app}-{side}-{port}@kubernetescrd"


def rollouts_objects(
    namespace: str,
    app: str,
    host: str,
    gateway: tuple[str, str],
    template: dict[str, Any],
    pace: Pace,
) -> list[dict[str, Any]]:
    """What Rollouts' Traefik router needs beside the Rollout: the stable and canary Services,
    the TraefikService whose weights it sets (traefik.md: its ``spec.weighted.services`` without
    weights), and the HTTPRoute of ``host`` on the Gateway, whose one backendRef is that
    TraefikService (Traefik's Gateway API provider takes a ``TraefikService`` backendRef named
    ``<namespace>-<name>@kubernetescrd``: ``loadHTTPBackendRef`` in
    ``pkg/provider/kubernetes/gateway/httproute.go``); then the Rollout (:func:`rollout`)."""
    services = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{app}-{side}", "namespace": namespace},
            "spec": {
                "selector": {"app": app},
                "ports": [{"name": "http", "port": ENGINE_PORT, "targetPort": ENGINE_PORT}],
            },
        }
        for side in ("stable", "canary")
    ]
    weighted = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {
            "weighted": {
                "services": [
                    {"name": f"{app}-{side}", "port": ENGINE_PORT} for side in ("stable", "canary")
                ]
            }
        },
    }
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": gateway[1], "namespace": gateway[0]}],
            "hostnames": [host],
            "rules": [
                {
                    "backendRefs": [
                        {
                            "group": "traefik.io",
                            "kind": "TraefikService",
                            "name": f"{namespace}-{app}@kubernetescrd",
                        }
                    ]
                }
            ],
        },
    }
    return [*services, weighted, route, rollout(namespace, app, template, pace)]


def rollout(namespace: str, app: str, template: dict[str, Any], pace: Pace) -> dict[str, Any]:
    """The Rollout of analysis.md's background analysis: ``setWeight`` 20, 40, 60, 80, each
    followed by a paced 10m pause, the AnalysisTemplate :func:`analysis_template` from step 2,
    traffic through the TraefikService ``app`` (traefik.md)."""
    steps: list[dict[str, Any]] = []
    for weight in ROLLOUTS_WEIGHTS:
        steps += [{"setWeight": weight}, {"pause": {"duration": pace.duration(ROLLOUTS_PAUSE_S)}}]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": app}},
            "template": template,
            "progressDeadlineSeconds": pace.seconds(ROLLOUTS_PROGRESS_DEADLINE_S),
            "strategy": {
                "canary": {
                    "canaryService": f"{app}-canary",
                    "stableService": f"{app}-stable",
                    "trafficRouting": {"traefik": {"weightedTraefikServiceName": app}},
                    "analysis": {
                        "templates": [{"templateName": app}],
                        "startingStep": ROLLOUTS_STARTING_STEP,
                    },
                    "steps": steps,
                }
            },
        },
    }


def analysis_template(namespace: str, app: str, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """The AnalysisTemplate the Rollout's background analysis runs: ``metrics`` (the contest's
    SLO, :func:`harness.peers.contest.rollouts_slo`)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {"metrics": metrics},
    }


# Ours: the spec's defaults (controlplane/spec/constants.py, controlplane/spec/models.py) and the
# controller's (controlplane/cli/controller.py); the spec has no default schedule or threshold
OURS_INTERVAL_S = 60.0  # analysis.interval: DEFAULT_INTERVAL, 1m
OURS_WINDOW_S = 300.0  # analysis.window: DEFAULT_WINDOW, 5m
OURS_MIN_SAMPLES = 100  # a check's minSamples: DEFAULT_MIN_SAMPLES
OURS_PROGRESS_DEADLINE_S = 1800.0  # canaryctl controller --progress-deadline: 30m
OURS_CLEANUP_DELAY_S = 600.0  # --promote-cleanup-delay, --rollback-cleanup-delay: 10m


def ours_min_samples(pace: Pace) -> int:
    """``minSamples`` for a window divided by the pace: the default's 100 requests in a 5m
    window are this many in the paced window at the same request rate (the pace shortens time,
    not the traffic), never fewer than 1."""
    return max(1, math.ceil(OURS_MIN_SAMPLES / pace.factor))


def ours_analysis(pace: Pace) -> dict[str, Any]:
    """``spec.analysis``: the default interval and window, paced, and the two built-ins with
    their defaults (``e2e-latency`` at the default quantile, ``error-rate``)."""
    return {
        "interval": pace.duration(OURS_INTERVAL_S),
        "window": pace.duration(OURS_WINDOW_S),
        "metrics": [
            {"name": "latency", "builtin": "e2e-latency"},
            {"name": "errors", "builtin": "error-rate"},
        ],
    }


def ours_steps(pace: Pace, checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``spec.steps``: Flagger's tutorial schedule (``stepWeight`` 10 up to ``maxWeight`` 50, one
    ``analysis.interval`` each, paced), then 100 %; each step rolls back on ``checks`` (the
    contest's SLO, :func:`harness.peers.contest.ours_checks`), ``for`` their default,
    ``minSamples`` :func:`ours_min_samples`."""
    samples = ours_min_samples(pace)
    weights = range(FLAGGER_STEP_WEIGHT, FLAGGER_MAX_WEIGHT + 1, FLAGGER_STEP_WEIGHT)
    duration = pace.duration(FLAGGER_INTERVAL_S)
    steps: list[dict[str, Any]] = [
        {
            "weight": w,
            "duration": duration,
            "rollbackOn": [{**c, "minSamples": samples} for c in checks],
        }
        for w in weights
    ]
    return [*steps, {"weight": 100}]


def ours_controller_flags(pace: Pace) -> list[str]:
    """The controller's timings that are not the spec's, paced: its progress deadline (a
    candidate never ready is rolled back after it) and both cleanup delays."""
    cleanup = pace.duration(OURS_CLEANUP_DELAY_S)
    return [
        f"--progress-deadline={pace.duration(OURS_PROGRESS_DEADLINE_S)}",
        f"--promote-cleanup-delay={cleanup}",
        f"--rollback-cleanup-delay={cleanup}",
    ]
