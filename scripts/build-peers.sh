#!/usr/bin/env bash
# Build the peers the side-by-side benchmark runs beside ours (bench/peers.py, docs/peers.md) from
# their published Go modules (only the Go module proxy is needed, no git checkout) into a per-user
# cache folder, with the CRDs each module ships:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/controlplane-tools/peers/bin/
#       flagger  rollouts-controller
#       flagger-crd.yaml  argo-rollouts-crds.yaml
#
# Idempotent: exits at once when every binary exists and answers its version flag.
# The last line printed is the bin folder, e.g.  BIN=$(scripts/build-peers.sh | tail -n1)
#
# Not part of `make kube-tools` (scripts/build-kube.sh): only `make bench` needs the peers.
set -euo pipefail

# --- pins -------------------------------------------------------------------
# Flagger's newest release. The module proxy serves it by exact version although its version list
# stops earlier (`go mod download -json github.com/fluxcd/flagger@v1.44.0` answers; go.mod says
# go 1.26.0). Built as its Dockerfile builds it: `go build -ldflags "-s -w -X
# github.com/fluxcd/flagger/pkg/version.REVISION=..." ./cmd/flagger` (pkg/version/version.go
# holds VERSION = "1.44.0"), inside a copy of the module (one line changed: see below).
FLAGGER_VERSION="v1.44.0"
# Argo Rollouts: the newest v1.10 patch the proxy serves (v1.10.2; v1.10.3 answers 403 "not
# available"). Its go.mod says go 1.26.10 and has replace directives (k8s.io/* => v0.34.5): built
# inside a copy of the module with that Go, which the go command fetches from the module proxy
# as the module golang.org/toolchain (GOTOOLCHAIN below). Stamped as its Makefile's LDFLAGS do
# (utils/version.version, gitCommit, gitTag, gitTreeState). The proxy records no commit for
# v1.10.2 (its .info has no Origin), so `rollouts-controller --version` prints "v1.10.2+unknown"
# where a release prints the tag (utils/version/version.go GetVersion).
ARGO_ROLLOUTS_VERSION="v1.10.2"
ARGO_ROLLOUTS_GO="go1.26.10"
# argoproj-labs/rollouts-plugin-trafficrouter-gatewayapi (the Gateway API traffic router that
# Rollouts loads as a plugin binary) is NOT built: the module proxy answers 403 "not available"
# for its version list and for every tag and commit asked (v0.5.0 ... v0.9.0), and nothing but
# the proxy is reachable here. Rollouts' built-in Traefik router drives the same Traefik instead
# (docs/peers.md says how and why).
# -----------------------------------------------------------------------------

GO_MIN_MINOR=26 # Flagger v1.44.0's go.mod says go 1.26.0

die() {
	echo "error: $*" >&2
	exit 2
}

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/controlplane-tools"
BIN_DIR="${CACHE_ROOT}/peers/bin"

says() { # says TEXT COMMAND...: the command's output contains TEXT (read whole: see build-kube.sh)
	local text="$1" out
	shift
	out="$("$@" 2>&1)" && grep -qF "$text" <<<"$out"
}
# flagger -version -> "Flagger version 1.44.0 revision <commit>"; rollouts-controller --version ->
# "v1.10.2+unknown"
flagger_ok() { [[ -x "${BIN_DIR}/flagger" && -s "${BIN_DIR}/flagger-crd.yaml" ]] && says "${FLAGGER_VERSION#v}" "${BIN_DIR}/flagger" -version; }
rollouts_ok() { [[ -x "${BIN_DIR}/rollouts-controller" && -s "${BIN_DIR}/argo-rollouts-crds.yaml" ]] && says "${ARGO_ROLLOUTS_VERSION}" "${BIN_DIR}/rollouts-controller" --version; }
binaries_ok() { flagger_ok && rollouts_ok; }

if binaries_ok; then
	echo "$BIN_DIR"
	exit 0
fi

if [[ -z "${GO:-}" ]]; then
	GO=go
	if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
		GO=/usr/local/go/bin/go
	fi
fi
command -v "$GO" >/dev/null 2>&1 || die "go is required to build the peers: install Go >= 1.${GO_MIN_MINOR}"
go_version="$("$GO" env GOVERSION 2>/dev/null || true)"
go_minor="${go_version#go1.}"
go_minor="${go_minor%%[!0-9]*}"
if [[ "$go_version" != go1.* || -z "$go_minor" || "$go_minor" -lt "$GO_MIN_MINOR" ]]; then
	die "go is required to build the peers: install Go >= 1.${GO_MIN_MINOR}${go_version:+ (found ${go_version})}"
fi

export GO111MODULE=on GOWORK=off GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/peersbuild.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$BIN_DIR" "$WORK/out"

module_dir() { # module_dir PATH@VERSION: download it, print its folder
	"$GO" mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}
module_commit() { # module_commit PATH@VERSION: the commit the proxy recorded for the tag
	"$GO" mod download -json "$1" | sed -n 's/^[[:space:]]*"Hash": "\(.*\)",\{0,1\}$/\1/p' | head -n1
}

# --- Flagger -----------------------------------------------------------------------
flagger_ok || (
	src="$(module_dir "github.com/fluxcd/flagger@${FLAGGER_VERSION}")"
	[[ -f "$src/go.mod" && -f "$src/go.sum" ]] || die "could not download github.com/fluxcd/flagger@${FLAGGER_VERSION}"
	[[ -f "$src/artifacts/flagger/crd.yaml" ]] || die "no artifacts/flagger/crd.yaml in github.com/fluxcd/flagger@${FLAGGER_VERSION}"
	revision="$(module_commit "github.com/fluxcd/flagger@${FLAGGER_VERSION}")"
	cp -r "$src" "$WORK/flagger"
	chmod -R u+w "$WORK/flagger"
	cd "$WORK/flagger"
	# One line differs from upstream: pkg/server/server.go serves /healthz and /metrics on
	# `Addr: ":" + port`, every interface, and has no flag for the address; the servers started
	# here listen on loopback only, so the copy's line gets "127.0.0.1:" before the port (a
	# build overlay cannot: the go command refuses to replace files of its module cache).
	grep -qF 'Addr:         ":" + port,' pkg/server/server.go ||
		die "pkg/server/server.go of flagger ${FLAGGER_VERSION} has no ':' + port address"
	sed -i 's/Addr:         ":" + port,/Addr:         "127.0.0.1:" + port,/' pkg/server/server.go
	"$GO" build -ldflags="-s -w -X github.com/fluxcd/flagger/pkg/version.REVISION=${revision:-unknown}" \
		-o "$WORK/out/flagger" ./cmd/flagger
	cp artifacts/flagger/crd.yaml "$WORK/out/flagger-crd.yaml"
)

# --- Argo Rollouts ---------------------------------------------------------------------
rollouts_ok || (
	export GOTOOLCHAIN="${ARGO_ROLLOUTS_GO}"
	src="$(module_dir "github.com/argoproj/argo-rollouts@${ARGO_ROLLOUTS_VERSION}")"
	[[ -f "$src/go.mod" && -f "$src/go.sum" ]] || die "could not download github.com/argoproj/argo-rollouts@${ARGO_ROLLOUTS_VERSION}"
	commit="$(module_commit "github.com/argoproj/argo-rollouts@${ARGO_ROLLOUTS_VERSION}")"
	cp -r "$src" "$WORK/rollouts"
	chmod -R u+w "$WORK/rollouts"
	cd "$WORK/rollouts"
	# One line differs from upstream, as for Flagger: controller/controller.go serves metrics and
	# /healthz on listenAddr = "0.0.0.0:%d" (only the ports are flags); loopback here.
	grep -qF 'listenAddr                         = "0.0.0.0:%d"' controller/controller.go ||
		die "controller/controller.go of argo-rollouts ${ARGO_ROLLOUTS_VERSION} has no 0.0.0.0 listenAddr"
	sed -i 's/listenAddr                         = "0.0.0.0:%d"/listenAddr                         = "127.0.0.1:%d"/' controller/controller.go
	pkg=github.com/argoproj/argo-rollouts/utils/version
	"$GO" build -ldflags="-s -w -X ${pkg}.version=${ARGO_ROLLOUTS_VERSION#v} -X ${pkg}.gitCommit=${commit} \
		-X ${pkg}.gitTag=${ARGO_ROLLOUTS_VERSION} -X ${pkg}.gitTreeState=clean" \
		-o "$WORK/out/rollouts-controller" ./cmd/rollouts-controller
	# manifests/crds/kustomization.yaml lists these five
	for crd in rollout analysis-template cluster-analysis-template analysis-run experiment; do
		cat "manifests/crds/${crd}-crd.yaml"
		echo "---"
	done >"$WORK/out/argo-rollouts-crds.yaml"
)

for built in "$WORK"/out/*; do
	[[ -e "$built" ]] && mv -f "$built" "${BIN_DIR}/$(basename "$built")"
done
binaries_ok || die "built binaries in $BIN_DIR do not answer their version flags as expected"
echo "$BIN_DIR"
