#!/usr/bin/env bash
# Build Argo Workflows (the gates' workflow engine) from its published Go module into the same
# per-user cache folder as scripts/build-kube.sh:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/controlplane-tools/kube-<KUBE_VERSION>/bin/
#       workflow-controller  argoexec  argo   (`argo server` is the Argo Server)
#
# Called by `make kube-tools` after scripts/build-kube.sh. Idempotent: exits at once when the
# three binaries exist and answer `version` with the pinned release.
# The last line printed is the bin folder, e.g.  BIN=$(scripts/build-argo.sh | tail -n1)
set -euo pipefail

# --- pins -------------------------------------------------------------------
# Argo Workflows, served by the Go module proxy at this exact version (`go mod download
# github.com/argoproj/argo-workflows/v3@v3.7.3`). Its go.mod has a replace directive
# (olekukonko/tablewriter), which only the main module applies: built inside a copy of the module.
ARGO_VERSION="v3.7.3"
# the bin folder scripts/build-kube.sh fills (keep equal to its KUBE_VERSION)
KUBE_VERSION="v1.34.10"
# -----------------------------------------------------------------------------

GO_MIN_MINOR=24 # Argo Workflows v3.7.3's go.mod says go 1.24.4

die() {
	echo "error: $*" >&2
	exit 2
}

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/controlplane-tools"
BIN_DIR="${CACHE_ROOT}/kube-${KUBE_VERSION}/bin"

# `argo version --short`, `workflow-controller version --short` and `argoexec version --short`
# print "<name>: v3.7.3" (cmd/argo/commands/version.go, util/cmd/cmd.go PrintVersion)
argo_ok() { # argo_ok BINARY: it exists and says the pinned version
	local out
	[[ -x "${BIN_DIR}/$1" ]] || return 1
	# (unset ARGO_SERVER: with it, `argo version` also asks that server for its version)
	out="$(env -u ARGO_SERVER "${BIN_DIR}/$1" version --short 2>/dev/null)" && grep -qF "${ARGO_VERSION}" <<<"$out"
}
binaries_ok() { argo_ok workflow-controller && argo_ok argoexec && argo_ok argo; }

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
go_version="$("$GO" env GOVERSION 2>/dev/null || true)" # e.g. go1.26.8
go_minor="${go_version#go1.}"
go_minor="${go_minor%%[!0-9]*}"
if [[ "$go_version" != go1.* || -z "$go_minor" || "$go_minor" -lt "$GO_MIN_MINOR" ]]; then
	die "go is required to build Argo Workflows: install Go >= 1.${GO_MIN_MINOR}${go_version:+ (found ${go_version})}"
fi

# Keep builds away from any surrounding module/workspace and from the repo.
export GO111MODULE=on GOWORK=off GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/argobuild.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$BIN_DIR" "$WORK/out"

src="$("$GO" mod download -json "github.com/argoproj/argo-workflows/v3@${ARGO_VERSION}" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -f "$src/go.mod" && -f "$src/go.sum" ]] || die "could not download github.com/argoproj/argo-workflows/v3@${ARGO_VERSION}"
cp -r "$src" "$WORK/argo"
chmod -R u+w "$WORK/argo"
cd "$WORK/argo"
# No web UI: the module has ui/src but not the built ui/dist/app that ui/embed.go embeds. This is
# what the Makefile's ui/dist/app/index.html target does with STATIC_FILES=false (an empty
# index.html); `argo server` then serves the API only, which is all the gates use.
mkdir -p ui/dist/app
: >ui/dist/app/index.html
# Loopback only. Two listeners have no address flag: the workflow-controller's health server
# (cmd/workflow-controller/main.go: http.ListenAndServe(":6060", nil)) and the Argo Server
# (server/apiserver/argoserver.go, Run: address := fmt.Sprintf(":%d", port)) listen on every
# interface. These binaries serve the loopback cluster of this machine only, so both are bound
# to 127.0.0.1 (the controller's metrics server is switched off in its ConfigMap instead,
# harness/node/argo.py). Each edit must match exactly once, or the build stops.
patch_once() { # patch_once FILE OLD NEW
	local n
	n="$(grep -cF -- "$2" "$1" || true)"
	[[ "$n" == 1 ]] || die "$1: expected one '$2', found ${n}: re-read the pins"
	OLD="$2" NEW="$3" perl -0pi -e 's/\Q$ENV{OLD}\E/$ENV{NEW}/' "$1"
}
# The module zip has no workflow/executor/osspecific/signal_linux.go: in the repository it is a
# symbolic link to signal_darwin.go, and Go module zips leave symbolic links out, so argoexec does
# not build on Linux from the module ("undefined: Setpgid"). The link's target is copied in its
# place, which is what the link gives a build from a checkout.
osdir=workflow/executor/osspecific
[[ -e "$osdir/signal_linux.go" ]] || cp "$osdir/signal_darwin.go" "$osdir/signal_linux.go"
patch_once cmd/workflow-controller/main.go 'http.ListenAndServe(":6060", nil)' 'http.ListenAndServe("127.0.0.1:6060", nil)'
patch_once server/apiserver/argoserver.go 'address := fmt.Sprintf(":%d", port)' 'address := fmt.Sprintf("127.0.0.1:%d", port)'
# the version stamping of its Makefile (LDFLAGS: version, gitTag, gitTreeState); no git here
pkg="github.com/argoproj/argo-workflows/v3"
ldflags="-s -w -X ${pkg}.version=${ARGO_VERSION} -X ${pkg}.gitTag=${ARGO_VERSION} -X ${pkg}.gitTreeState=clean"
for cmd in workflow-controller argoexec argo; do
	argo_ok "$cmd" && continue
	"$GO" build -ldflags="$ldflags" -o "$WORK/out/${cmd}" "./cmd/${cmd}"
done

for built in "$WORK"/out/*; do
	[[ -e "$built" ]] && mv -f "$built" "${BIN_DIR}/$(basename "$built")"
done
binaries_ok || die "built binaries in $BIN_DIR do not answer 'version --short' with ${ARGO_VERSION}"
echo "$BIN_DIR"
