"""Reading canary.yml files: bytes -> YAML documents with line numbers -> ``ModelCanary`` models.

Owns the YAML dialect (floats as YAML 1.2, as Kubernetes reads them; the rest YAML 1.1 as kubectl;
duplicate keys an error; several documents per file) and the defences against hostile input
(size, encoding, depth, nodes and alias expansion limits, each a fast :class:`SpecError`). Called
by :mod:`controlplane.validation` and whoever needs the typed models. Pure apart from
:func:`load_file` / :func:`read_source`. See docs/spec.md, "YAML dialect and limits".
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from controlplane.errors import ControlPlaneError, Problem, SpecError
from controlplane.spec.document import Document
from controlplane.spec.models import ModelCanary
from controlplane.spec.paths import Loc, format_path
from controlplane.spec.pydantic_errors import problems_from_validation_error
from controlplane.spec.words import describe

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 50_000
MAX_EXPANDED = 10_000
MAX_DOCUMENTS = 100

_FLOAT_1_2 = r"""^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"""
_STANDARD_COLLECTION_TAGS = {
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


class _Resolver(Resolver):
    """PyYAML's resolver plus YAML 1.2 floats (``8.0e9``, ``1e3``), as go-yaml reads them."""


_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(_FLOAT_1_2),
    list("-+0123456789."),
)


class _Limit(ControlPlaneError):
    """Raised inside the composer when the input exceeds a limit."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _LimitedComposer(Composer):
    """PyYAML's composer with a depth cap and a node budget (it is recursive, hence the cap)."""

    _depth = 0
    _nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[attr-defined]
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Limit(f"nesting deeper than {MAX_DEPTH} levels", line)
            if self._nodes > MAX_NODES:
                raise _Limit(f"more than {MAX_NODES} YAML nodes", line)
            node: Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1


if yaml.__with_libyaml__:  # the C scanner and parser: same events, ~10x faster
    from yaml._yaml import CParser

    class _Loader(_LimitedComposer, CParser, SafeConstructor, _Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _LimitedComposer.__init__(self)
            SafeConstructor.__init__(self)
            _Resolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Loader(  # type: ignore[no-redef]
        Reader, Scanner, Parser, _LimitedComposer, SafeConstructor, _Resolver
    ):
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            _LimitedComposer.__init__(self)
            SafeConstructor.__init__(self)
            _Resolver.__init__(self)


def _decode(source: str | bytes, filename: str | None) -> str:
    def fail(message: str) -> SpecError:
        return SpecError([Problem(path="", message=message, line=None, file=filename)])

    size = len(source.encode("utf-8", "surrogatepass")) if isinstance(source, str) else len(source)
    if size > MAX_BYTES:
        raise fail(f"file is too large ({size} bytes; the limit is {MAX_BYTES // 1024} KiB)")
    if isinstance(source, bytes):
        try:
            text = source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise fail(f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    else:
        text = source.removeprefix("\ufeff")
    if "\x00" in text:
        raise fail("binary data (NUL bytes) is not YAML")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise fail("not UTF-8 text (lone surrogate characters)") from None
    return text


class _Walker:
    """Turns a composed node tree into plain data and a path -> line map, expanding aliases once."""

    def __init__(self, loader: _Loader, filename: str | None) -> None:
        self.loader = loader
        self.filename = filename
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []
        self.expanded = 0
        self.active: set[int] = set()

    def problem(self, loc: Loc, message: str, line: int) -> None:
        self.problems.append(Problem(format_path(loc), message, line, self.filename))

    def walk(self, node: Node, loc: Loc, depth: int) -> object:
        line = node.start_mark.line + 1
        self.expanded += 1
        if self.expanded > MAX_EXPANDED:
            raise _Limit(
                f"the document expands to more than {MAX_EXPANDED} nodes (aliases included)", line
            )
        if depth > MAX_DEPTH:
            raise _Limit(f"nesting deeper than {MAX_DEPTH} levels (aliases included)", line)
        if isinstance(node, ScalarNode):
            return self.loader.construct_object(node, deep=True)
        if id(node) in self.active:
            raise _Limit("a recursive alias (a node that contains itself)", line)
        if node.tag not in _STANDARD_COLLECTION_TAGS:
            self.problem(loc, f"unsupported YAML tag {node.tag!r}", line)
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items: list[object] = []
                for index, child in enumerate(node.value):
                    child_loc = (*loc, index)
                    self.lines.setdefault(format_path(child_loc), child.start_mark.line + 1)
                    items.append(self.walk(child, child_loc, depth + 1))
                return items
            assert isinstance(node, MappingNode)
            return self._mapping(node, loc, depth)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: MappingNode, loc: Loc, depth: int) -> dict[str, object]:
        self.loader.flatten_mapping(node)  # YAML merge keys (<<: *base)
        out: dict[str, object] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            key = self.walk(key_node, loc, depth + 1) if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                self.problem(loc, _key_message(key_node, key), key_line)
                continue
            child_loc = (*loc, key)
            if key in first_line:
                self.problem(
                    child_loc,
                    f"duplicate key {key!r} (first at line {first_line[key]})",
                    key_line,
                )
                continue
            first_line[key] = key_line
            self.lines.setdefault(format_path(child_loc), key_line)
            out[key] = self.walk(value_node, child_loc, depth + 1)
        return out


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    problem, context = exc.problem or "", exc.context or ""
    if problem == "second occurrence" and exc.context_mark is not None:  # duplicate anchor
        first = exc.context_mark.line + 1
        return f"{context.removesuffix('; first occurrence')} (first at line {first})"
    if problem.startswith("could not determine a constructor for the tag"):
        return "unsupported YAML tag" + problem.removeprefix(
            "could not determine a constructor for the tag"
        )
    if problem and context:
        return f"{problem} ({context})"
    return problem or context or "unreadable"


def _key_message(node: Node, key: object) -> str:
    if not isinstance(node, ScalarNode):
        return "keys must be strings, got a mapping or list"
    raw = str(node.value)
    if isinstance(key, bool):
        return (
            f"key {raw!r} reads as the boolean {str(key).lower()} in YAML 1.1 (kubectl reads it so "
            f'too): quote it as "{raw}"'
        )
    return f'keys must be strings, got {type(key).__name__} {raw}: quote it as "{raw}"'


def parse_text(source: str | bytes, filename: str | None = None) -> list[Document]:
    """Parse a whole file into its non-empty documents. Raises :class:`SpecError` on bad YAML.

    Problems that do not stop parsing (duplicate keys, odd tags) are kept on each
    :attr:`Document.problems`.
    """
    text = _decode(source, filename)

    def fail(message: str, line: int | None) -> SpecError:
        return SpecError([Problem(path="", message=message, line=line, file=filename)])

    loader = _Loader(text)
    documents: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node said there is one
                break
            start = node.start_mark.line + 1
            if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null":
                continue  # an empty document (a trailing ---)
            if len(documents) >= MAX_DOCUMENTS:
                raise _Limit(f"more than {MAX_DOCUMENTS} documents in one file", start)
            walker = _Walker(loader, filename)
            data = walker.walk(node, (), 0)
            documents.append(
                Document(
                    data=data,
                    lines=walker.lines,
                    line=start,
                    file=filename,
                    index=len(documents),
                    problems=tuple(walker.problems),
                )
            )
    except _Limit as exc:
        raise fail(f"refused: {exc.message}", exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise fail(f"invalid YAML: {_yaml_message(exc)}", line) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        what = f"U+{exc.character:04X}" if isinstance(exc.character, int) else "a character"
        raise fail(f"invalid YAML: {what} (a control character) is not allowed", line) from None
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
        raise fail(f"invalid YAML: {exc}", None) from None
    finally:
        loader.dispose()
    if not documents:
        raise fail("empty file: expected a ModelCanary", 1)
    return documents


def build(doc: Document) -> tuple[ModelCanary | None, list[Problem]]:
    """The typed model of one document, or None with every structural problem (paths and lines)."""
    problems = list(doc.problems)
    if not isinstance(doc.data, dict):
        got = describe(doc.data)
        problems.append(doc.problem("", f"expected a mapping (a ModelCanary object), got {got}"))
        return None, problems
    try:
        canary = ModelCanary.model_validate(doc.data)
    except ValidationError as exc:
        problems.extend(problems_from_validation_error(exc, doc))
        return None, problems
    return (None if problems else canary), problems


def load_text(source: str | bytes, filename: str | None = None) -> list[ModelCanary]:
    """Every ModelCanary in ``source``. Raises :class:`SpecError` with every structural problem.

    Cross-field rules are not checked here: see :func:`controlplane.validation.check_text`.
    """
    canaries: list[ModelCanary] = []
    problems: list[Problem] = []
    for doc in parse_text(source, filename):
        canary, found = build(doc)
        problems.extend(found)
        if canary is not None:
            canaries.append(canary)
    if problems:
        raise SpecError(problems)
    return canaries


def read_source(path: str | os.PathLike[str]) -> bytes:
    """The bytes of ``path`` (at most ``MAX_BYTES`` + 1 read). Raises :class:`SpecError`."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            return fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        message = "no such file"
    except IsADirectoryError:
        message = "is a directory"
    except PermissionError:
        message = "permission denied"
    except OSError as exc:
        message = f"cannot read: {exc.strerror or exc}"
    raise SpecError([Problem(path="", message=message, line=None, file=name)])


def load_file(path: str | os.PathLike[str]) -> list[ModelCanary]:
    """Every ModelCanary in the file at ``path``. Raises :class:`SpecError`."""
    return load_text(read_source(path), os.fspath(path))
