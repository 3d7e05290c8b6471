"""Fault injection of the local stack: ``candidate.latency=+300ms``, ``candidate.errors=2%``.

Owns the grammar of an injection (``ROLE.KIND=VALUE``; :func:`parse_fault` without ``ROLE.``) and
the :class:`Faults` a model server applies to every request, whatever its engine. Pure; bad input
raises :class:`~controlplane.errors.UsageError`. What each fault does: docs/local.md, "Options"
and "Engines".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from controlplane.errors import UsageError
from controlplane.spec.units import Unit, parse_duration, parse_quantity

ROLES = ("stable", "candidate")
KINDS = ("latency", "latency-drift", "errors", "engine-errors", "wrong-answers")
_SYNTAX = re.compile(r"^\s*([a-z0-9-]+)\.([a-z-]+)\s*=\s*(\S+)\s*$")
_FAULT = re.compile(r"^\s*([a-z-]+)\s*=\s*(\S+)\s*$")
USAGE = "expected ROLE.KIND=VALUE, e.g. candidate.latency=+300ms or candidate.errors=2%"
FAULT_USAGE = "expected KIND=VALUE, e.g. latency=+300ms, latency-drift=+100ms/1m or errors=2%"


@dataclass(frozen=True)
class Faults:
    """What a model server adds to every request: a delay (seconds), a delay that grows by
    ``latency_drift`` seconds per second since the server started, the share answered HTTP 500
    before the engine, and the share finishing in the engine with ``error``."""

    latency_s: float = 0.0
    error_fraction: float = 0.0
    engine_error_fraction: float = 0.0
    latency_drift: float = 0.0
    wrong_answer_fraction: float = 0.0

    @property
    def active(self) -> bool:
        return (
            self.latency_s > 0
            or self.latency_drift > 0
            or self.error_fraction > 0
            or self.engine_error_fraction > 0
            or self.wrong_answer_fraction > 0
        )

    def delay_s(self, since_start_s: float) -> float:
        """The delay of a request that arrives ``since_start_s`` seconds after the server started:
        the fixed one plus the drift's growth until then (pure)."""
        return self.latency_s + self.latency_drift * max(0.0, since_start_s)

    def injections(self) -> list[str]:
        """``faults`` in the ``KIND=VALUE`` grammar :func:`parse_fault` reads (its inverse):
        what a model server process is given as ``--inject``."""
        out = []
        if self.latency_s:
            out.append(f"latency=+{self.latency_s * 1000:g}ms")
        if self.latency_drift:
            out.append(f"latency-drift=+{self.latency_drift * 60_000:g}ms/1m")
        if self.error_fraction:
            out.append(f"errors={self.error_fraction!r}")
        if self.engine_error_fraction:
            out.append(f"engine-errors={self.engine_error_fraction!r}")
        if self.wrong_answer_fraction:
            out.append(f"wrong-answers={self.wrong_answer_fraction!r}")
        return out

    def describe(self) -> str:
        parts = []
        if self.latency_s:
            parts.append(f"latency +{self.latency_s * 1000:g}ms")
        if self.latency_drift:
            parts.append(f"latency +{self.latency_drift * 60_000:g}ms a minute")
        if self.error_fraction:
            parts.append(f"errors {self.error_fraction * 100:g}%")
        if self.engine_error_fraction:
            parts.append(f"engine errors {self.engine_error_fraction * 100:g}%")
        if self.wrong_answer_fraction:
            parts.append(f"wrong answers {self.wrong_answer_fraction * 100:g}%")
        return ", ".join(parts) or "none"


def _role(raw: str, names: dict[str, str]) -> str:
    if raw in ROLES:
        return raw
    if raw in names:
        return names[raw]
    known = ", ".join([*ROLES, *names])
    raise UsageError(f"--inject: unknown variant {raw!r} (known: {known})")


def parse_injection(text: str, names: dict[str, str] | None = None) -> tuple[str, str, float]:
    """``(role, kind, value)`` of one ``--inject`` value (value in seconds or as a fraction).

    ``names`` maps the spec's variant names to their roles."""
    match = _SYNTAX.match(text)
    if not match:
        raise UsageError(f"--inject {text!r}: {USAGE}")
    role = _role(match.group(1), names or {})
    kind = match.group(2)
    return role, kind, _value(text, kind, match.group(3))


def parse_fault(text: str) -> tuple[str, float]:
    """``(kind, value)`` of one ``KIND=VALUE`` injection of a single variant (no ``ROLE.``):
    ``latency=+300ms``, ``latency-drift=+100ms/1m``, ``errors=5%``, ``engine-errors=2%``."""
    match = _FAULT.match(text)
    if not match:
        raise UsageError(f"--inject {text!r}: {FAULT_USAGE}")
    kind = match.group(1)
    return kind, _value(text, kind, match.group(2))


def _value(text: str, kind: str, raw: str) -> float:
    """The value of ``kind`` written ``raw`` (seconds, seconds per second or a fraction);
    ``text`` is the whole injection, for the message."""
    if kind == "latency-drift":
        return _drift(text, raw)
    try:
        quantity = parse_quantity(raw.removeprefix("+"))
    except ValueError as exc:
        raise UsageError(f"--inject {text!r}: {exc}") from None
    if kind == "latency":
        if quantity.unit is not Unit.SECONDS or quantity.value < 0:
            raise UsageError(f"--inject {text!r}: latency takes a delay such as +300ms or +1.5s")
        return quantity.value
    if kind in ("errors", "engine-errors", "wrong-answers"):
        if quantity.unit is Unit.SECONDS or not 0 <= quantity.value <= 1:
            raise UsageError(f"--inject {text!r}: {kind} takes a share such as 2% or 0.02")
        return quantity.value
    raise UsageError(f"--inject {text!r}: unknown kind {kind!r} (known: {', '.join(KINDS)})")


def _drift(text: str, raw: str) -> float:
    """Seconds of delay per second of ``DELAY/SPAN`` (``+100ms/1m``: 1/600)."""
    delay, slash, span = raw.partition("/")
    message = f"--inject {text!r}: latency-drift takes a delay per span such as +100ms/1m"
    if not slash:
        raise UsageError(message)
    try:
        quantity = parse_quantity(delay.removeprefix("+"))
        seconds = parse_duration(span).seconds
    except ValueError:
        raise UsageError(message) from None
    if quantity.unit is not Unit.SECONDS or quantity.value < 0 or seconds <= 0:
        raise UsageError(message)
    return quantity.value / seconds


def with_fault(faults: Faults, kind: str, value: float) -> Faults:
    """``faults`` with ``kind`` (one of :data:`KINDS`) set to ``value``; a later value wins."""
    if kind == "latency":
        return replace(faults, latency_s=value)
    if kind == "latency-drift":
        return replace(faults, latency_drift=value)
    if kind == "errors":
        return replace(faults, error_fraction=value)
    if kind == "wrong-answers":
        return replace(faults, wrong_answer_fraction=value)
    return replace(faults, engine_error_fraction=value)


def parse_injections(
    texts: Iterable[str], names: dict[str, str] | None = None
) -> dict[str, Faults]:
    """Faults per role (``stable`` / ``candidate``); later values of the same kind win."""
    faults = {role: Faults() for role in ROLES}
    for text in texts:
        role, kind, value = parse_injection(text, names)
        faults[role] = with_fault(faults[role], kind, value)
    return faults
