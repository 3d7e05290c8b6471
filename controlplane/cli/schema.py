"""``canaryctl schema [--crd | --fields]``: print the ModelCanary schema.

The JSON Schema, the CRD (``manifests/crd/modelcanary.yaml`` is this output) or the field
reference of docs/spec.md; a thin shell over :mod:`controlplane.spec.crd` and
:mod:`controlplane.spec.reference`.
"""

from __future__ import annotations

import argparse
import json

from controlplane.spec.crd import crd_yaml, json_schema
from controlplane.spec.reference import field_table


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "schema",
        help="print the JSON Schema of a ModelCanary",
        description="Print the JSON Schema of a ModelCanary (default), its Kubernetes CRD, or "
        "the Markdown field reference.",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--crd", action="store_true", help="print the CRD (YAML)")
    what.add_argument("--fields", action="store_true", help="print the field reference (Markdown)")


def run(args: argparse.Namespace) -> int:
    if args.crd:
        print(crd_yaml(), end="")
    elif args.fields:
        print(field_table(), end="")
    else:
        print(json.dumps(json_schema(), indent=2))
    return 0
