# syntax=docker/dockerfile:1
# The controller image: `canaryctl controller` (and every other canaryctl verb) on a slim Python.
#   docker build -t canaryctl:0.1.0 .
#   kind load docker-image canaryctl:0.1.0 --name controlplane
# Two stages: the builder makes a wheel of this repository and of every dependency; the runtime
# stage installs those wheels with no compiler, no pip cache and no build tools, and runs as the
# unprivileged UID 65532. tests/chart/test_install_files.py checks these rules.

# Pinned base (a full patch version, never a floating tag); CI may override with a digest:
#   --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Optional: a constraints file inside the build (a bind mount) pins every dependency, as the
# tests' build pins them to uv.lock (harness/node/images.py): pip reads PIP_CONSTRAINT.
ARG PIP_CONSTRAINT
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controlplane ./controlplane
# the package data are links into these (controlplane/profiles/data, controlplane/local/data):
# without them the wheel has no catalogue and the controller exits at start
COPY profiles ./profiles
COPY canary/four-week.yml ./canary/four-week.yml
# The controller needs the package and the Kubernetes client (not the kserve SDK: it talks to
# KServe through plain dicts).
RUN python -m pip wheel --wheel-dir /wheels . "kubernetes>=29"

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 TMPDIR=/tmp HOME=/tmp
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links=/wheels controlplane kubernetes \
    && python -m pip uninstall -y pip setuptools wheel \
    && groupadd --gid 65532 nonroot \
    && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin nonroot
USER 65532:65532
EXPOSE 8080
# The verb is the command, so the chart's `args: [controller, ...]` and `docker run IMAGE validate
# FILE` both work; with no arguments the image runs the controller.
ENTRYPOINT ["canaryctl"]
CMD ["controller"]
