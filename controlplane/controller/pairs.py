"""The controller's reading of a canary's pairer: one page of scored pairs per evaluation.

Owns the I/O of the quality judge (``spec.quality``): at each evaluation of a step the reconciler
asks the canary's pairer (``GET /pairs?after=SEQ`` on its Service, through the API server:
:class:`ServicePairs`) for the pairs after the last one it folded in, and :func:`read_quality`
turns the answer into the machine's next reading
(:func:`controlplane.analysis.quality_judge.judge_page`): an unreachable pairer or a malformed
page is a failed read, counted like a provider error, that changes nothing else. Called by
:mod:`controlplane.controller.reconcile`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from controlplane.analysis.quality_judge import judge_page
from controlplane.errors import KubeError, ProviderError
from controlplane.kube.client import KubeClient
from controlplane.rollout.observations import QualityReading
from controlplane.serving.pairer import PORTS, pairer_name
from controlplane.spec.models import ModelCanary

PAGE = 10_000
"""The most pairs one read takes (the pairer's own limit)."""


class PairsReader(Protocol):
    """Where the controller reads a canary's scored pairs."""

    def page(self, canary: ModelCanary, after: int) -> Mapping[str, Any]:
        """The pairer's page of the pairs after ``after``; :class:`ProviderError` when it
        cannot be read."""
        ...


class ServicePairs:
    """:class:`PairsReader` through the API server's Service proxy
    (:meth:`~controlplane.kube.client.KubeClient.service_get` of the pairer's Service, its
    stable port; ``timeout_s`` the read timeout of its answer). The controller needs nothing
    but the API server to reach it, wherever it runs: the chart's NetworkPolicy lets it reach
    no pod or Service of the cluster, and a controller outside the cluster reaches none."""

    def __init__(self, kube: KubeClient, timeout_s: float = 5.0) -> None:
        self.kube = kube
        self.timeout_s = timeout_s

    def page(self, canary: ModelCanary, after: int) -> Mapping[str, Any]:
        namespace, name = canary.metadata.namespace, pairer_name(canary)
        where = f"the pairer {namespace}/{name}"
        params = {"after": str(after), "limit": str(PAGE)}
        try:
            body = self.kube.service_get(
                namespace, name, PORTS["stable"], "/pairs", params, self.timeout_s
            )
            found = json.loads(body)
        except KubeError as exc:
            raise ProviderError(
                f"{where} could not be read through the API server: {exc}"
            ) from None
        except ValueError as exc:
            raise ProviderError(f"{where} answered no JSON: {exc}") from None
        if not isinstance(found, Mapping):
            raise ProviderError(f"{where} answered no object")
        return found


def read_quality(
    reader: PairsReader, canary: ModelCanary, reading: QualityReading | None
) -> QualityReading:
    """The machine's next reading of ``canary``'s pairer (which has ``spec.quality``)."""
    spec = canary.spec.quality
    if spec is None:
        raise ValueError(f"canary {canary.metadata.name!r} has no quality section")
    try:
        page: Mapping[str, Any] | None = reader.page(canary, reading.seq if reading else 0)
        error = ""
    except ProviderError as exc:
        page, error = None, str(exc)
    return judge_page(spec, reading, page, error)
