"""Machine-readable output of the cluster verbs: ``-o json`` and ``-o yaml``.

Owns the ``-o/--output`` flag and how a JSON-safe value is written: JSON indented by two spaces
(one compact line per document when streaming, as ``kubectl get -w -o json``), YAML block style
(documents separated by ``---`` when streaming). Both parse back to the same value. Also owns
what of a Kubernetes object is printed (:func:`shown`): the object less the bookkeeping of the API
server and ``kubectl apply`` (``metadata.managedFields``, the
``kubectl.kubernetes.io/last-applied-configuration`` annotation), as ``kubectl neat`` shows it.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Mapping
from typing import Any, TextIO

from ruamel.yaml import YAML

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


def shown(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` as ``-o json|yaml`` prints it: without ``metadata.managedFields`` and the
    :data:`LAST_APPLIED` annotation (``annotations`` is dropped when nothing else is left in it);
    everything else as the API server holds it. ``obj`` itself is not changed."""
    out = dict(obj)
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
