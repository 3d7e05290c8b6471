"""Entry point of ``canaryctl`` and ``kubectl-canary`` (the same program).

Owns argument dispatch only. Each verb lives in a module ``controlplane.cli.<module>`` exposing
``add_parser(subparsers)`` (which registers every verb the module serves) and ``run(args) -> int``
(``args.verb`` says which); modules are imported lazily so ``validate`` never pays for matplotlib.
Every :class:`ControlPlaneError` becomes a message and an exit code, never a traceback: 2 for bad
arguments or an invalid spec, 1 for everything else (the cluster, Prometheus); argparse's own
errors exit 2 too. The cluster verbs (``list``, ``get``, ``status``, ``history``, ``promote``,
``abort``, ``pause``, ``resume``, ``retry``) take their client, clock and terminal from the
:class:`~controlplane.cli.cluster.Runtime` given to :func:`main` (tests pass a FakeKube).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, cast

from controlplane import __version__
from controlplane.errors import ControlPlaneError, SpecError, UsageError

if TYPE_CHECKING:
    from controlplane.cli.cluster import Runtime

# verb -> (module, one-line help). Order is the order of `canaryctl --help`.
VERBS: dict[str, tuple[str, str]] = {
    "validate": ("controlplane.cli.validate", "check canary.yml files; report every problem"),
    "schema": ("controlplane.cli.schema", "print the JSON Schema of a ModelCanary"),
    "simulate": ("controlplane.cli.simulate", "replay a canary against Prometheus history"),
    "render": ("controlplane.cli.render", "print the objects the controller would apply"),
    "up": ("controlplane.cli.up", "run a canary end to end on this machine (no cluster)"),
    "demo": ("controlplane.cli.demo", "replay the packaged four-week demo (no cluster needed)"),
    "controller": ("controlplane.cli.controller", "run the controller (watches ModelCanaries)"),
    "list": ("controlplane.cli.listing", "list ModelCanaries with phase, step and weight"),
    "get": ("controlplane.cli.get", "show one ModelCanary (-w: live view)"),
    "status": ("controlplane.cli.status", "a canary's outcome as an exit code (-w: wait for it)"),
    "history": ("controlplane.cli.history", "a canary's rollout events as a table"),
    "promote": ("controlplane.cli.intents", "finish the current step now (--full: go to 100%)"),
    "abort": ("controlplane.cli.intents", "roll back now"),
    "pause": ("controlplane.cli.intents", "stop the rollout where it is"),
    "resume": ("controlplane.cli.intents", "go on after a pause"),
    "retry": ("controlplane.cli.intents", "run a rolled-back candidate again"),
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
    registered: list[VerbModule] = []
    for module in verbs.values():
        if not any(module is seen for seen in registered):  # one module may serve several verbs
            module.add_parser(sub)
            registered.append(module)
    return parser, verbs


def main(argv: Sequence[str] | None = None, *, runtime: Runtime | None = None) -> int:
    """Run ``canaryctl ARGV``; ``runtime`` replaces the cluster, clock and terminal (tests)."""
    parser, verbs = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    if not args.verb:
        parser.print_help()
        return 2
    if runtime is None:
        from controlplane.cli.cluster import Runtime

        runtime = Runtime()
    args.runtime = runtime
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
