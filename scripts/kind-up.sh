#!/usr/bin/env bash
# A local Kubernetes for controlplane: kind cluster with GPU-labelled workers, Gateway API CRDs,
# cert-manager, KServe (Standard / RawDeployment mode), kube-prometheus-stack, the controller image
# and chart, and an example canary. The path the e2e suite (pytest -m e2e tests/e2e) runs on.
#
#   scripts/kind-up.sh            everything
#   scripts/kind-up.sh --no-image skip docker build / kind load (use image.repository/tag instead)
#   STEPS="cluster gpus" scripts/kind-up.sh   only some steps (cluster gpus gateway certmanager
#                                             kserve prometheus image chart canary)
#   scripts/kind-up.sh --down     delete the cluster
#
# Needs: kind, kubectl, helm (v3.8+ or v4), docker. Versions are pinned below; bump them together
# and run the e2e suite.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${CLUSTER:-controlplane}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.34.0}"   # kind v0.30
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.3.0}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.18.2}"
KSERVE_VERSION="${KSERVE_VERSION:-v0.21.0}"
KUBE_PROMETHEUS_STACK_VERSION="${KUBE_PROMETHEUS_STACK_VERSION:-77.6.2}"
# Standard is KServe >= 0.20's name for RawDeployment (no Knative); older KServe: RawDeployment.
KSERVE_DEPLOYMENT_MODE="${KSERVE_DEPLOYMENT_MODE:-Standard}"
NAMESPACE="${NAMESPACE:-canary-system}"
CANARY_NAMESPACE="${CANARY_NAMESPACE:-ml-serving}"
RELEASE="${RELEASE:-controlplane}"
EXAMPLE_CANARY="${EXAMPLE_CANARY:-canary/four-week.yml}"
PROM_RELEASE="${PROM_RELEASE:-kps}"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' controlplane/__init__.py)"
IMAGE="${IMAGE:-canaryctl:${VERSION}}"
STEPS="${STEPS:-cluster gpus gateway certmanager kserve prometheus image chart canary}"

log() { printf '\n==> %s\n' "$*"; }
need() { command -v "$1" >/dev/null || { echo "error: $1 is not on PATH" >&2; exit 1; }; }

for arg in "$@"; do
  case "$arg" in
    --down) need kind; kind delete cluster --name "$CLUSTER"; exit 0 ;;
    --no-image) STEPS="${STEPS/image/}" ;;
    *) echo "usage: $0 [--down] [--no-image]" >&2; exit 2 ;;
  esac
done

step_cluster() {
  need kind
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
  log "Gateway API CRDs $GATEWAY_API_VERSION"
  kubectl apply --server-side -f \
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/standard-install.yaml"
}

step_certmanager() {
  need helm
  log "cert-manager $CERT_MANAGER_VERSION (KServe's webhooks need it)"
  helm upgrade --install cert-manager oci://quay.io/jetstack/charts/cert-manager \
    --version "$CERT_MANAGER_VERSION" --namespace cert-manager --create-namespace \
    --set crds.enabled=true --wait
}

step_kserve() {
  need helm
  log "KServe $KSERVE_VERSION ($KSERVE_DEPLOYMENT_MODE mode, no Knative)"
  helm upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd \
    --version "$KSERVE_VERSION" --namespace kserve --create-namespace --wait
  helm upgrade --install kserve oci://ghcr.io/kserve/charts/kserve \
    --version "$KSERVE_VERSION" --namespace kserve \
    --set kserve.controller.deploymentMode="$KSERVE_DEPLOYMENT_MODE" \
    --set kserve.controller.gateway.ingressGateway.enableGatewayApi=true --wait
}

step_prometheus() {
  need helm
  log "kube-prometheus-stack $KUBE_PROMETHEUS_STACK_VERSION (Prometheus, Grafana + dashboard sidecar)"
  helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null
  helm repo update prometheus-community >/dev/null
  helm upgrade --install "$PROM_RELEASE" prometheus-community/kube-prometheus-stack \
    --version "$KUBE_PROMETHEUS_STACK_VERSION" --namespace monitoring --create-namespace \
    --set fullnameOverride=kube-prometheus-stack \
    --set grafana.sidecar.dashboards.enabled=true \
    --set grafana.sidecar.dashboards.searchNamespace=ALL \
    --wait --timeout 10m
}

step_image() {
  need docker
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
    --set controller.prometheusUrl=http://kube-prometheus-stack-prometheus.monitoring:9090 \
    --set podMonitor.labels.release="$PROM_RELEASE" \
    --set serviceMonitor.labels.release="$PROM_RELEASE" \
    --set prometheusRule.labels.release="$PROM_RELEASE" \
    --set dashboards.namespace=monitoring \
    --wait --timeout 5m
}

step_canary() {
  log "example canary in $CANARY_NAMESPACE"
  kubectl create namespace "$CANARY_NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
  # canary/four-week.yml runs on nvidia-l40s, which the first kind worker pretends to have
  sed "s/namespace: ml-serving/namespace: $CANARY_NAMESPACE/" "$EXAMPLE_CANARY" | kubectl apply -f -
  kubectl get mcanary -n "$CANARY_NAMESPACE"
  echo "watch it: kubectl canary get -w -n $CANARY_NAMESPACE"
}

for step in $STEPS; do
  "step_$step"
done
log "done: kubectl --context kind-$CLUSTER get pods -A"
