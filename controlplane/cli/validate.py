"""``canaryctl validate FILE... [-o json]``: check canary.yml files, report every problem.

A thin shell over :func:`controlplane.validation.check_file`, the rules the controller and API
apply: one ``FILE:LINE: field.path: message`` per problem, exit 2 if any. Warnings and the
expected change from measured profiles go to stderr and never change the exit status;
``--cluster`` reads an adopted stable as the controller does (:func:`live_rules`). See
docs/cli.md, "``validate`` and ``render``".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from controlplane.capacity.notes import plan_lines
from controlplane.errors import NotFound, Problem
from controlplane.profiles.catalog import Catalog, load_catalog
from controlplane.profiles.expected import notes
from controlplane.validation import More, check_file, validated_file, warnings_file

if TYPE_CHECKING:  # --cluster only: the client, the controller's adoption
    from controlplane.kube.client import KubeClient
    from controlplane.spec.models import ModelCanary

SUFFIXES = (".yml", ".yaml")
USES_HTTP_LIBRARIES = False
"""Only ``--cluster`` sends a request, through :func:`controlplane.cli.cluster.connect`, which
quiets the HTTP libraries' loggers itself: an offline ``validate`` imports no :mod:`logging`."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "validate",
        help="check canary.yml files; report every problem",
        description="Check ModelCanary files (YAML, field types and every cross-field rule). "
        "Exit 0 when all are valid, 2 when any is not.",
    )
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="a canary.yml, or a directory of them"
    )
    parser.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="output format"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="also read the live InferenceService a stable adopts (spec.stable.targetRef): "
        "refuse one that does not exist, that another canary holds or that cannot be read as a "
        "stable, and check the candidate against it; warn when another HTTPRoute on the "
        "canary's Gateway matches the same requests as its route would",
    )
    parser.add_argument("--kubeconfig", metavar="FILE", help="with --cluster: kubeconfig file")
    parser.add_argument("--context", metavar="NAME", help="with --cluster: kubeconfig context")
    parser.add_argument(
        "--profiles",
        metavar="PATH",
        default=None,
        help="GPU catalogue (a gpus.yaml or a directory); default: the packaged one",
    )


def expand(paths: list[str]) -> tuple[list[str], list[Problem]]:
    """Files to check (directories expanded, in name order) and problems with the arguments."""
    files: list[str] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
            if not found:
                problems.append(Problem(path="", message="no *.yml or *.yaml files", file=raw))
            files.extend(found)
        else:
            files.append(raw)
    return files, problems


def print_notes(name: str, catalog: Catalog) -> None:
    """The measured-profile notes and the capacity plan of every canary of the valid file
    ``name``, on stderr."""
    for canary in validated_file(name, catalog):
        for line in [*notes(canary, catalog), *plan_lines(canary, catalog)]:
            print(f"{name}: {line}", file=sys.stderr)


def format_warning(warning: Problem) -> str:
    """``FILE:LINE: warning: field.path: message``."""
    where = f"{warning.file}:{warning.line}: " if warning.line is not None else f"{warning.file}: "
    return f"{where}warning: {warning.path}: {warning.message}"


def live_rules(kube: KubeClient, catalog: Catalog) -> More:
    """The rules of a canary that read the cluster: the live service its stable adopts exists,
    is free and reads as a stable (as the controller checks when a rollout begins:
    :func:`controlplane.controller.adoption.adopt_live`), and the spec's rules hold with the
    stable as it serves (the candidate is checked against it).

    Imported here, not at the top: an offline ``validate`` loads neither the Kubernetes client
    nor the controller."""
    from controlplane.controller import adoption
    from controlplane.kube.client import canary_ref
    from controlplane.serving import adopt

    def more(canary: ModelCanary) -> list[Problem]:
        if not canary.spec.adopted:
            return []
        meta = canary.metadata
        try:
            existing = kube.get(canary_ref(meta.namespace, meta.name))
        except NotFound:  # not applied yet: it comes after every canary that is
            existing = {"metadata": {"name": meta.name, "namespace": meta.namespace}}
        try:
            adoption.adopt_live(kube, existing, canary, catalog)
        except adoption.TargetUnavailable as exc:
            return [Problem(path=adopt.WHERE, message=str(exc))]
        return []

    return more


def route_warnings(kube: KubeClient) -> More:
    """The warnings of a ``gateway-api`` canary that read the cluster: the HTTPRoutes of its
    namespace and of its Gateway's that match every request its route would match
    (:func:`controlplane.routing.overlap.overlaps`: only one route gets them, and the canary's
    candidate may get none). A namespace that cannot be listed is left out."""
    from controlplane.routing import gateway_api, overlap

    def more(canary: ModelCanary) -> list[Problem]:
        if canary.spec.traffic.router != "gateway-api":
            return []
        route = gateway_api.build_httproute(canary, 0, False)
        others = gateway_api.routes_beside(kube, canary)
        path = "spec.traffic.hosts" if canary.spec.traffic.hosts else "spec.traffic"
        return [Problem(path=path, message=m) for m in overlap.overlaps(route, others)]

    return more


def run(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.profiles)
    files, problems = expand(list(args.files))
    more = cluster_warnings = None
    if args.cluster:
        from controlplane.cli.cluster import connect

        kube = connect(args)
        more = live_rules(kube, catalog)
        cluster_warnings = route_warnings(kube)
    warned = 0
    for name in files:
        found = check_file(name, catalog, more=more)
        problems.extend(found)
        for warning in warnings_file(name, more=cluster_warnings):
            print(format_warning(warning), file=sys.stderr)
            warned += 1
        if not found:
            print_notes(name, catalog)
    if args.output == "json":
        print(json.dumps([p.to_json() for p in problems], indent=2))
    else:
        for problem in problems:
            print(problem.format())
        bad = len({p.file for p in problems})
        if problems:
            noun = "problem" if len(problems) == 1 else "problems"
            print(f"{len(problems)} {noun} in {bad} of {len(files)} file(s)", file=sys.stderr)
        else:
            also = f" ({warned} warning{'' if warned == 1 else 's'})" if warned else ""
            print(f"{len(files)} file(s) valid{also}", file=sys.stderr)
    return 2 if problems else 0
