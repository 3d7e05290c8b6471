#!/usr/bin/env bash
# Build the loopback cluster's programs from their published Go modules (only the Go
# module proxy is needed, no git checkout) into a per-user cache folder:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/controlplane-tools/kube-<KUBE_VERSION>/bin/
#       kube-apiserver  kube-controller-manager  kube-scheduler  kubectl  kubelet  kube-proxy
#       etcd  kwok  helm  coredns
#       kserve-manager  pause  traefik
#       prometheus-operator  prometheus
#       llmisvc-manager
#
# Idempotent: exits at once when every binary exists and answers --version.
# The last line printed is the bin folder, e.g.  BIN=$(scripts/build-kube.sh | tail -n1)
#
# k8s.io/kubernetes cannot be built as a dependency as-is: its go.mod points every
# staging module (k8s.io/api, k8s.io/apimachinery, ...) at ./staging/src/...,
# which is not part of the published module. A throwaway module outside the
# repository replaces each of them by its published v0.<minor>.<patch> version.
set -euo pipefail

# --- pins -------------------------------------------------------------------
# Newest v1.34.x on the Go module proxy that also has a checksum database entry
# (checked with `go list -m k8s.io/kubernetes@v1.34.N` / `go mod download`):
# v1.34.11 and v1.34.12 are listed by the proxy but fail checksum verification
# (checksum database lookup 404), v1.34.6 is not on the proxy.
KUBE_VERSION="v1.34.10"
# Staging modules are tagged v0.<minor>.<patch> from the same release commit
# (`go list -m -versions k8s.io/api` lists v0.34.10).
STAGING_VERSION="v0.34.10"
# etcd that Kubernetes v1.34.10 itself tests against: hack/lib/etcd.sh in
# k8s.io/kubernetes@v1.34.10 sets ETCD_VERSION=3.6.5 (its go.mod pins the etcd
# client libraries at v3.6.4). The etcd main package is the root of
# go.etcd.io/etcd/server/v3 (server/main.go).
ETCD_VERSION="v3.6.5"
# kwok (fake nodes and pods for kube-controller-manager's Deployments): v0.7.0 is
# the release built against k8s.io 0.33 and Go 1.24 (v0.8.0 needs Go 1.26, k8s.io 0.36).
KWOK_VERSION="v0.7.0"
# Helm v3.19.x is the last line built against k8s.io 0.34 (v3.20 moved to 0.35); its
# go.mod has no replace directives, so a plain `go get` builds what the release builds.
HELM_VERSION="v3.19.5"
# The KServe whose CRDs harness/cluster/upstream_crds.py installs. Its go.mod pins
# controller-runtime and k8s.io with replace directives, which only the main module's
# go.mod applies: the manager is therefore built inside a copy of the module itself.
KSERVE_VERSION="v0.20.0"
# The Prometheus Operator whose CRDs harness/cluster/upstream_crds.py installs (keep the two
# equal). Its go.mod replaces pkg/apis/monitoring and pkg/client by their folders, which are
# modules of their own published at the same version and required at it: a plain `go get` of
# cmd/operator resolves the same code, so it builds in a throwaway module like kwok and helm.
PROMETHEUS_OPERATOR_VERSION="v0.85.0"
# The Prometheus that operator deploys by default (its pkg/operator/defaults.go
# DefaultPrometheusVersion, v3.5.0; Prometheus v3.5.0 is the module version v0.305.0, which the
# operator's go.mod requires too). Debian's prometheus 2.42 cannot stand in: it is built without
# Kubernetes service discovery. Its go.mod has a replace directive: built in a module copy.
PROMETHEUS_VERSION="v3.5.0"
PROMETHEUS_MODULE_VERSION="v0.305.0"
# The sandbox ("pause") image Kubernetes v1.34.10 uses: kubeadm's PauseVersion
# (cmd/kubeadm/app/constants/constants.go) and build/pause/Makefile's TAG are both 3.10.1. Its
# program is build/pause/linux/pause.c of the same k8s.io/kubernetes module, compiled with the
# Makefile's flags (-Os -Wall -Werror -static) by the C compiler here.
PAUSE_VERSION="3.10.1"
# Traefik, the Gateway API data plane of the real-traffic tests (harness/cluster/traefik.py):
# Envoy is in no registry reached here. v3.7.x cannot be built from the module proxy: its go.mod
# replaces github.com/abbot/go-http-auth by a containous/go-http-auth pseudo-version the proxy
# refuses (403 "not available"); v3.6.12's replacement is there. Its go.mod has replace
# directives: built inside a copy of the module, stamped as its Makefile does.
TRAEFIK_VERSION="v3.6.12"
# CoreDNS, the real node's cluster DNS (harness/node/services.py): the version kubeadm v1.34.10
# installs (cmd/kubeadm/app/constants/constants.go, CoreDNSVersion = "v1.12.1"). Its go.mod has no
# replace directive: built in a throwaway module, with the plugins the node's Corefile uses only.
COREDNS_VERSION="v1.12.1"
# -----------------------------------------------------------------------------

GO_MIN_MINOR=25 # Traefik v3.6.12's go.mod says go 1.25 (Kubernetes' and KServe's say 1.24)

die() {
	echo "error: $*" >&2
	exit 2
}

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/controlplane-tools"
BIN_DIR="${CACHE_ROOT}/kube-${KUBE_VERSION}/bin"
ETCD="${BIN_DIR}/etcd"
KWOK="${BIN_DIR}/kwok"

# kube-apiserver --version -> "Kubernetes v1.34.10"; etcd --version -> "etcd Version: 3.6.5 ...";
# kwok --version -> "kwok version v0.7.0 ..."
says() { # says TEXT COMMAND...: the command's output contains TEXT (read whole first: grep -q stops at
	# the first match, and under pipefail a command still printing would fail with SIGPIPE at random)
	local text="$1" out
	shift
	out="$("$@" 2>/dev/null)" && grep -qF "$text" <<<"$out"
}
has() { # has BINARY TEXT: the binary exists and its --version says TEXT
	[[ -x "$1" ]] && says "$2" "$1" --version
}
kube_ok() { has "${BIN_DIR}/$1" "Kubernetes ${KUBE_VERSION}"; }
etcd_ok() { has "$ETCD" "etcd Version: ${ETCD_VERSION#v}"; }
kwok_ok() { has "$KWOK" "${KWOK_VERSION}"; }
# kubectl version --client -> "Client Version: v1.34.10"; helm version --short -> "v3.19.5+g..."
kubectl_ok() { [[ -x "${BIN_DIR}/kubectl" ]] && says "Client Version: ${KUBE_VERSION}" "${BIN_DIR}/kubectl" version --client; }
helm_ok() { [[ -x "${BIN_DIR}/helm" ]] && says "${HELM_VERSION}" "${BIN_DIR}/helm" version --short; }
# the KServe manager has no version flag: a stamp beside it records the module it came from
kserve_ok() { [[ -x "${BIN_DIR}/kserve-manager" ]] && grep -qxF "${KSERVE_VERSION}" "${BIN_DIR}/kserve-manager.version" 2>/dev/null; }
# KServe's LLMInferenceService controller (cmd/llmisvc, a separate binary), stamped the same way
llmisvc_ok() { [[ -x "${BIN_DIR}/llmisvc-manager" ]] && grep -qxF "${KSERVE_VERSION}" "${BIN_DIR}/llmisvc-manager.version" 2>/dev/null; }
# prometheus-operator --version -> "prometheus-operator, version 0.85.0 (branch: ..."
promop_ok() { has "${BIN_DIR}/prometheus-operator" "prometheus-operator, version ${PROMETHEUS_OPERATOR_VERSION#v} "; }
# prometheus --version -> "prometheus, version 3.5.0 (branch: ..."
prometheus_ok() { has "${BIN_DIR}/prometheus" "prometheus, version ${PROMETHEUS_VERSION#v} "; }
# the sandbox image's program (harness/node/images.py): pause -v -> "pause.c v3.10.1-..."
pause_ok() { [[ -x "${BIN_DIR}/pause" ]] && says "pause.c v${PAUSE_VERSION}" "${BIN_DIR}/pause" -v; }
# traefik version -> "Version:      3.6.12"
traefik_ok() { [[ -x "${BIN_DIR}/traefik" ]] && says "${TRAEFIK_VERSION#v}" "${BIN_DIR}/traefik" version; }
# coredns -version -> "CoreDNS-1.12.1" (coremain/version.go, showVersion)
coredns_ok() { [[ -x "${BIN_DIR}/coredns" ]] && says "CoreDNS-${COREDNS_VERSION#v}" "${BIN_DIR}/coredns" -version; }
binaries_ok() {
	promop_ok && prometheus_ok && kube_ok kube-apiserver && kube_ok kube-controller-manager && kube_ok kube-scheduler && kubectl_ok && etcd_ok && kwok_ok &&
		helm_ok && kserve_ok && llmisvc_ok && kube_ok kubelet && kube_ok kube-proxy && pause_ok && traefik_ok && coredns_ok
}

if binaries_ok; then
	echo "$BIN_DIR"
	exit 0
fi

# GO=/path/to/go overrides; otherwise `go` on PATH, then the default tarball location.
if [[ -z "${GO:-}" ]]; then
	GO=go
	if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
		GO=/usr/local/go/bin/go
	fi
fi
if ! command -v "$GO" >/dev/null 2>&1; then
	echo "error: go is required to build the Kubernetes binaries: install Go >= 1.${GO_MIN_MINOR}" >&2
	exit 2
fi

go_version="$("$GO" env GOVERSION 2>/dev/null || true)" # e.g. go1.26.8
go_minor="${go_version#go1.}"
go_minor="${go_minor%%[!0-9]*}"
if [[ "$go_version" != go1.* || -z "$go_minor" || "$go_minor" -lt "$GO_MIN_MINOR" ]]; then
	echo "error: go is required to build the Kubernetes binaries: install Go >= 1.${GO_MIN_MINOR}${go_version:+ (found ${go_version})}" >&2
	exit 2
fi

# Keep builds away from any surrounding module/workspace and from the repo.
export GO111MODULE=on GOWORK=off GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/kubebuild.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$BIN_DIR" "$WORK/out"

# --- kube-apiserver, kube-controller-manager, kube-scheduler and kubectl ----------
mkdir "$WORK/kube"
(
	cd "$WORK/kube"
	"$GO" mod init controlplane-tools.local/kubebuild >/dev/null 2>&1
	"$GO" mod edit -require="k8s.io/kubernetes@${KUBE_VERSION}"
	kube_gomod="$("$GO" mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
	[[ -f "$kube_gomod" ]] || die "could not download k8s.io/kubernetes@${KUBE_VERSION}"
	# every "k8s.io/<name> => ./staging/src/k8s.io/<name>" line of kubernetes' go.mod
	mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/src/.*#\1#p' "$kube_gomod")
	((${#staging[@]} > 0)) || die "no staging replace directives found in $kube_gomod"
	for m in "${staging[@]}"; do
		"$GO" mod edit -replace="${m}=${m}@${STAGING_VERSION}"
	done
	"$GO" get "k8s.io/kubernetes/cmd/kube-apiserver@${KUBE_VERSION}" \
		"k8s.io/kubernetes/cmd/kube-controller-manager@${KUBE_VERSION}" \
		"k8s.io/kubernetes/cmd/kube-scheduler@${KUBE_VERSION}" \
		"k8s.io/kubernetes/cmd/kubectl@${KUBE_VERSION}" \
		"k8s.io/kubernetes/cmd/kubelet@${KUBE_VERSION}" \
		"k8s.io/kubernetes/cmd/kube-proxy@${KUBE_VERSION}"
	# same version stamping, tags and stripping as hack/lib/golang.sh in a release build
	minor="${KUBE_VERSION#v1.}"
	minor="${minor%%.*}"
	ldflags="-s -w"
	for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
		ldflags+=" -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
	done
	# kube-proxy shares nearly every package with kubelet: built after it, it costs little more
	for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
		if [[ "$cmd" == kubectl ]]; then kubectl_ok && continue; else kube_ok "$cmd" && continue; fi
		"$GO" build -tags=selinux,notest,grpcnotrace -ldflags="$ldflags" \
			-o "$WORK/out/${cmd}" "k8s.io/kubernetes/cmd/${cmd}"
	done
	if ! pause_ok; then
		pause_c="$("$GO" env GOMODCACHE)/k8s.io/kubernetes@${KUBE_VERSION}/build/pause/linux/pause.c"
		[[ -f "$pause_c" ]] || die "no build/pause/linux/pause.c in k8s.io/kubernetes@${KUBE_VERSION}"
		"${CC:-cc}" -Os -Wall -Werror -static "-DVERSION=v${PAUSE_VERSION}-controlplane" \
			-o "$WORK/out/pause" "$pause_c"
	fi
)

# --- etcd ----------------------------------------------------------------------
mkdir "$WORK/etcd"
etcd_ok || (
	cd "$WORK/etcd"
	"$GO" mod init controlplane-tools.local/etcdbuild >/dev/null 2>&1
	"$GO" get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
	"$GO" build -ldflags="-s -w" -o "$WORK/out/etcd" go.etcd.io/etcd/server/v3
)

# --- kwok ------------------------------------------------------------------------
mkdir "$WORK/kwok"
kwok_ok || (
	cd "$WORK/kwok"
	"$GO" mod init controlplane-tools.local/kwokbuild >/dev/null 2>&1
	"$GO" get "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
	# as hack/releases.sh stamps a release
	"$GO" build -ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}" \
		-o "$WORK/out/kwok" sigs.k8s.io/kwok/cmd/kwok
)

# --- helm ------------------------------------------------------------------------
mkdir "$WORK/helm"
helm_ok || (
	cd "$WORK/helm"
	"$GO" mod init controlplane-tools.local/helmbuild >/dev/null 2>&1
	"$GO" get "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
	# the version stamping of Helm's Makefile (BINARY_VERSION, K8S_MODULES_*_VER from its go.mod)
	"$GO" build -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} \
		-X helm.sh/helm/v3/internal/version.gitTreeState=clean \
		-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=34 \
		-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=34" \
		-o "$WORK/out/helm" helm.sh/helm/v3/cmd/helm
)

# --- KServe's controller manager ---------------------------------------------------
# --- and its LLMInferenceService controller (both from one copy of the module) -------
{ kserve_ok && llmisvc_ok; } || (
	src="$("$GO" mod download -json "github.com/kserve/kserve@${KSERVE_VERSION}" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	[[ -f "$src/go.mod" && -f "$src/go.sum" ]] || die "could not download github.com/kserve/kserve@${KSERVE_VERSION}"
	cp -r "$src" "$WORK/kserve"
	chmod -R u+w "$WORK/kserve"
	cd "$WORK/kserve"
	if ! kserve_ok; then
		"$GO" build -ldflags="-s -w" -o "$WORK/out/kserve-manager" ./cmd/manager
		echo "${KSERVE_VERSION}" >"$WORK/out/kserve-manager.version"
	fi
	if ! llmisvc_ok; then
		"$GO" build -ldflags="-s -w" -o "$WORK/out/llmisvc-manager" ./cmd/llmisvc
		echo "${KSERVE_VERSION}" >"$WORK/out/llmisvc-manager.version"
	fi
)

# --- Traefik ---------------------------------------------------------------------------
traefik_ok || (
	src="$("$GO" mod download -json "github.com/traefik/traefik/v3@${TRAEFIK_VERSION}" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	[[ -f "$src/go.mod" ]] || die "could not download github.com/traefik/traefik/v3@${TRAEFIK_VERSION}"
	cp -r "$src" "$WORK/traefik"
	chmod -R u+w "$WORK/traefik"
	cd "$WORK/traefik"
	"$GO" build -ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=${TRAEFIK_VERSION#v}" \
		-o "$WORK/out/traefik" ./cmd/traefik
)

# --- CoreDNS ---------------------------------------------------------------------------
# CoreDNS's own way to build fewer plugins is to list fewer in plugin.cfg and regenerate
# core/plugin/zplugin.go ("go generate", directives_generate.go); its coredns.go is a main that
# imports core/plugin (every plugin) and calls coremain.Run(). This main imports the five plugins
# the node's Corefile names instead, as zplugin.go would for a plugin.cfg of those lines: the
# cloud back ends (route53, azure, clouddns) and etcd are most of a cold build and unused here.
mkdir "$WORK/coredns"
coredns_ok || (
	cd "$WORK/coredns"
	"$GO" mod init controlplane-tools.local/corednsbuild >/dev/null 2>&1
	"$GO" get "github.com/coredns/coredns@${COREDNS_VERSION}"
	cat >main.go <<-'GO'
		// A CoreDNS main with the plugins of the node's Corefile only (harness/node/services.py).
		package main

		import (
			_ "github.com/coredns/coredns/plugin/bind"
			_ "github.com/coredns/coredns/plugin/errors"
			_ "github.com/coredns/coredns/plugin/kubernetes"
			_ "github.com/coredns/coredns/plugin/log"
			_ "github.com/coredns/coredns/plugin/ready"

			"github.com/coredns/coredns/coremain"
		)

		func main() {
			coremain.Run()
		}
	GO
	"$GO" mod tidy >/dev/null
	"$GO" build -ldflags="-s -w" -o "$WORK/out/coredns" .
)

# --- the Prometheus Operator ---------------------------------------------------------
mkdir "$WORK/promop"
promop_ok || (
	cd "$WORK/promop"
	"$GO" mod init controlplane-tools.local/promopbuild >/dev/null 2>&1
	"$GO" get "github.com/prometheus-operator/prometheus-operator/cmd/operator@${PROMETHEUS_OPERATOR_VERSION}"
	# the version stamp of its Makefile (GO_BUILD_LDFLAGS; no git here for revision or branch)
	"$GO" build -ldflags="-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_OPERATOR_VERSION#v}" \
		-o "$WORK/out/prometheus-operator" github.com/prometheus-operator/prometheus-operator/cmd/operator
)

# --- Prometheus (for the operator's configuration, with Kubernetes discovery) ---------
prometheus_ok || (
	src="$("$GO" mod download -json "github.com/prometheus/prometheus@${PROMETHEUS_MODULE_VERSION}" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	[[ -f "$src/go.mod" && -f "$src/go.sum" ]] || die "could not download github.com/prometheus/prometheus@${PROMETHEUS_MODULE_VERSION}"
	cp -r "$src" "$WORK/prometheus"
	chmod -R u+w "$WORK/prometheus"
	cd "$WORK/prometheus"
	# Kubernetes discovery only: Prometheus's own way to leave service-discovery plugins out is to
	# list fewer in plugins.yml and regenerate plugins/plugins.go ("make plugins"); this writes
	# what that generates for a plugins.yml of one entry. The cloud SDKs of the other 23 plugins
	# are most of a cold build.
	cat >plugins/plugins.go <<-'GO'
		// Code generated by "make plugins" for a plugins.yml of the kubernetes plugin only.

		package plugins

		import (
			// Register kubernetes plugin.
			_ "github.com/prometheus/prometheus/discovery/kubernetes"
		)
	GO
	# the version stamp of its .promu.yml; no web UI assets (the builtinassets tag is off)
	"$GO" build -ldflags="-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}" \
		-o "$WORK/out/prometheus" ./cmd/prometheus
)

for built in "$WORK"/out/*; do
	[[ -e "$built" ]] && mv -f "$built" "${BIN_DIR}/$(basename "$built")"
done
binaries_ok || die "built binaries in $BIN_DIR do not answer --version as expected"
echo "$BIN_DIR"
