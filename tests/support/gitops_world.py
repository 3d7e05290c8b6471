"""Real git repositories for the gitops tests: a bare "remote" and working clones of it.

Everything goes through the ``git`` binary with a fixed identity and no user or system
configuration, so the tests see what a fresh machine would. ``CANARY`` is a valid canary.yml
(the contract's schedule, shortened) with comments, flow mappings and a second document.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from controlplane.gitops.writeback import WriteBackRequest
from controlplane.rollout.state import Reason, RolloutState, spec_hash
from controlplane.spec.load import load_text
from controlplane.spec.models import ModelCanary
from harness.servers.git_https import url_of

DEV_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Dev One",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev One",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=DEV_ENV, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


class Clone:
    """A working clone that developers commit and push from."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, name: str, text: str) -> None:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str, *files: str) -> str:
        git(self.path, "add", "--all", *files)
        git(self.path, "commit", "--quiet", "-m", message)
        return self.head()

    def push(self) -> None:
        git(self.path, "push", "--quiet", "origin", "HEAD:main")

    def pull(self) -> None:
        git(self.path, "pull", "--quiet", "--rebase", "origin", "main")

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD").strip()

    def remove(self, name: str) -> None:
        git(self.path, "rm", "--quiet", name)


class Remote:
    """A bare repository standing in for the git host: the product reaches it at :attr:`url`,
    ``https://`` on the loopback git host (:mod:`harness.servers.git_https`; the product takes no
    ``file://`` URL), developers' clones through its path."""

    def __init__(self, root: Path, name: str = "team/models.git") -> None:
        self.dir = root / name
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        git(root, "init", "--quiet", "--bare", "-b", "main", str(self.dir))
        self.url = url_of(self.dir)
        self._root = root

    def clone(self, name: str) -> Clone:
        path = self._root / name
        git(self._root, "clone", "--quiet", str(self.dir), str(path))
        git(path, "checkout", "--quiet", "-B", "main")
        return Clone(path)

    def tip(self, branch: str = "main") -> str:
        return git(self.dir, "rev-parse", branch).strip()

    def show(self, path: str, rev: str = "main") -> str:
        return git(self.dir, "show", f"{rev}:{path}")

    def log(self, rev: str = "main", fmt: str = "%H") -> list[str]:
        return git(self.dir, "log", f"--format={fmt}", rev).splitlines()

    def branches(self) -> list[str]:
        return git(self.dir, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()


HEADER = """\
# The support-triage canary. Owned by the ML platform team; ask in #ml-serving.
apiVersion: canary.controlplane.dev/v1alpha1
kind: ModelCanary
metadata:
  name: support-triage
  namespace: ml-serving
  labels: {team: ml-platform}
spec:
  model:
    name: support-triage-llm        # clients send this name
    maxModelLen: 8192
    parameters: 8.0e9
  stable:                           # what serves today
    name: bf16
    storageUri: hf://meta-llama/Llama-3.1-8B-Instruct
    quantization: none
    gpu: nvidia-l40s
    replicas: 2
"""

CANDIDATE_FP8 = """\
  candidate:                        # what we want to roll out
    name: fp8                       # dynamic fp8, lossless in practice
    storageUri: hf://meta-llama/Llama-3.1-8B-Instruct
    quantization: fp8
    gpu: nvidia-l40s
"""

CANDIDATE_NF4 = """\
  candidate:                        # what we want to roll out
    name: nf4
    storageUri: hf://meta-llama/Llama-3.1-8B-Instruct
    quantization: bitsandbytes-nf4  # 4-bit at load time
    gpu: nvidia-l40s
    replicas: 1
"""

TAIL = """\
  traffic:
    router: gateway-api
    gateway: {name: inference-gateway, namespace: gateway-system}
  analysis:
    interval: 1m
    window: 5m
    metrics:
      - {name: latency, builtin: e2e-latency, quantile: 0.95}
      - name: errors
        builtin: error-rate
  steps:
    - weight: 5
      duration: 7d
      rollbackOn:
        - {metric: latency, above: 300ms}   # the first breach rolls back
        - {metric: errors, above: 0.1%}
    - weight: 50
      duration: 1d
    - weight: 100
"""

OTHER_DOC = """\
---
# A second canary in the same file: must never change.
apiVersion: canary.controlplane.dev/v1alpha1
kind: ModelCanary
metadata:
  name: summarizer
  namespace: ml-serving
spec:
  model: {name: summarizer, maxModelLen: 4096, parameters: 8.0e9}
  stable: {name: bf16, storageUri: "hf://meta-llama/Llama-3.1-8B-Instruct", gpu: nvidia-l40s}
  candidate: {name: awq, storageUri: "hf://hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4",
    quantization: awq, gpu: nvidia-l40s}
  traffic: {router: gateway-api, gateway: {name: inference-gateway}}
  analysis:
    metrics: [{name: latency, builtin: e2e-latency, quantile: 0.95}]
  steps:
    - {weight: 10, duration: 1h, rollbackOn: [{metric: latency, above: 300ms}]}
    - {weight: 100}
"""


def write_back(url: str | None = None, path: str | None = None, **extra: str) -> str:
    """A ``spec.gitWriteBack`` section (empty mapping when nothing is given)."""
    fields = {"repo": url, "path": path, **extra}
    lines = [f"    {k}: {v}" for k, v in fields.items() if v is not None]
    return "  gitWriteBack:" + ("\n" + "\n".join(lines) + "\n" if lines else " {}\n")


def canary_file(candidate: str, section: str, *, other: bool = True) -> str:
    return HEADER + candidate + TAIL + section + (OTHER_DOC if other else "")


def model_of(text: str, name: str = "support-triage") -> ModelCanary:
    return next(c for c in load_text(text) if c.metadata.name == name)


def breach() -> Reason:
    return Reason(
        "breach",
        "latency 0.412 above 0.3 over 5m at step 1",
        1_800_000_000.0,
        1,
        key="steps[0].rollbackOn[0]",
        metric="latency",
        value=0.412,
        candidate=0.412,
        stable=0.12,
        above=0.3,
        window="5m",
    )


def rolled_back(spec_hash: str, reason: Reason | None = None) -> RolloutState:
    return RolloutState(
        spec_hash=spec_hash,
        stage="rolled_back",
        started_at=1_799_990_000.0,
        stage_started_at=1_799_990_000.0,
        step_index=0,
        reason=reason or breach(),
    )


def as_object(canary: ModelCanary, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    obj = canary.model_dump(mode="json", by_alias=True, exclude_none=True)
    if annotations:
        obj["metadata"]["annotations"] = annotations
    return obj


def request_for(
    text: str, annotations: dict[str, str] | None = None, reason: Reason | None = None
) -> WriteBackRequest:
    """The write-back request for a rollback of ml-serving/support-triage as written in ``text``."""
    canary = model_of(text)
    state = rolled_back(spec_hash(canary), reason)
    obj = as_object(canary, annotations)
    return WriteBackRequest(
        "ml-serving", "support-triage", state.spec_hash, canary, state.reason, obj
    )


APPLICATION_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "applications.argoproj.io"},
    "spec": {
        "group": "argoproj.io",
        "names": {"kind": "Application", "plural": "applications", "singular": "application"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}
"""Argo CD's Application, as far as git write-back reads it (the loopback has no Argo CD)."""
