"""What a FakeKube serves, as discovery would find it, and how it stores each kind.

Owns the kind tables of :class:`~harness.kube.fake.FakeKube`: the (apiVersion, kind) pairs
served (:data:`SERVED_KINDS`: kube-apiserver v1.34's built-in kinds the product touches and the
CRDs the loopback test server installs), which kinds are cluster-scoped, which have a ``/status``
subresource, and which keep no ``metadata.generation``. Data only; called by
:mod:`harness.kube.fake` (its constructor's defaults and its writes).
"""

from __future__ import annotations

from controlplane.spec.models import API_VERSION, KIND

STATUS_SUBRESOURCE_KINDS: frozenset[str] = frozenset(
    {
        "ModelCanary",
        "InferenceService",
        "LLMInferenceService",
        "InferenceGraph",
        "Deployment",
        "StatefulSet",
        "ReplicaSet",
        "DaemonSet",
        "Job",
        "Pod",
        "Service",
        "Namespace",
        "Node",
        "PersistentVolumeClaim",
        "HorizontalPodAutoscaler",
        "HTTPRoute",
        "Gateway",
        "VirtualService",
        "DestinationRule",
    }
)
"""Kinds served with a ``/status`` subresource unless the constructor is told otherwise."""

CLUSTER_SCOPED_KINDS: frozenset[str] = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "APIService",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "GatewayClass",
        "ClusterServingRuntime",
        "ClusterStorageContainer",
    }
)

_SERVED: dict[str, tuple[str, ...]] = {
    # built in (kube-apiserver v1.34)
    "v1": (
        "Binding",
        "ComponentStatus",
        "ConfigMap",
        "Endpoints",
        "Event",
        "LimitRange",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Pod",
        "PodTemplate",
        "ReplicationController",
        "ResourceQuota",
        "Secret",
        "Service",
        "ServiceAccount",
    ),
    "apps/v1": ("ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"),
    "batch/v1": ("CronJob", "Job"),
    "autoscaling/v1": ("HorizontalPodAutoscaler",),
    "autoscaling/v2": ("HorizontalPodAutoscaler",),
    "coordination.k8s.io/v1": ("Lease",),
    "events.k8s.io/v1": ("Event",),
    "networking.k8s.io/v1": ("Ingress", "IngressClass", "NetworkPolicy"),
    "policy/v1": ("PodDisruptionBudget",),
    "rbac.authorization.k8s.io/v1": ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"),
    "authentication.k8s.io/v1": ("SelfSubjectReview", "TokenReview"),
    "authorization.k8s.io/v1": (
        "LocalSubjectAccessReview",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
        "SubjectAccessReview",
    ),
    "apiextensions.k8s.io/v1": ("CustomResourceDefinition",),
    "apiregistration.k8s.io/v1": ("APIService",),
    "admissionregistration.k8s.io/v1": (
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ),
    "scheduling.k8s.io/v1": ("PriorityClass",),
    "storage.k8s.io/v1": ("StorageClass",),
    "discovery.k8s.io/v1": ("EndpointSlice",),
    # the CRDs the loopback test server installs (harness.cluster.upstream_crds)
    API_VERSION: (KIND,),
    "serving.kserve.io/v1beta1": ("InferenceService",),
    "serving.kserve.io/v1alpha1": (
        "ClusterServingRuntime",
        "InferenceGraph",
        "LLMInferenceService",
        "LLMInferenceServiceConfig",
        "ServingRuntime",
    ),
    "serving.kserve.io/v1alpha2": ("LLMInferenceService", "LLMInferenceServiceConfig"),
    "gateway.networking.k8s.io/v1": (
        "BackendTLSPolicy",
        "GRPCRoute",
        "Gateway",
        "GatewayClass",
        "HTTPRoute",
        "ReferenceGrant",
    ),
    "gateway.networking.k8s.io/v1beta1": ("Gateway", "GatewayClass", "HTTPRoute", "ReferenceGrant"),
    **{
        f"networking.istio.io/{version}": (
            "DestinationRule",
            "Gateway",
            "ServiceEntry",
            "Sidecar",
            "VirtualService",
            "WorkloadEntry",
            "WorkloadGroup",
        )
        for version in ("v1", "v1beta1", "v1alpha3")
    },
    "monitoring.coreos.com/v1": ("PodMonitor", "PrometheusRule", "ServiceMonitor"),
    # not on the loopback server: Argo CD's Application (read by controlplane.gitops)
    "argoproj.io/v1alpha1": ("Application",),
}

SERVED_KINDS: frozenset[tuple[str, str]] = frozenset(
    (api_version, kind) for api_version, kinds in _SERVED.items() for kind in kinds
)
"""(apiVersion, kind) pairs a FakeKube serves unless told otherwise: the built-in kinds of
kube-apiserver v1.34 the product and its tests touch, the product's ModelCanary, KServe v0.20,
Gateway API v1.5 (standard), Istio networking v1.27 and Prometheus Operator v0.85 (what the
loopback test server installs), and Argo CD's Application."""

NO_GENERATION_KINDS: frozenset[str] = frozenset(
    {
        "ConfigMap",
        "Secret",
        "Event",
        "Lease",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "Namespace",
        "Endpoints",
        "EndpointSlice",
        "Node",
        "LimitRange",
        "ResourceQuota",
        "PodTemplate",
        "ControllerRevision",
    }
)
"""Built-in kinds kube-apiserver keeps no ``metadata.generation`` for (custom resources always
have one)."""
