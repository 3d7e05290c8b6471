"""The ModelCanary resource's names and the spec defaults that readers need without the models.

Owns the API group, version, kind and labels, and the defaults the views show for a field left
out (``analysis.interval``, a latency built-in's quantile). :mod:`controlplane.spec.models`
re-exports them and builds its defaults from them; the readers that never validate a spec
(``kubectl canary list``, the Kubernetes client, the status views) import them from here, so
they do not pay for pydantic and the models. Pure.
"""

from __future__ import annotations

API_GROUP = "canary.controlplane.dev"
API_VERSION = f"{API_GROUP}/v1alpha1"
KIND = "ModelCanary"
PLURAL = "modelcanaries"
SHORT_NAME = "mcanary"
LABEL_CANARY = f"{API_GROUP}/canary"
LABEL_VARIANT = f"{API_GROUP}/variant"

DEFAULT_INTERVAL = "1m"
DEFAULT_WINDOW = "5m"
DEFAULT_QUANTILE = 0.95
GATE_PLACEHOLDERS = (
    "canary",
    "namespace",
    "model",
    "step",
    "weight",
    "point",
    "gate",
    "candidate",
    "stable",
    "candidate.endpoint",
    "stable.endpoint",
    "candidate.storageUri",
    "candidate.quantization",
    "stable.storageUri",
    "stable.quantization",
)
"""Placeholders a gate's ``parameters`` may use (``{{candidate.endpoint}}``); see docs/gates.md."""
