"""``canaryctl render FILE``: print every object the controller would apply at one point.

Owns the verb's arguments and output: the rollout point (``--step N``, ``--shadow``,
``--promoted``, ``--rolled-back``), the objects of :func:`controlplane.desired.desired_objects`
as YAML or a ``v1`` ``List``, and the fit, expectation and capacity notes on stderr. Nothing is
applied. See docs/cli.md, "`validate` and `render`".
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from controlplane import __version__
from controlplane.capacity.notes import point_line
from controlplane.cli.cluster import connect
from controlplane.controller import adoption
from controlplane.desired import desired_objects, planned_replicas
from controlplane.errors import NotFound, Problem, SpecError, UsageError
from controlplane.kube.client import Obj, canary_ref
from controlplane.profiles.catalog import Catalog, load_catalog
from controlplane.profiles.expected import notes
from controlplane.routing.base import Outcome
from controlplane.serving import adopt
from controlplane.spec.models import ModelCanary
from controlplane.validation import validated_file


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "render",
        help="print the objects the controller would apply",
        description="Print every object the controller would apply for the canaries in FILE at "
        "one point of the rollout (default: the start, candidate deployed at weight 0).",
    )
    p.add_argument("file", metavar="FILE", help="a canary.yml")
    point = p.add_mutually_exclusive_group()
    point.add_argument("--step", type=int, metavar="N", help="at step N (1-based) of spec.steps")
    point.add_argument("--shadow", action="store_true", help="during the shadow phase")
    point.add_argument("--promoted", action="store_true", help="after promotion")
    point.add_argument("--rolled-back", action="store_true", help="after a rollback")
    p.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    p.add_argument("--catalog", metavar="PATH", help="GPU catalogue (gpus.yaml or its directory)")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="read the live InferenceService a stable adopts (spec.stable.targetRef): its "
        "hosts, its predictor Service and how it serves (needed for such a spec)",
    )
    p.add_argument("--kubeconfig", metavar="FILE", help="with --cluster: kubeconfig file")
    p.add_argument("--context", metavar="NAME", help="with --cluster: kubeconfig context")


def point_of(canary: ModelCanary, args: argparse.Namespace) -> tuple[int, bool, Outcome | None]:
    """(candidate weight, mirror, outcome) that the arguments name for ``canary``."""
    if args.promoted:
        return 0, False, "promoted"
    if args.rolled_back:
        return 0, False, "rolled_back"
    if args.shadow:
        if canary.spec.shadow is None:
            raise UsageError(f"{canary.metadata.name}: --shadow, but the spec has no shadow phase")
        return 0, True, None
    if args.step is not None:
        steps = canary.spec.steps
        if not 1 <= args.step <= len(steps):
            raise UsageError(
                f"{canary.metadata.name}: --step must be within 1..{len(steps)}, got {args.step}"
            )
        return steps[args.step - 1].weight, False, None
    return 0, False, None


class _Dumper(yaml.SafeDumper):
    """Block style (``|``) for multi-line strings, so chat templates stay readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not any(c in value for c in "\t\r") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(objs: list[Obj], output: str) -> str:
    """``objs`` as a YAML stream or a JSON ``v1`` ``List``."""
    if output == "json":
        listing: dict[str, Any] = {"apiVersion": "v1", "kind": "List", "items": objs}
        return json.dumps(listing, indent=2) + "\n"
    return yaml.dump_all(objs, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def adopted(canary: ModelCanary, args: argparse.Namespace, catalog: Catalog) -> ModelCanary:
    """``canary`` with an adopted stable read from the cluster (``--cluster``), as the
    controller reads it when the rollout begins; a UsageError without ``--cluster``, and a
    SpecError naming ``targetRef`` when the live service cannot be adopted."""
    if not canary.spec.adopted:
        return canary
    where = f"{args.file}: {canary.metadata.name}: {adopt.WHERE}"
    if not args.cluster:
        raise UsageError(
            f"{where}: the objects depend on the live InferenceService (its hosts, its predictor "
            "Service, how it serves): pass --cluster to read it"
        )
    kube = connect(args)
    meta = canary.metadata
    try:
        existing = kube.get(canary_ref(meta.namespace, meta.name))
    except NotFound:
        existing = {"metadata": {"name": meta.name, "namespace": meta.namespace}}
    try:
        found = adoption.adopt_live(kube, existing, canary, catalog)
    except adoption.TargetUnavailable as exc:
        raise SpecError([Problem(path=adopt.WHERE, message=str(exc), file=args.file)]) from exc
    return adopt.resolve(canary, found)


def objects_at(
    canary: ModelCanary, catalog: Catalog, weight: int, mirror: bool, outcome: Outcome | None
) -> list[Obj]:
    """What the controller applies at the point; for an adopted stable after a promotion, the
    candidate's predictor in the live InferenceService (what the promotion writes), and after a
    rollback nothing (the canary's objects are deleted; the live service was never written)."""
    if canary.spec.adopted and outcome == "promoted":
        ref = canary.spec.stable.target_ref
        assert ref is not None
        return [
            {
                "apiVersion": ref.api_version,
                "kind": ref.kind,
                "metadata": {"name": ref.name, "namespace": canary.metadata.namespace},
                "spec": {"predictor": adopt.promoted_predictor(canary, catalog)},
            }
        ]
    if canary.spec.adopted and outcome == "rolled_back":
        return []
    image = f"controlplane:{__version__}"  # the controller's --pairer-image in a cluster
    return desired_objects(canary, catalog, weight, mirror, outcome, pairer_image=image)


def run(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.catalog)
    objs: list[Obj] = []
    for canary in (adopted(c, args, catalog) for c in validated_file(args.file, catalog)):
        weight, mirror, outcome = point_of(canary, args)
        objs += objects_at(canary, catalog, weight, mirror, outcome)
        here = None
        if canary.spec.plan is not None:
            replicas = planned_replicas(canary, catalog, weight, mirror, outcome)
            here = point_line(canary, catalog, replicas)
        for line in [*notes(canary, catalog), *([here] if here else [])]:
            print(f"{args.file}: {line}", file=sys.stderr)
    sys.stdout.write(dump(objs, args.output))
    return 0
