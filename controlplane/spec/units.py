"""Units of the spec and the status: durations, thresholds and times, parsed once into typed values.

Owns the grammar of durations and thresholds (docs/spec.md, "Units") and the exact RFC 3339 times
of ``status``, with as many fraction digits as the float needs so a restarted controller resumes
on the same clock. Pure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

_DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_FULL = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
DURATION_PATTERN = r"^(0|(\d+(\.\d+)?(ms|s|m|h|d|w))+)$"


@dataclass(frozen=True, order=True)
class Duration:
    """A span of time: ``seconds`` for the core to compute with, ``text`` as the user wrote it."""

    seconds: float
    text: str = ""

    def __str__(self) -> str:
        return self.text or format_duration(self.seconds)

    @classmethod
    def of(cls, seconds: float) -> Duration:
        return cls(float(seconds), format_duration(seconds))


def parse_duration(raw: object) -> Duration:
    """Parse ``30s``, ``5m``, ``4h``, ``2d``, ``1h30m``, ``500ms`` or ``0``.

    Raises ``ValueError`` with a readable message on anything else (numbers without a unit too:
    ``5`` is ambiguous, so it is rejected — except ``0``).
    """
    if isinstance(raw, Duration):
        return raw
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"expected a duration like 30s, 5m, 4h or 7d, got {raw!r}")
    if isinstance(raw, int | float):
        if raw == 0:
            return Duration(0.0, "0")
        raise ValueError(f"a duration needs a unit (ms, s, m, h, d, w): got {raw!r}, try '{raw}s'")
    if not isinstance(raw, str):
        raise ValueError(f"expected a duration like 30s, 5m, 4h or 7d, got {type(raw).__name__}")
    text = raw.strip()
    if text == "0":
        return Duration(0.0, "0")
    if len(text) > 64 or not _DURATION_FULL.match(text):
        raise ValueError(f"invalid duration {raw!r}: expected e.g. 30s, 5m, 4h, 2d, 1h30m")
    total = 0.0
    for number, unit in _DURATION_PART.findall(text):
        total += float(number) * _DURATION_UNITS[unit]
    if not math.isfinite(total):
        raise ValueError(f"invalid duration {raw!r}: too large")
    return Duration(total, text)


def format_duration(seconds: float) -> str:
    """Shortest Go-style rendering of ``seconds`` (``90`` -> ``1m30s``, ``0.2`` -> ``200ms``)."""
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out = []
    rest = round(seconds, 3)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            n = int(rest // size)
            out.append(f"{n}{unit}")
            rest -= n * size
    if rest:
        out.append(f"{rest:g}s")
    return "".join(out)


class Unit(StrEnum):
    """What a threshold's number means."""

    SECONDS = "seconds"  # written 200ms, 1.5s, 2m: compared in seconds
    RATIO = "ratio"  # written 0.1%, 5%: stored as the fraction (5% -> 0.05)
    NUMBER = "number"  # a plain number, compared as it is


BUILTIN_UNITS: dict[str, Unit] = {
    "e2e-latency": Unit.SECONDS,
    "ttft": Unit.SECONDS,
    "inter-token-latency": Unit.SECONDS,
    "error-rate": Unit.RATIO,
    "kv-cache-usage": Unit.RATIO,
    "request-rate": Unit.NUMBER,
    "tokens-per-second": Unit.NUMBER,
}
"""The unit of each built-in metric's value (here, not in ``validate``, so that readers of a
status, ``kubectl canary`` and the notifier, need not import the validator and its statistics)."""


_THRESHOLD = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(ms|s|m|h|%)?$")
_TIME_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Quantity:
    """A threshold: a number in base units plus the unit the user wrote it in."""

    value: float
    unit: Unit
    text: str = ""

    def __str__(self) -> str:
        return self.text or f"{self.value:g}"

    def display(self, value: float) -> str:
        """Render another ``value`` in this quantity's unit (for messages)."""
        return display_value(value, self.unit)


def quantity_out(quantity: Quantity) -> str | float:
    """A threshold as a document writes it: its text (``200ms``), else its number."""
    return quantity.text or quantity.value


def display_value(value: float, unit: Unit) -> str:
    """Human rendering of ``value`` in ``unit``: ``0.2314`` seconds -> ``231.4ms``."""
    if math.isnan(value):
        return "NaN"
    if unit is Unit.SECONDS:
        return f"{value * 1000:.1f}ms" if abs(value) < 10 else f"{value:.2f}s"
    if unit is Unit.RATIO:
        return f"{value * 100:.3g}%"
    return f"{value:.4g}"


def parse_quantity(raw: object) -> Quantity:
    """Parse a threshold: ``200ms``, ``1.5s``, ``0.1%``, ``-5%``, ``3``, ``0.25``."""
    if isinstance(raw, Quantity):
        return raw
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"expected a threshold like 200ms, 0.1% or 3, got {raw!r}")
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise ValueError("a threshold must be a finite number")
        return Quantity(float(raw), Unit.NUMBER, f"{raw}")
    if not isinstance(raw, str):
        raise ValueError(f"expected a threshold like 200ms, 0.1% or 3, got {type(raw).__name__}")
    text = raw.strip()
    match = _THRESHOLD.match(text) if len(text) <= 64 else None
    if not match:
        raise ValueError(f"invalid threshold {raw!r}: expected e.g. 200ms, 1.5s, 0.1%, 5% or 3")
    number, suffix = float(match.group(1)), match.group(2)
    if not math.isfinite(number):
        raise ValueError(f"invalid threshold {raw!r}: not a finite number")
    if suffix is None:
        return Quantity(number, Unit.NUMBER, text)
    if suffix == "%":
        return Quantity(number / 100.0, Unit.RATIO, text)
    return Quantity(number * _TIME_FACTORS[suffix], Unit.SECONDS, text)


_STATUS_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def status_time(t: float) -> str:
    """A unix time as RFC 3339 UTC that :func:`time_value` reads back as the same float:
    ``2026-11-25T11:00:00Z``, or with the fraction the float's shortest form has
    (``2026-11-25T11:00:00.1234567Z``; RFC 3339 allows any number of fraction digits).

    Raises ``ValueError`` for a time that is not a finite number."""
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        raise ValueError(f"not a finite time: {t!r}")
    from decimal import Decimal  # here: only status times need it, not the spec

    exact = Decimal(repr(float(t)))
    whole = math.floor(exact)
    stamp = datetime.fromtimestamp(whole, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = format(exact - whole, "f").rstrip("0").rstrip(".")
    return stamp + fraction[1:] + "Z"


def time_value(value: object) -> float:
    """A time of the status as unix seconds: an RFC 3339 string (what :func:`status_time`
    writes, read back exactly) or a number (what controllers before RFC 3339 statuses wrote).

    Raises ``ValueError`` for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite time: {value!r}")
        return float(value)
    match = _STATUS_TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    base, fraction, zone = match.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        whole = datetime.fromisoformat(base.replace("t", "T") + zone).timestamp()
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 time: {value!r}") from exc
    from decimal import Decimal

    return float(Decimal(int(whole)) + Decimal("0" + (fraction or ".0")))
