"""Every file, CLI flag and make target that README.md and docs/ name exists.

A page that cites ``rollout/machine.py`` or tells the reader to run ``canaryctl up --inject``
goes stale without a sound when the file moves or the flag is renamed: this test lists each
such name. What it reads is inline code (``` `...` ```) and fenced code blocks:

- a *path* is a word that starts with one of the repository's top folders (``controlplane/``,
  ``tests/``, ``canary/``, ...) or that contains ``/`` and ends with a source suffix
  (``rollout/machine.py``). It is resolved against the repository root, then ``controlplane/``,
  then ``harness/``; a glob (``canary/*.yml``) must match something.
- a *flag* is a ``--word`` or ``-x`` of a ``canaryctl VERB ...`` or ``kubectl canary VERB ...``
  command, its continuation lines (a fenced command ending in a backslash) included, or of an inline
  span that starts with a verb (`` `get -w` ``, `` `simulate --plot FILE` ``); it must be an option
  of that verb's parser, built by ``controlplane.cli.main.build_parser``. A ``--word`` of a
  ``python bench/SCRIPT.py ...`` command must be an ``add_argument`` of that script.
- a *target* is the word after ``make``; it must be a rule of the Makefile.

A page of this repository named in prose or a heading (``canary-spec.md``, ``docs/cli.md``), not
in code, must exist too.

Paths inside upstream projects (vLLM's ``vllm/entrypoints/...``, a KServe ``hack/`` script) are
not in this repository: a path on a line that names an upstream project with a version, or one
in :data:`UPSTREAM`, with its reason, is not checked. Relative markdown links and their anchors
are tests/test_docs_links.py's.
"""

from __future__ import annotations

import argparse
import functools
import re
from pathlib import Path

import pytest

from controlplane.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
BASES = (ROOT, ROOT / "controlplane", ROOT / "harness")
TOP = (
    "controlplane/",
    "harness/",
    "tests/",
    "bench/",
    "charts/",
    "canary/",
    "manifests/",
    "profiles/",
    "docs/",
    "scripts/",
    ".ci/",
)
SUFFIXES = (".py", ".yml", ".yaml", ".md", ".json", ".sh", ".toml", ".txt", ".csv", ".tpl")

UPSTREAM: dict[str, str] = {
    "docs/querying/api.md": "Prometheus's own documentation of its HTTP API (docs/analysis.md)",
    "docs/gitbook/tutorials/istio-progressive-delivery.md": "Flagger's tutorial, the analysis "
    "the benchmark models (docs/benchmarks-derivation.md)",
    "api/openapi-spec/swagger.json": "Argo Workflows' OpenAPI document (docs/gates.md)",
    "manifests/base/crds/full/": "Argo Workflows v3.7.3's full CRDs (docs/gates.md)",
    "manifests/quick-start/base/executor/emissary/executor-role.yaml": "Argo Workflows "
    "v3.7.3's executor Role (docs/gates.md)",
    "docs/gitbook/tutorials/gatewayapi-progressive-delivery.md": "Flagger v1.44.0's Gateway API "
    "tutorial, whose Canary the side-by-side benchmark gives Flagger (docs/peers.md)",
    "docs/features/analysis.md": "Argo Rollouts v1.10.2's analysis guide (docs/peers.md)",
    "docs/gitbook/usage/metrics.md": "Flagger v1.44.0's metrics guide: MetricTemplates and "
    "thresholdRange, which the contest's SLO is given as (docs/peers.md)",
    "docs/gitbook/usage/how-it-works.md": "Flagger v1.44.0's Canary reference: analysis "
    "threshold, interval, weights (docs/peers.md)",
    "docs/features/traffic-management/traefik.md": "Argo Rollouts v1.10.2's Traefik router "
    "(docs/peers.md)",
    "docs/features/specification.md": "Argo Rollouts v1.10.2's Rollout reference (docs/peers.md)",
    "manifests/crds/*-crd.yaml": "Argo Rollouts v1.10.2's CRDs (docs/peers.md)",
    "docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml": "Traefik "
    "v3.6.12's CRDs of its kubernetesCRD provider (docs/peers.md)",
    "manifests/charts/istio-control/istio-discovery/files/injection-template.yaml": "Istio "
    "1.27.1's sidecar injection template (docs/metrics.md)",
    "canary/support-triage.yml": "a file of the team repository docs/git-writeback.md's example "
    "writes to",
    "canary/support.yml": "a file of a team repository in docs/git-writeback.md's example log line",
}
"""Paths named in the docs that are deliberately not in this repository, each with its reason."""

# a project other than this one, and a version: the paths near them are that project's
_PROJECT = re.compile(
    r"\b(?:vllm|kserve|kubernetes|k8s\.io|client-go|prometheus|alertmanager|istio|envoy|argo|"
    r"flagger|flux|helm|starlette|guidellm|gateway api|cert-manager|etcd|kind|transformers|"
    r"bitsandbytes|torch|hugging face)\b",
    re.I,
)
_VERSION = re.compile(r"\bv?\d+\.\d+(?:\.\d+)?\b")
_SOURCE = re.compile(r"\.(?:py|ya?ml|md|json|sh|toml|txt|lua)$")
_BARE = re.compile(r"^[\w-]+\.(?:py|md)$")
_PLACEHOLDER = re.compile(r"\b(?:NAME|FILE|DIR|PATH)\b")
_DATA = {"yaml", "json", "python", "lua", "promql"}
_COMMENT = re.compile(r"(?:^|\s)#.*$")  # a shell comment: prose, not a command
_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE = re.compile(r"(`+)(.+?)\1")
_WORD = re.compile(r"[^\s'\"(),;:=\[\]{}<>|]+")
_COMMAND = re.compile(
    r"(?:^|[\s`(])(canaryctl|kubectl[ -]canary)\s+([a-z][a-z-]*)((?:\s+[^\s|;&`]+)*)"
)
_MAKE = re.compile(r"(?:^|[\s`(])make\s+((?:[a-z][a-z-]*\s*)+)")
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z](?![\w-]))")
_VERB_FIRST = re.compile(r"^([a-z][a-z-]*)((?:\s+[^\s|;&`]+)+)$")
_BENCH = re.compile(r"(?:^|[\s`(])python3?\s+(bench/[\w-]+\.py)((?:\s+[^\s|;&`]+)*)")


def _code(path: Path) -> list[tuple[int, str, str, str]]:
    """``(line number, context, code, kind)`` for each inline code span (kind ``inline``) and
    each line of a fenced block (kind: the block's language, ``""`` when it names none). The
    context is the line's section heading, the paragraph (or table, or list) before its own and
    its own: where a source's project and version are named."""
    found: list[tuple[int, str, str, str]] = []
    heading, previous, current = "", "", ""
    language: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = _FENCE.match(line)
        if fence:
            language = None if language is not None else line.strip().lstrip("`~").strip()
            previous, current = "", ""  # a fenced block is a paragraph of its own
            continue
        if language is not None:
            found.append((number, heading + "\n" + current, line, language))
            continue
        if not line.strip():
            previous, current = current or previous, ""
            continue
        if line.startswith("#"):
            heading, previous, current = line, "", ""
            continue
        current += "\n" + line
        context = "\n".join((heading, previous, current))
        found.extend((number, context, m.group(2), "inline") for m in _INLINE.finditer(line))
    return found


def _is_path(word: str) -> bool:
    if any(mark in word for mark in ("...", "…", "$", "://", "<", "*.*")) or word.startswith("-"):
        return False
    if _PLACEHOLDER.search(word):
        return False
    if word.startswith(TOP):
        return True
    if "/" not in word:
        return _BARE.match(word) is not None  # a module or a page by its name: somewhere here
    if "." in word.split("/", 1)[0]:
        return False  # a domain: a label (nvidia.com/gpu.product) or a Go module (k8s.io/api)
    return "/" in word and not word.startswith(("/", "~", ".")) and _SOURCE.search(word) is not None


def _candidates(word: str) -> list[str]:
    """``word`` itself, and for ``a/b.attr`` (a module and a name in it) ``a/b.py``."""
    found = [word]
    head, _, last = word.rpartition("/")
    if "." in last and not last.endswith(SUFFIXES):
        found.append(f"{head}/{last.split('.', 1)[0]}.py")
    return found


@functools.cache
def _file_names() -> frozenset[str]:
    """The name of every file in the repository (the virtualenvs and caches left out)."""
    skip = {".git", ".venv", ".venv-latest", "node_modules", ".mypy_cache", ".ruff_cache"}
    return frozenset(
        path.name
        for path in ROOT.rglob("*")
        if not skip.intersection(path.relative_to(ROOT).parts) and path.is_file()
    )


def _exists(word: str) -> bool:
    if "/" not in word:
        return word in _file_names()
    bases = [*BASES, *sorted(p for p in (ROOT / "controlplane").iterdir() if p.is_dir())]
    for candidate in _candidates(word):
        for base in bases:
            if any(ch in candidate for ch in "*?"):
                if any(base.glob(candidate)):
                    return True
            elif (base / candidate).exists():
                return True
    return False


def _upstream(word: str, context: str) -> bool:
    """A path of another project: allow-listed, or not under one of this repository's top
    folders and named where an upstream project and its version are."""
    if word in UPSTREAM:
        return True
    return not word.startswith(TOP) and _names_upstream(context)


def _names_upstream(context: str) -> bool:
    return _PROJECT.search(context) is not None and _VERSION.search(context) is not None


def paths(page: Path) -> list[tuple[int, str]]:
    """``(line number, path)`` of every repository path the page names that does not exist."""
    missing = []
    for number, context, code, kind in _code(page):
        if kind in _DATA or (kind == "console" and not code.lstrip().startswith("$")):
            continue  # a file's contents or a program's output: names of the reader's files
        for word in _WORD.findall(code):
            word = word.split("#", 1)[0].rstrip(".")
            if not word or not _is_path(word) or _exists(word) or _upstream(word, context):
                continue
            missing.append((number, word))
    return missing


_PROSE_PAGE = re.compile(r"(?<![\w/.-])([\w-]+(?:/[\w.-]+)*\.md)\b")
_LINK_TARGET = re.compile(r"\]\([^)]*\)")


def prose_pages(page: Path) -> list[tuple[int, str]]:
    """``(line number, page)`` of every ``*.md`` named outside code (prose, headings, tables)
    that does not exist; a link's target is tests/test_docs_links.py's."""
    missing = []
    fenced = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        prose = _LINK_TARGET.sub("]", _INLINE.sub("", line))
        for match in _PROSE_PAGE.finditer(prose):
            word = match.group(1)
            if not _exists(word) and not _upstream(word, line):
                missing.append((number, word))
    return missing


@functools.cache
def _parsers() -> dict[str, argparse.ArgumentParser]:
    parser, _verbs = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings}


def _commands(page: Path) -> list[tuple[int, str, str]]:
    """``(line number, code, kind)`` of each inline span and each fenced command, a command
    continued with a backslash joined to its continuation lines (numbered by its first line)."""
    joined: list[tuple[int, str, str]] = []
    open_line: tuple[int, str, str] | None = None
    for number, _context, code, kind in _code(page):
        text = _COMMENT.sub("", code)
        if open_line is not None and kind != "inline":
            text = open_line[1] + " " + text.strip()
            number = open_line[0]
        open_line = None
        if kind != "inline" and text.rstrip().endswith("\\"):
            open_line = (number, text.rstrip()[:-1], kind)
            continue
        joined.append((number, text, kind))
    if open_line is not None:
        joined.append(open_line)
    return joined


def _wrong_flags(verb: str, rest: str, verbs: dict[str, argparse.ArgumentParser]) -> list[str]:
    if verb not in verbs:
        return [verb]
    known = _options(verbs[verb])
    return [f"{verb} {flag}" for flag in _FLAG.findall(rest) if flag not in known]


def flags(page: Path, verbs: dict[str, argparse.ArgumentParser]) -> list[tuple[int, str]]:
    """``(line number, "VERB --flag")`` of every flag of a CLI command the verb does not take,
    and ``(line number, "VERB")`` of every verb that does not exist."""
    wrong = []
    for number, code, kind in _commands(page):
        found = [(m.group(2), m.group(3)) for m in _COMMAND.finditer(code)]
        if not found and kind == "inline":
            # `get -w`, `simulate --plot FILE`: a span that starts with a verb and a flag
            match = _VERB_FIRST.match(code.strip())
            if match and match.group(1) in verbs and _FLAG.search(match.group(2)):
                found = [(match.group(1), match.group(2))]
        for verb, rest in found:
            wrong.extend((number, what) for what in _wrong_flags(verb, rest, verbs))
    return wrong


@functools.cache
def _script_options(script: str) -> frozenset[str]:
    """The ``--options`` a bench script's argparse parser declares (read from its source)."""
    path = ROOT / script
    if not path.is_file():
        return frozenset()
    text = path.read_text(encoding="utf-8")
    if "add_record_args(" in text:  # --json, --report, --no-write of bench/common.py
        text += (ROOT / "bench" / "common.py").read_text(encoding="utf-8")
    return frozenset(re.findall(r"[\"'](--[a-z][a-z0-9-]*)[\"']", text)) | {"--help"}


def script_flags(page: Path) -> list[tuple[int, str]]:
    """``(line number, "bench/SCRIPT.py --flag")`` of every flag a bench script does not take."""
    wrong = []
    for number, code, _kind in _commands(page):
        for match in _BENCH.finditer(code):
            script, rest = match.group(1), match.group(2)
            known = _script_options(script)
            wrong.extend(
                (number, f"{script} {flag}")
                for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest)
                if flag not in known
            )
    return wrong


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    found = set()
    for match in re.finditer(r"^([a-z][a-z0-9 -]*):(?!=)", text, re.M):
        found.update(match.group(1).split())
    return found


def targets(page: Path, known: set[str]) -> list[tuple[int, str]]:
    """``(line number, target)`` of every ``make TARGET`` the Makefile does not have."""
    wrong = []
    for number, context, code, _kind in _code(page):
        for match in _MAKE.finditer(_COMMENT.sub("", code)):
            for target in match.group(1).split():
                if target not in known and not _names_upstream(context):
                    wrong.append((number, target))
    return wrong


def _ids(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def test_the_scanner_finds_what_it_should(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n"
        "See `rollout/machine.py`, `canary/*.yml`, `controlplane/profiles/fit.memory_fit`,\n"
        "`nvidia.com/gpu.product`, `canary.yml` and `rollout/gone.py`, `gone.md`.\n\n"
        "Read in vLLM 0.24.0: `vllm/v1/metrics/loggers.py`, and `controlplane/gone.py`.\n\n"
        "```yaml\npath: canary/a-team-file.yml\n```\n\n"
        "```console\n$ canaryctl up canary/local-demo.yml --time-scale 60 --nope"
        "  # kubectl-canary on PATH\n"
        "wrote canary/output-only.yml\n```\n\n"
        "Run `make test-fast`, `make nothing`, `kubectl canary get x -w`, `canaryctl frob`.\n\n"
        "```sh\ncanaryctl simulate canary/four-week.yml \\\n  --start now-7d \\\n"
        "  --plotz x.png -o json\n```\n\n"
        "Also `get -w`, `get -q`, `simulate --plot FILE`, `up --nah`, `kubectl canary list -Z`,\n"
        "`python bench/replay.py --runs 3 --nope` and `.ci/gone`.\n\n"
        "## An extension of canary-spec.md\n\nAs [cli.md](cli.md) and docs/testing.md say.\n",
        encoding="utf-8",
    )
    assert prose_pages(page) == [(28, "canary-spec.md")]
    assert paths(page) == [
        (4, "rollout/gone.py"),
        (4, "gone.md"),
        (6, "controlplane/gone.py"),
        (26, ".ci/gone"),
    ]
    assert flags(page, _parsers()) == [
        (13, "up --nope"),
        (17, "frob"),
        (20, "simulate --plotz"),
        (25, "get -q"),
        (25, "up --nah"),
        (25, "list -Z"),
    ]
    assert script_flags(page) == [(26, "bench/replay.py --nope")]
    assert targets(page, _make_targets()) == [(17, "nothing")]


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_every_named_path_exists(page: Path) -> None:
    missing = paths(page)
    assert not missing, f"{_ids(page)}:\n" + "\n".join(f"line {n}: {w}" for n, w in missing)


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_every_cli_flag_is_an_option_of_its_verb(page: Path) -> None:
    wrong = flags(page, _parsers())
    assert not wrong, f"{_ids(page)}:\n" + "\n".join(f"line {n}: {w}" for n, w in wrong)


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_every_page_named_in_prose_exists(page: Path) -> None:
    missing = prose_pages(page)
    assert not missing, f"{_ids(page)}:\n" + "\n".join(f"line {n}: {w}" for n, w in missing)


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_every_bench_flag_is_an_option_of_its_script(page: Path) -> None:
    wrong = script_flags(page)
    assert not wrong, f"{_ids(page)}:\n" + "\n".join(f"line {n}: {w}" for n, w in wrong)


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_every_make_target_exists(page: Path) -> None:
    wrong = targets(page, _make_targets())
    assert not wrong, f"{_ids(page)}:\n" + "\n".join(f"line {n}: {w}" for n, w in wrong)
