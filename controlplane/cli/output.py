"""Machine-readable output of the cluster verbs: ``-o json`` and ``-o yaml``.

Owns the ``-o/--output`` flag and how a JSON-safe value is written: JSON indented by two spaces
(one compact line per document when streaming, as ``kubectl get -w -o json``), YAML block style
(documents separated by ``---`` when streaming). Both parse back to the same value.
"""

from __future__ import annotations

import argparse
import io
import json
from typing import Any, TextIO

from ruamel.yaml import YAML

FORMATS = ("text", "json", "yaml")


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
