"""Entry point of ``canaryctl`` and ``kubectl-canary`` (the same program).

Owns argument dispatch only. Each verb lives in its own module ``controlplane.cli.<verb>`` exposing
``add_parser(subparsers)`` and ``run(args) -> int``; modules are imported lazily so ``validate``
never pays for matplotlib. Every :class:`ControlPlaneError` becomes a message and an exit code,
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from controlplane import __version__
from controlplane.errors import ControlPlaneError, SpecError, UsageError

# verb -> (module, one-line help). Order is the order of `canaryctl --help`.
VERBS: dict[str, tuple[str, str]] = {
    "validate": ("controlplane.cli.validate", "check canary.yml files; report every problem"),
    "schema": ("controlplane.cli.schema", "print the JSON Schema of a ModelCanary"),
    "simulate": ("controlplane.cli.simulate", "replay a canary against Prometheus history"),
    "render": ("controlplane.cli.render", "print the objects the controller would apply"),
    "up": ("controlplane.cli.up", "run a canary end to end on this machine (no cluster)"),
    "demo": ("controlplane.cli.demo", "replay the packaged four-week demo (no cluster needed)"),
    "controller": ("controlplane.cli.controller", "run the controller (watches ModelCanaries)"),
}


class VerbModule(Protocol):
    def add_parser(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _available_verbs() -> dict[str, VerbModule]:
    found: dict[str, VerbModule] = {}
    for verb, (module, _help) in VERBS.items():
        try:
            found[verb] = cast(VerbModule, importlib.import_module(module))
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a verb whose own dependency is missing is a real bug
                raise
    return found


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, VerbModule]]:
    prog = "kubectl canary" if sys.argv[0].endswith("kubectl-canary") else "canaryctl"
    parser = argparse.ArgumentParser(
        prog=prog, description="Metric-gated canary rollouts of LLM variants on KServe + vLLM."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs = _available_verbs()
    for module in verbs.values():
        module.add_parser(sub)
    return parser, verbs


def main(argv: Sequence[str] | None = None) -> int:
    parser, verbs = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return 2
    try:
        return verbs[args.verb].run(args)
    except SpecError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
