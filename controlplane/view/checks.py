"""The checks of a ModelCanary's current stage as a person sees them: :func:`check_rows` reads
``status.checks`` (by the controller's keys, :mod:`controlplane.spec.check_keys`) beside what the
spec demands of each check into :class:`CheckRow` rows. Pure; tolerant of bad data. Called by
:func:`controlplane.view.canary.snapshot`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.spec import check_keys
from controlplane.spec.constants import DEFAULT_QUANTILE
from controlplane.spec.units import BUILTIN_UNITS, Quantity, Unit, display_value, parse_quantity
from controlplane.view.read import (
    as_duration,
    as_float,
    as_list,
    as_map,
    as_str,
    as_time,
    duration_text,
)

_LATENCIES = ("e2e-latency", "ttft", "inter-token-latency")


@dataclass(frozen=True)
class CheckRow:
    """One check of the current stage: what it demands and what it saw last.

    ``above`` / ``below`` are in base units (seconds, fractions); ``unit`` is the thresholds' unit,
    ``value_unit`` the unit of the raw per-variant values. ``verdict`` is None until the check is
    evaluated in this stage. ``value`` is what was compared: the candidate's value, or its drift
    from stable (``candidate / stable - 1``) when ``baseline``.
    """

    key: str
    metric: str
    promote: bool = False
    above: float | None = None
    below: float | None = None
    above_text: str | None = None
    below_text: str | None = None
    unit: Unit = Unit.NUMBER
    value_unit: Unit = Unit.NUMBER
    baseline: bool = False
    window: str | None = None
    for_text: str | None = None
    for_seconds: float = 0.0
    verdict: str | None = None
    value: float | None = None
    candidate: float | None = None
    stable: float | None = None
    at: float | None = None
    since: float | None = None
    decided: str | None = None
    message: str = ""
    builtin: str | None = None
    quantile: float | None = None
    recent: tuple[tuple[float | None, str | None, float | None], ...] = ()
    """The check's recent results in this stage, oldest first, as the status records them
    (``checks.<key>.recent``: ``at``, ``verdict``, ``value``); empty when it records none."""
    why: str = ""
    """Why the latest result is what it is, when the status says (``reason``, else
    ``message``)."""

    def threshold(self) -> str:
        """``> 200ms``, ``< -5% or > 5%`` (drift for baseline checks), ``?`` when unknown."""
        parts = []
        if self.below is not None:
            parts.append(f"< {self.below_text or display_value(self.below, self.unit)}")
        if self.above is not None:
            parts.append(f"> {self.above_text or display_value(self.above, self.unit)}")
        text = " or ".join(parts) or "?"
        if self.baseline:
            text = f"drift {text}"
        if self.for_text and self.for_seconds > 0:
            text += f" for {self.for_text}"
        return text

    def show(self, value: float | None, *, compared: bool = False) -> str:
        """A value in its unit (compared drift as a signed percentage); ``-`` when unknown."""
        if value is None:
            return "-"
        if compared and self.baseline:
            return f"{value * 100:+.3g}%"
        return display_value(value, self.unit if compared else self.value_unit)


def _stage_keys(spec: Mapping[str, Any], stage: str | None, step: int) -> list[str]:
    """The keys the controller gives the stage's checks (:mod:`controlplane.spec.check_keys`)."""
    if stage == "shadow":
        shadow = as_map(spec.get("shadow"))
        keys = [check_keys.PROMOTE_KEY] if shadow.get("promoteOn") is not None else []
        count = len(as_list(shadow.get("rollbackOn")))
        return keys + [check_keys.shadow_check(j) for j in range(count)]
    if stage == "steps":
        steps = as_list(spec.get("steps"))
        if 0 < step <= len(steps):
            count = len(as_list(as_map(steps[step - 1]).get("rollbackOn")))
            return [check_keys.step_check(step - 1, j) for j in range(count)]
    return []


def _spec_check(spec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The check the key names in the spec (read tolerantly); empty when it names none."""
    decoded = check_keys.decode(key)
    if decoded is None:
        return {}
    node: Any = spec
    for seg in decoded.loc:
        if isinstance(seg, int):
            items = as_list(node)
            node = items[seg] if seg < len(items) else None
        else:
            node = as_map(node).get(seg)
    return as_map(node)


def _status_checks(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    raw = status.get("checks")
    if isinstance(raw, Mapping):
        return {str(k): as_map(v) for k, v in raw.items()}
    found: dict[str, Mapping[str, Any]] = {}
    for entry in as_list(raw) or as_list(status.get("lastChecks")):
        entry = as_map(entry)
        key = as_str(entry.get("key"))
        if key:
            found[key] = entry
    return found


def check_rows(
    spec: Mapping[str, Any], status: Mapping[str, Any], stage: str | None, step: int
) -> list[CheckRow]:
    latest = _status_checks(status)
    keys = _stage_keys(spec, stage, step)
    keys += [k for k in latest if k not in keys]
    return [_check_row(spec, key, latest.get(key)) for key in keys]


def _quantity(raw: Any) -> Quantity | None:
    if raw is None:
        return None
    try:
        return parse_quantity(raw)
    except ValueError:
        return None


def _unit(raw: Any) -> Unit | None:
    try:
        return Unit(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def _metric(spec: Mapping[str, Any], metric: str) -> tuple[Unit | None, str | None, float | None]:
    """(unit, built-in, quantile) of the analysis metric named ``metric``: its declared unit or
    its built-in's, and a latency's quantile defaulted as the queries default it; built-in and
    quantile None for a custom query, all None for an unknown name."""
    for entry in as_list(as_map(spec.get("analysis")).get("metrics")):
        entry = as_map(entry)
        if entry.get("name") == metric:
            builtin = as_str(entry.get("builtin"))
            unit = _unit(entry.get("unit")) or BUILTIN_UNITS.get(builtin or "")
            if builtin not in _LATENCIES:
                return unit, builtin, None
            quantile = as_float(entry.get("quantile"))
            return unit, builtin, DEFAULT_QUANTILE if quantile is None else quantile
    return None, None, None


def _check_row(spec: Mapping[str, Any], key: str, latest: Mapping[str, Any] | None) -> CheckRow:
    check = _spec_check(spec, key)
    entry = as_map(latest)
    metric = as_str(entry.get("metric")) or as_str(check.get("metric")) or key
    above_q, below_q = _quantity(check.get("above")), _quantity(check.get("below"))
    baseline = entry.get("compare", check.get("compare")) == "baseline"
    spec_unit = next((q.unit for q in (above_q, below_q) if q is not None), None)
    above = as_float(entry["above"]) if "above" in entry else (above_q.value if above_q else None)
    below = as_float(entry["below"]) if "below" in entry else (below_q.value if below_q else None)
    # The spec's own text (200ms, 5%) when it states the same bound the status recorded.
    above_text = str(above_q) if above_q is not None and above == above_q.value else None
    below_text = str(below_q) if below_q is not None and below == below_q.value else None
    declared, builtin, quantile = _metric(spec, metric)
    metric_unit = _unit(entry.get("unit")) or declared
    unit = Unit.RATIO if baseline else (spec_unit or metric_unit or Unit.NUMBER)
    if not baseline and unit is Unit.NUMBER and metric_unit is not None:
        unit = metric_unit  # a plain-number threshold is in the metric's own unit
    value_unit = metric_unit or (Unit.NUMBER if baseline else unit)
    for_raw = entry.get("for", check.get("for"))
    held = as_duration(for_raw)
    window = entry.get("window", check.get("window"))
    if window is None:
        window = as_map(spec.get("analysis")).get("window", "5m")
    return CheckRow(
        key=key,
        metric=metric,
        promote=key == check_keys.PROMOTE_KEY,
        above=above,
        below=below,
        above_text=above_text,
        below_text=below_text,
        unit=unit,
        value_unit=value_unit,
        baseline=baseline,
        window=str(window),
        for_text=duration_text(for_raw),
        for_seconds=0.0 if held is None else held.seconds,
        verdict=as_str(entry.get("verdict") or entry.get("result")) if latest is not None else None,
        value=as_float(entry.get("value")),
        candidate=as_float(entry.get("candidate")),
        stable=as_float(entry.get("stable")),
        at=as_time(entry.get("at")),
        since=as_time(entry.get("since")),
        decided=as_str(entry.get("decided")),
        message=as_str(entry.get("message")) or "",
        builtin=builtin,
        quantile=quantile,
        recent=_recent(entry.get("recent")),
        why=_why(entry),
    )


def _why(entry: Mapping[str, Any]) -> str:
    """The check's ``reason`` (a text, or an object with a ``message``), else its ``message``."""
    reason = entry.get("reason")
    return (
        as_str(reason)
        or as_str(as_map(reason).get("message"))
        or as_str(entry.get("message"))
        or ""
    )


def _recent(raw: Any) -> tuple[tuple[float | None, str | None, float | None], ...]:
    rows = []
    for item in as_list(raw):
        item = as_map(item)
        rows.append(
            (
                as_time(item.get("at")),
                as_str(item.get("verdict") or item.get("result")),
                as_float(item.get("value")),
            )
        )
    return tuple(rows)
