#!/usr/bin/env bash
# A local Kubernetes for controlplane: a kind cluster with "GPU" workers, Gateway API, Envoy Gateway
# (the Gateway controller) with a GatewayClass and the Gateways, cert-manager, KServe in Standard
# mode (raw Deployments, no Knative) with Gateway API and its serving runtimes,
# kube-prometheus-stack, the controller image and chart, and an example canary. The cluster the
# e2e suite (pytest -m e2e tests/e2e) runs on.
#
#   scripts/kind-up.sh            everything
#   scripts/kind-up.sh --no-image skip docker build / kind load (use image.repository/tag instead)
#   STEPS="cluster gpus" scripts/kind-up.sh   only some steps, in the order given
#                                 (cluster gpus gateway certmanager kserve prometheus image chart canary)
#   scripts/kind-up.sh --down     delete the cluster
#
# Needs: kind, kubectl, helm (v3.8+ or v4; every chart is pulled from an OCI registry), docker.
#
# What it installs, and where:
#   gateway     Gateway API CRDs (standard channel); Envoy Gateway's CRDs and controller in
#               envoy-gateway-system; an EnvoyProxy giving each Gateway a ClusterIP Service (kind has
#               no load balancer: an address-less Gateway is never Programmed); the GatewayClass
#               "envoy" that KServe's chart names; the Gateway gateway-system/inference-gateway
#               that the examples in canary/ route through.
#   certmanager cert-manager (KServe's webhook certificates).
#   kserve      KServe's charts kserve-crd, kserve-resources and kserve-runtime-configs in kserve:
#               Standard deployment mode, Gateway API on, and the Gateway KServe routes through by
#               default (kserve/kserve-ingress-gateway, created by its chart on class "envoy");
#               the ClusterServingRuntimes, kserve-huggingfaceserver among them.
#   prometheus  kube-prometheus-stack in monitoring (Prometheus Operator, Prometheus, Grafana).
#   chart       charts/controlplane in canary-system, pointed at that Prometheus.
#   canary      canary/four-week.yml in ml-serving.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- Pins. tests/scripts/test_kind_up.py reads these lines (NAME="${NAME:-value}") and holds them
# against the pins of the loopback API server the tests run (harness/cluster/upstream_crds.py:
# KServe, Gateway API, Prometheus Operator) and against the upstream Go modules (kind's node image,
# Envoy Gateway's Gateway API). Bump them together; the test says what disagrees.
# kind v0.30.0 and the node image it was released with (Kubernetes 1.34, what the tests' API server
# runs); a digest, as kind's release notes ask.
KIND_VERSION="${KIND_VERSION:-v0.30.0}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a}"
# KServe v0.20.0 requires Gateway API v1.5.1 (its go.mod) and pins Envoy Gateway v1.8.1
# (kserve-deps.env), which is built against Gateway API v1.5.1 too.
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.5.1}"
ENVOY_GATEWAY_VERSION="${ENVOY_GATEWAY_VERSION:-v1.8.1}"
# cert-manager 1.19 is the first line built against Kubernetes 1.34 (k8s.io 0.34).
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.19.2}"
KSERVE_VERSION="${KSERVE_VERSION:-v0.20.0}"
# kube-prometheus-stack 77.6.2 ships Prometheus Operator v0.85.0 (its Chart.yaml appVersion).
KUBE_PROMETHEUS_STACK_VERSION="${KUBE_PROMETHEUS_STACK_VERSION:-77.6.2}"
# --- end of pins

CLUSTER="${CLUSTER:-controlplane}"
NAMESPACE="${NAMESPACE:-canary-system}"
CANARY_NAMESPACE="${CANARY_NAMESPACE:-ml-serving}"
RELEASE="${RELEASE:-controlplane}"
EXAMPLE_CANARY="${EXAMPLE_CANARY:-canary/four-week.yml}"
PROM_RELEASE="${PROM_RELEASE:-kps}"
PROM_NAMESPACE=monitoring
# KServe's chart creates its Gateway in its own namespace, and its inferenceservice-config names
# kserve/kserve-ingress-gateway by default: the namespace is not a choice.
KSERVE_NAMESPACE=kserve
EG_NAMESPACE=envoy-gateway-system
GATEWAY_CLASS=envoy
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' controlplane/__init__.py)"
IMAGE="${IMAGE:-canaryctl:${VERSION}}"
STEPS="${STEPS:-cluster gpus gateway certmanager kserve prometheus image chart canary}"

log() { printf '\n==> %s\n' "$*"; }
need() { command -v "$1" >/dev/null || { echo "error: $1 is not on PATH" >&2; exit 1; }; }
# server-side apply of the YAML on stdin, as one field manager
apply() { kubectl apply --server-side --field-manager=kind-up -f -; }

for arg in "$@"; do
  case "$arg" in
    --down) need kind; kind delete cluster --name "$CLUSTER"; exit 0 ;;
    --no-image) STEPS="${STEPS/image/}" ;;
    *) echo "usage: $0 [--down] [--no-image]" >&2; exit 2 ;;
  esac
done

step_cluster() {
  need kind
  need kubectl
  local have
  have="$(kind version | awk '{print $2}')"
  if [[ "$have" != "$KIND_VERSION" ]]; then
    echo "warning: kind $have; $KIND_NODE_IMAGE is the node image of kind $KIND_VERSION" >&2
  fi
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "kind cluster $CLUSTER exists"
  else
    log "kind cluster $CLUSTER ($KIND_NODE_IMAGE)"
    kind create cluster --name "$CLUSTER" --image "$KIND_NODE_IMAGE" --config kind-config.yaml --wait 120s
  fi
  kubectl config use-context "kind-$CLUSTER" >/dev/null
}

# kind cannot expose GPUs: advertise the extended resource nvidia.com/gpu on every worker that has
# the nvidia.com/gpu.count label, through the node's status subresource (what a device plugin would
# do). The scheduler then places GPU pods on them; nothing runs on a real GPU.
step_gpus() {
  log "fake nvidia.com/gpu capacity on the GPU-labelled workers"
  local node count
  for node in $(kubectl get nodes -l nvidia.com/gpu.present=true -o jsonpath='{.items[*].metadata.name}'); do
    count="$(kubectl get node "$node" -o jsonpath='{.metadata.labels.nvidia\.com/gpu\.count}')"
    kubectl patch node "$node" --subresource=status --type=json -p \
      "[{\"op\":\"add\",\"path\":\"/status/capacity/nvidia.com~1gpu\",\"value\":\"${count}\"}]" >/dev/null
    echo "  $node: nvidia.com/gpu=$count"
  done
}

step_gateway() {
  need helm
  log "Gateway API $GATEWAY_API_VERSION CRDs (standard channel)"
  kubectl apply --server-side --field-manager=kind-up -f \
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/standard-install.yaml"
  log "Envoy Gateway $ENVOY_GATEWAY_VERSION in $EG_NAMESPACE"
  # Envoy Gateway's own CRDs only: its gateway-helm chart would also install Gateway API's
  # experimental channel over the standard one above (hence --skip-crds below).
  helm template eg-crds oci://docker.io/envoyproxy/gateway-crds-helm --version "$ENVOY_GATEWAY_VERSION" \
    --set crds.gatewayAPI.enabled=false --set crds.envoyGateway.enabled=true | apply
  helm upgrade --install eg oci://docker.io/envoyproxy/gateway-helm --version "$ENVOY_GATEWAY_VERSION" \
    --namespace "$EG_NAMESPACE" --create-namespace --skip-crds --wait --timeout 5m
  log "GatewayClass $GATEWAY_CLASS and Gateway gateway-system/inference-gateway"
  apply <<EOF
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyProxy
metadata:
  name: kind
  namespace: ${EG_NAMESPACE}
spec:
  provider:
    type: Kubernetes
    kubernetes:
      envoyService:
        type: ClusterIP
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: ${GATEWAY_CLASS}
spec:
  controllerName: gateway.envoyproxy.io/gatewayclass-controller
  parametersRef:
    group: gateway.envoyproxy.io
    kind: EnvoyProxy
    name: kind
    namespace: ${EG_NAMESPACE}
---
apiVersion: v1
kind: Namespace
metadata:
  name: gateway-system
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: inference-gateway
  namespace: gateway-system
spec:
  gatewayClassName: ${GATEWAY_CLASS}
  listeners:
  - name: http
    protocol: HTTP
    port: 80
    allowedRoutes:
      namespaces:
        from: All
EOF
  kubectl wait --for=condition=Accepted "gatewayclass/$GATEWAY_CLASS" --timeout=120s
  kubectl wait --for=condition=Programmed gateway/inference-gateway -n gateway-system --timeout=300s
}

step_certmanager() {
  need helm
  log "cert-manager $CERT_MANAGER_VERSION (KServe's webhook certificates)"
  helm upgrade --install cert-manager oci://quay.io/jetstack/charts/cert-manager \
    --version "$CERT_MANAGER_VERSION" --namespace cert-manager --create-namespace \
    --set crds.enabled=true --wait --timeout 5m
}

# KServe's own install (hack/setup/infra/manage.kserve-helm.sh at the pinned version): the CRD
# chart, the controller chart with the deployment mode and Gateway API settings, then the runtimes.
step_kserve() {
  need helm
  local charts=oci://ghcr.io/kserve/charts
  log "KServe $KSERVE_VERSION (Standard mode, Gateway API) in $KSERVE_NAMESPACE"
  helm upgrade --install kserve-crd "$charts/kserve-crd" --version "$KSERVE_VERSION" \
    --namespace "$KSERVE_NAMESPACE" --create-namespace --wait
  helm upgrade --install kserve-resources "$charts/kserve-resources" --version "$KSERVE_VERSION" \
    --namespace "$KSERVE_NAMESPACE" --create-namespace \
    --set kserve.version="$KSERVE_VERSION" \
    --set kserve.controller.deploymentMode=Standard \
    --set kserve.controller.gateway.ingressGateway.enableGatewayApi=true \
    --set kserve.controller.gateway.ingressGateway.className="$GATEWAY_CLASS" \
    --set kserve.controller.gateway.ingressGateway.createGateway=true \
    --wait --timeout 10m
  # ClusterServingRuntimes (kserve-huggingfaceserver serves the huggingface format the
  # controller renders); the LLMInferenceService presets need the llmisvc controller: off.
  helm upgrade --install kserve-runtime-configs "$charts/kserve-runtime-configs" \
    --version "$KSERVE_VERSION" --namespace "$KSERVE_NAMESPACE" \
    --set kserve.version="$KSERVE_VERSION" \
    --set kserve.servingruntime.enabled=true \
    --set kserve.llmisvcConfigs.enabled=false --wait
  kubectl wait --for=condition=Programmed gateway/kserve-ingress-gateway -n "$KSERVE_NAMESPACE" --timeout=300s
  kubectl get clusterservingruntime kserve-huggingfaceserver
}

step_prometheus() {
  need helm
  log "kube-prometheus-stack $KUBE_PROMETHEUS_STACK_VERSION (Prometheus, Grafana + dashboard sidecar)"
  helm upgrade --install "$PROM_RELEASE" oci://ghcr.io/prometheus-community/charts/kube-prometheus-stack \
    --version "$KUBE_PROMETHEUS_STACK_VERSION" --namespace "$PROM_NAMESPACE" --create-namespace \
    --set fullnameOverride=kube-prometheus-stack \
    --set grafana.sidecar.dashboards.enabled=true \
    --set grafana.sidecar.dashboards.searchNamespace=ALL \
    --wait --timeout 10m
}

step_image() {
  need docker
  need kind
  log "image $IMAGE (Dockerfile), loaded into kind"
  docker build -t "$IMAGE" .
  kind load docker-image "$IMAGE" --name "$CLUSTER"
}

step_chart() {
  need helm
  log "chart charts/controlplane as release $RELEASE in $NAMESPACE"
  helm upgrade --install "$RELEASE" charts/controlplane --namespace "$NAMESPACE" --create-namespace \
    --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
    --set image.pullPolicy=IfNotPresent \
    --set controller.prometheusUrl="http://kube-prometheus-stack-prometheus.${PROM_NAMESPACE}:9090" \
    --set podMonitor.labels.release="$PROM_RELEASE" \
    --set serviceMonitor.labels.release="$PROM_RELEASE" \
    --set prometheusRule.labels.release="$PROM_RELEASE" \
    --set dashboards.namespace="$PROM_NAMESPACE" \
    --wait --timeout 5m
}

step_canary() {
  need kubectl
  log "example canary $EXAMPLE_CANARY in $CANARY_NAMESPACE"
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n' "$CANARY_NAMESPACE" | apply
  # canary/four-week.yml runs on nvidia-l40s, which the first kind worker pretends to have, and
  # routes through gateway-system/inference-gateway (the gateway step)
  sed "s/namespace: ml-serving/namespace: $CANARY_NAMESPACE/" "$EXAMPLE_CANARY" | apply
  kubectl get mcanary -n "$CANARY_NAMESPACE"
  echo "watch it: kubectl canary get -w -n $CANARY_NAMESPACE"
}

for step in $STEPS; do
  if ! declare -F "step_$step" >/dev/null; then
    echo "error: unknown step $step (cluster gpus gateway certmanager kserve prometheus image chart canary)" >&2
    exit 2
  fi
done
for step in $STEPS; do
  "step_$step"
done
log "done: kubectl --context kind-$CLUSTER get pods -A"
cat <<EOF
The Gateways have ClusterIP addresses. To send requests through inference-gateway:
  kubectl -n $EG_NAMESPACE port-forward \\
    "\$(kubectl -n $EG_NAMESPACE get service -o name -l gateway.envoyproxy.io/owning-gateway-name=inference-gateway)" 8080:80
EOF
