"""The ModelCanary resource's names and the spec defaults that readers need without the models.

Owns the API group, version, kind, labels and the defaults views show; the models re-export them,
and readers that never validate (``list``, the Kubernetes client, the views) import them from here
without paying for pydantic. Pure.
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
