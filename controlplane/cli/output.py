"""Machine-readable output of the cluster verbs: ``-o json`` and ``-o yaml``.

Owns the ``-o/--output`` flag, how a value is written (streamed as ``kubectl get -w`` does) and
what of an object is shown (:func:`shown`: without the API server's bookkeeping, status times as
RFC 3339). Only what is printed changes; the stored status keeps its format.
"""

from __future__ import annotations

import argparse
import io
import json
import math
from collections.abc import Mapping
from typing import Any, TextIO

from controlplane.status.times import format_time

FORMATS = ("text", "json", "yaml")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
"""The annotation ``kubectl apply`` keeps the previous manifest in (a copy of the spec)."""


def add_output_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default="text",
        help="output format (default: text, for people)",
    )


def dumps(value: Any, fmt: str, *, stream: bool = False) -> str:
    """``value`` as ``fmt`` (json or yaml); ``stream``: one document of a sequence of them."""
    if fmt == "json":
        if stream:
            return json.dumps(value, separators=(",", ":"), sort_keys=False) + "\n"
        return json.dumps(value, indent=2) + "\n"
    if fmt == "yaml":
        from ruamel.yaml import YAML  # only for -o yaml: `list` prints a table without it

        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = False
        yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
        buffer = io.StringIO()
        yaml.dump(value, buffer)
        text = buffer.getvalue()
        return ("---\n" + text) if stream else text
    raise ValueError(f"not a data format: {fmt!r}")  # argparse restricts the choices


def emit(value: Any, fmt: str, out: TextIO, *, stream: bool = False) -> None:
    out.write(dumps(value, fmt, stream=stream))
    out.flush()


STATUS_TIMES = ("startedAt", "stageStartedAt", "lastEvaluation", "pausedAt", "lastIntentAt")
"""Keys of ``status`` holding unix seconds (more are nested: see :func:`status_times`)."""
CHECK_TIMES = ("at", "since")
GATE_TIMES = ("submittedAt", "startedAt", "finishedAt")


def _rfc3339(value: Any) -> Any:
    """Unix seconds as RFC 3339 UTC; anything else (None, a string, garbage) as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if not math.isfinite(value) or not 0 <= value < 253402300800:  # year 10000
        return value
    return format_time(value, micro=value != int(value))


def _times(data: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(data, Mapping):
        return data
    return {k: _rfc3339(v) if k in keys else v for k, v in data.items()}


def _check_times(check: Any) -> Any:
    """A check's ``at`` / ``since`` and its ``recent[].at`` as RFC 3339."""
    out = _times(check, CHECK_TIMES)
    if isinstance(out, dict) and isinstance(out.get("recent"), list):
        out["recent"] = [_times(r, ("at",)) for r in out["recent"]]
    return out


def status_times(status: Any) -> Any:
    """``status`` with its unix-second times as RFC 3339 UTC (a copy; the rest unchanged):
    :data:`STATUS_TIMES`, ``reason.at``, ``history[].time``, ``checks.*`` and ``lastChecks[]``
    ``at`` / ``since``, ``checks.*.recent[].at``, ``gates.*`` :data:`GATE_TIMES`,
    ``controller.finishedAt``, ``controller.verified.at``, ``capacity.at`` and ``warnings[].at``.
    A status that is no mapping is returned as it is."""
    if not isinstance(status, Mapping):
        return status
    out: dict[str, Any] = dict(_times(status, STATUS_TIMES))
    if isinstance(out.get("reason"), Mapping):
        out["reason"] = _times(out["reason"], ("at",))
    if isinstance(out.get("history"), list):
        out["history"] = [_times(e, ("time",)) for e in out["history"]]
    if isinstance(out.get("checks"), Mapping):
        out["checks"] = {k: _check_times(v) for k, v in out["checks"].items()}
    if isinstance(out.get("lastChecks"), list):
        out["lastChecks"] = [_times(c, CHECK_TIMES) for c in out["lastChecks"]]
    if isinstance(out.get("gates"), Mapping):
        out["gates"] = {k: _times(v, GATE_TIMES) for k, v in out["gates"].items()}
    book = out.get("controller")
    if isinstance(book, Mapping):
        book = dict(_times(book, ("finishedAt",)))
        if isinstance(book.get("verified"), Mapping):
            book["verified"] = _times(book["verified"], ("at",))
        out["controller"] = book
    if isinstance(out.get("capacity"), Mapping):
        out["capacity"] = _times(out["capacity"], ("at",))
    if isinstance(out.get("warnings"), list):
        out["warnings"] = [_times(w, ("at",)) for w in out["warnings"]]
    return out


def shown(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` as ``-o json|yaml`` prints it: without ``metadata.managedFields`` and the
    :data:`LAST_APPLIED` annotation (``annotations`` is dropped when nothing else is left in it),
    the status's times as RFC 3339 (:func:`status_times`); everything else as the API server
    holds it. ``obj`` itself is not changed."""
    out = dict(obj)
    if "status" in out:
        out["status"] = status_times(out["status"])
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        kept = {k: v for k, v in meta.items() if k != "managedFields"}
        annotations = kept.get("annotations")
        if isinstance(annotations, Mapping) and LAST_APPLIED in annotations:
            rest = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
            if rest:
                kept["annotations"] = rest
            else:
                kept.pop("annotations")
        out["metadata"] = kept
    return out
