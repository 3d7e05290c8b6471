"""The controller's reading of a canary's pairer: one page of scored pairs per evaluation.

Owns the I/O of the quality judge (``spec.quality``): at each evaluation of a step the reconciler
asks the canary's pairer (``GET /pairs?after=SEQ`` on its Service, :func:`pairer_url`) for the
pairs after the last one it folded in, and :func:`read_quality` turns the answer into the
machine's next reading (:func:`controlplane.analysis.quality_judge.judge_page`): an unreachable
pairer or a malformed page is a failed read, counted like a provider error, that changes nothing
else. Called by :mod:`controlplane.controller.reconcile`.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from controlplane.analysis.quality_judge import judge_page
from controlplane.errors import ProviderError
from controlplane.rollout.observations import QualityReading
from controlplane.serving.pairer import PORTS, pairer_name
from controlplane.spec.models import ModelCanary

PAGE = 10_000
"""The most pairs one read takes (the pairer's own limit)."""


def pairer_url(canary: ModelCanary) -> str:
    """The base URL of ``canary``'s pairer Service, inside the cluster."""
    namespace = canary.metadata.namespace
    return f"http://{pairer_name(canary)}.{namespace}.svc:{PORTS['stable']}"


class PairsReader(Protocol):
    """Where the controller reads a canary's scored pairs."""

    def page(self, canary: ModelCanary, after: int) -> Mapping[str, Any]:
        """The pairer's page of the pairs after ``after``; :class:`ProviderError` when it
        cannot be read."""
        ...


class HttpPairs:
    """:class:`PairsReader` over HTTP: ``url_for(canary)`` (default :func:`pairer_url`),
    ``timeout_s`` for the whole read."""

    def __init__(
        self, url_for: Callable[[ModelCanary], str] = pairer_url, timeout_s: float = 5.0
    ) -> None:
        self.url_for = url_for
        self.timeout_s = timeout_s

    def page(self, canary: ModelCanary, after: int) -> Mapping[str, Any]:
        url = f"{self.url_for(canary)}/pairs?after={after}&limit={PAGE}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as answer:
                found = json.loads(answer.read())
        except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
            raise ProviderError(f"the pairer at {url} could not be read: {exc}") from None
        if not isinstance(found, Mapping):
            raise ProviderError(f"the pairer at {url} answered no object")
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
