"""Entry point of ``canaryctl`` and ``kubectl-canary`` (the same program).

Owns argument dispatch only: each verb module exposes ``add_parser`` and ``run``, and only the
module of the verb on the command line is imported (``validate`` never pays for matplotlib). Every
:class:`ControlPlaneError` becomes a message and an exit code, never a traceback. See
docs/cli.md, "Errors" and "Start-up".
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, cast

from controlplane import __version__
from controlplane.errors import ControlPlaneError, InvalidName, SpecError, UsageError
from controlplane.rollout import intents

if TYPE_CHECKING:
    from controlplane.cli.cluster import Runtime

EXIT_BROKEN_PIPE = 141
"""Exit code when stdout is closed before the output is written (128 + SIGPIPE, as a shell
reports a program a broken pipe ended)."""

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
    **{verb: ("controlplane.cli.intents", what) for verb, what in intents.VERBS.items()},
    "dashboard": (
        "controlplane.cli.dashboard",
        "serve the dashboard on this machine with your kubeconfig",
    ),
    "profile": (
        "controlplane.cli.profile",
        "measure latency, tokens/s, memory and $/1M tokens of a variant",
    ),
    "completion": ("controlplane.cli.completion", "print a bash or zsh completion script"),
}


class VerbModule(Protocol):
    def add_parser(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _available_verbs(wanted: Sequence[str] | None = None) -> dict[str, VerbModule]:
    """The modules of the verbs ``wanted`` (None: of every verb), by verb, each imported once; a
    verb whose module does not exist is left out."""
    found: dict[str, VerbModule] = {}
    for verb, (module, _help) in VERBS.items():
        if wanted is not None and verb not in wanted:
            continue
        try:
            found[verb] = cast(VerbModule, importlib.import_module(module))
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a verb whose own dependency is missing is a real bug
                raise
    return found


def _named_verb(argv: Sequence[str]) -> str | None:
    """The verb ``argv`` names: its first word that is not an option (the top-level options
    take no value), when it is one of :data:`VERBS`."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in VERBS else None
    return None


def build_parser(
    argv: Sequence[str] | None = None,
) -> tuple[argparse.ArgumentParser, dict[str, VerbModule]]:
    """The parser and the imported verb modules, by verb.

    With ``argv``, only the module of the verb it names is imported (with the verbs that module
    also serves), so ``kubectl canary list`` does not pay for ``simulate``'s or ``up``'s
    imports; when it names none (``--help``, a misspelt verb) every other verb is listed with its
    one-line help from :data:`VERBS`, which a named verb's run never shows (each stub is a
    parser of its own: 18 of them were a tenth of ``validate``'s start). Without
    ``argv`` every module is imported."""
    prog = "kubectl canary" if sys.argv[0].endswith("kubectl-canary") else "canaryctl"
    parser = argparse.ArgumentParser(
        prog=prog, description="Metric-gated canary rollouts of LLM variants on KServe + vLLM."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    named = None
    if argv is None:
        verbs = _available_verbs()
    else:
        named = _named_verb(argv)
        module = VERBS[named][0] if named else None
        verbs = _available_verbs([v for v, (m, _help) in VERBS.items() if m == module])
    registered: list[VerbModule] = []
    for module_of_verb in verbs.values():
        if not any(module_of_verb is seen for seen in registered):  # one module, several verbs
            module_of_verb.add_parser(sub)
            registered.append(module_of_verb)
    if argv is not None and named is None:  # the others, by name and help only (VERBS' order)
        for verb, (module, help_text) in VERBS.items():
            if verb not in sub.choices and _module_exists(module):
                sub.add_parser(verb, help=help_text.replace("%", "%%"))
    return parser, verbs


def main(argv: Sequence[str] | None = None, *, runtime: Runtime | None = None) -> int:
    """Run ``canaryctl ARGV``; ``runtime`` replaces the cluster, clock and terminal (tests)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, verbs = build_parser(argv)
    try:
        args = parser.parse_args(argv)
        if args.verb and args.verb not in verbs:  # not the verb build_parser saw: import all
            parser, verbs = build_parser()
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
    if getattr(verbs[args.verb], "USES_HTTP_LIBRARIES", True):  # validate: none (no logging)
        from controlplane.providers.logsafety import quiet_http_loggers

        quiet_http_loggers()  # no request URL (a Slack webhook, a token in a query) in any log
    try:
        return verbs[args.verb].run(args)
    except SpecError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (UsageError, InvalidName) as exc:  # InvalidName: a name on the command line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kubectl canary list -o yaml | head`: the reader is gone
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file (tests capture it)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    raise SystemExit(main())
