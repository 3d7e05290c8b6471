"""Which URLs a spec may send the controller to: the administrator's allow-list of endpoints.

Owns :class:`EndpointPolicy` (per kind, the allowed URLs plus the controller's own; empty allows
no spec URL) and :func:`endpoint_problems`. Matching is strict on scheme, host, port and path
segments, and refuses user info, dot segments, encoded separators and backslashes, anything
another parser could read as a different endpoint. Pure; used by the controller's admission, the
Argo gates and the controller's flags. See docs/controller.md, "Allowed endpoints".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from controlplane.errors import Problem
from controlplane.spec.models import ModelCanary
from controlplane.spec.paths import Loc, format_path

Kind = Literal["prometheus", "argo", "alerts"]
KINDS: tuple[Kind, ...] = ("prometheus", "argo", "alerts")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ENCODED = re.compile(r"%(2e|2f|5c|25)", re.IGNORECASE)


@dataclass(frozen=True)
class _KindText:
    what: str  # "the Prometheus URLs this controller may query"
    flag: str
    value: str


_TEXT: dict[Kind, _KindText] = {
    "prometheus": _KindText(
        "the Prometheus URLs this controller may query",
        "--allow-prometheus",
        "allowedEndpoints.prometheus",
    ),
    "argo": _KindText(
        "the Argo Servers this controller may send its token to",
        "--allow-argo-server",
        "allowedEndpoints.argoServers",
    ),
    "alerts": _KindText(
        "the alert URLs this controller may send to",
        "--allow-alert-url",
        "allowedEndpoints.alerts",
    ),
}


@dataclass(frozen=True)
class _Url:
    """A URL as far as matching is concerned."""

    scheme: str
    host: str
    port: int
    segments: tuple[str, ...]
    query: str | None
    fragment: str | None


def _segments(path: str) -> tuple[str, ...]:
    """``""`` and ``/`` -> ``()``; ``/a/b/`` -> ``("a", "b")``; ``/a//b`` -> ``("a", "", "b")``."""
    if path.endswith("/"):
        path = path[:-1]
    if not path:
        return ()
    return tuple(path[1:].split("/")) if path.startswith("/") else tuple(path.split("/"))


def _split(url: str) -> SplitResult | str:
    """The parts of ``url``, or why it cannot be matched safely."""
    if "\\" in url:
        return "has a backslash in it"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in _DEFAULT_PORTS:
        return "is not an http:// or https:// URL"
    if "@" in parts.netloc:
        return (
            "has a user name or password in it (user:pass@); credentials do not belong in a "
            "spec's URL"
        )
    if not parts.hostname:
        return "has no host"
    if port == 0:
        return "has port 0"
    if _ENCODED.search(parts.path):
        return "has a percent-encoded '.', '/', '\\' or '%' in its path"
    if any(seg in (".", "..") for seg in parts.path.split("/")):
        return "has a '.' or '..' path segment"
    return parts


def _parse(url: str) -> _Url | str:
    parts = _split(url)
    if isinstance(parts, str):
        return parts
    return _Url(
        scheme=parts.scheme,
        host=(parts.hostname or "").lower(),
        port=parts.port or _DEFAULT_PORTS[parts.scheme],
        segments=_segments(parts.path),
        query=parts.query if "?" in url else None,
        fragment=parts.fragment if "#" in url else None,
    )


def _matches(entry: _Url, target: _Url, *, exact: bool) -> bool:
    if (entry.scheme, entry.host, entry.port) != (target.scheme, target.host, target.port):
        return False
    if (entry.query, entry.fragment) != (target.query, target.fragment):
        return False
    if exact:
        return target.segments == entry.segments
    return target.segments[: len(entry.segments)] == entry.segments


def entry_problem(url: str) -> str | None:
    """Why ``url`` cannot be an allowed entry (``--allow-*``), or None when it can."""
    parsed = _parse(url)
    return parsed if isinstance(parsed, str) else None


def shown(url: str, limit: int = 200) -> str:
    """``url`` as a message may show it: a user name or password replaced by ``***``, cut to
    ``limit`` characters."""
    text = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@", r"\1***@", url)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class EndpointPolicy:
    """The URLs a spec may name, per kind: ``prometheus``, ``argo`` and ``alerts`` are allowed
    entries (their paths are prefixes); ``own_prometheus`` / ``own_argo`` are the controller's
    own ``--prometheus`` / ``--argo-server``, allowed exactly. ``EndpointPolicy()`` allows
    nothing."""

    prometheus: tuple[str, ...] = ()
    argo: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()
    own_prometheus: str | None = None
    own_argo: str | None = None

    def with_own(self, *, prometheus: str | None = None, argo: str | None = None) -> EndpointPolicy:
        """This policy with the controller's own URLs set (those not None)."""
        return replace(
            self,
            own_prometheus=prometheus if prometheus is not None else self.own_prometheus,
            own_argo=argo if argo is not None else self.own_argo,
        )

    def _entries(self, kind: Kind) -> Iterator[tuple[str, bool]]:
        """(entry, exact) of ``kind``."""
        own = {"prometheus": self.own_prometheus, "argo": self.own_argo}.get(kind)
        if own:
            yield own, True
        yield from ((entry, False) for entry in getattr(self, kind))

    def refusal(self, kind: Kind, url: str) -> str | None:
        """None when a spec may send the controller to ``url`` as a ``kind`` endpoint; else the
        message saying why not (the URL shown without credentials)."""
        target = _parse(url)
        if isinstance(target, str):
            return f"{shown(url)} is refused: it {target}"
        for entry, exact in self._entries(kind):
            allowed = _parse(entry)
            if not isinstance(allowed, str) and _matches(allowed, target, exact=exact):
                return None
        text = _TEXT[kind]
        return (
            f"{shown(url)} is not among {text.what} (an administrator allows it with "
            f"{text.flag} or the chart's {text.value})"
        )

    def allows(self, kind: Kind, url: str) -> bool:
        """Whether a spec may send the controller to ``url`` as a ``kind`` endpoint."""
        return self.refusal(kind, url) is None


def spec_urls(canary: ModelCanary) -> Iterator[tuple[Kind, Loc, str]]:
    """Every URL a spec names that the controller would send requests to: (kind, where, URL)."""
    spec = canary.spec
    if spec.analysis.prometheus:
        yield "prometheus", ("spec", "analysis", "prometheus"), spec.analysis.prometheus
    for i, gate in enumerate(spec.gates):
        if gate.argo_server:
            yield "argo", ("spec", "gates", i, "argoServer"), gate.argo_server
    for i, alert in enumerate(spec.alerts):
        if alert.webhook is not None:
            yield "alerts", ("spec", "alerts", i, "webhook", "url"), alert.webhook.url
        if alert.alertmanager is not None:
            yield "alerts", ("spec", "alerts", i, "alertmanager", "url"), alert.alertmanager.url


def endpoint_problems(canary: ModelCanary, policy: EndpointPolicy) -> list[Problem]:
    """A problem for every URL of ``canary`` that ``policy`` does not allow, at its path."""
    found: list[Problem] = []
    for kind, loc, url in spec_urls(canary):
        why = policy.refusal(kind, url)
        if why is not None:
            found.append(Problem(path=format_path(loc), message=why))
    return found
