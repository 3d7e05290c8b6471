"""Reverting ``spec.candidate`` inside a canary.yml without touching anything else in the file.

Owns the pure text edit behind git write-back: the restored candidate's source text is spliced
where the old mapping sat (ruamel.yaml gives the marks), and every edit is verified (the rest
byte for byte, the result re-parsed) or :class:`~controlplane.errors.WriteBackError` is raised.
See docs/git-writeback.md, "Write-back".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from controlplane.errors import SpecError, WriteBackError
from controlplane.spec.load import parse_text
from controlplane.spec.models import API_GROUP, KIND, VariantSpec

API_VERSION_PREFIX = f"{API_GROUP}/"


@dataclass(frozen=True)
class Edit:
    """The result of :func:`replace_candidate`: the new file text and what changed."""

    text: str
    before: dict[str, Any]
    """The candidate that was in the file."""
    after: dict[str, Any]
    """The candidate that is in ``text``."""
    first_line: int
    """1-based line where the replaced region starts."""


@dataclass(frozen=True)
class _Located:
    """The nodes of one ModelCanary document that an edit needs."""

    candidate: Node
    stable: Node | None
    candidate_name: Node | None
    key_column: int
    """Column of the ``candidate:`` key (the block indentation step is measured from it)."""


def _scalar(node: Node | None) -> str | None:
    return node.value if isinstance(node, ScalarNode) else None


def _get(node: Node, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    for k, v in node.value:
        if _scalar(k) == key:
            return v  # type: ignore[no-any-return]
    return None


def _key_node(node: Node, key: str) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    for k, _v in node.value:
        if _scalar(k) == key:
            return k  # type: ignore[no-any-return]
    return None


def _is_canary_data(data: object) -> bool:
    if not isinstance(data, dict):
        return False
    api = data.get("apiVersion")
    return data.get("kind") == KIND and (api is None or str(api).startswith(API_VERSION_PREFIX))


def _matches(meta_name: object, meta_ns: object, name: str, namespace: str | None) -> bool:
    if meta_name != name:
        return False
    return meta_ns is None or namespace is None or meta_ns == namespace


def canary_documents(text: str, filename: str | None = None) -> list[dict[str, Any]]:
    """The ModelCanary documents of ``text`` as plain data (other kinds are left out).

    Raises :class:`~controlplane.errors.SpecError` when the text is not YAML.
    """
    return [d.data for d in parse_text(text, filename) if _is_canary_data(d.data)]  # type: ignore[misc]


def find_canary(
    text: str, name: str, namespace: str | None, filename: str | None = None
) -> dict[str, Any] | None:
    """The ModelCanary document called ``name`` (in ``namespace`` when the document names one).

    A document that names the wanted namespace wins over one that names none. None when the file
    holds no such document or is not YAML.
    """
    try:
        docs = canary_documents(text, filename)
    except SpecError:
        return None
    found = [
        d for d in docs if _matches((d.get("metadata") or {}).get("name"), _ns(d), name, namespace)
    ]
    exact = [d for d in found if _ns(d) == namespace]
    best = exact or found
    return best[0] if best else None


def _ns(data: Mapping[str, Any]) -> Any:
    meta = data.get("metadata")
    return meta.get("namespace") if isinstance(meta, dict) else None


def candidate_of(text: str, name: str, namespace: str | None) -> dict[str, Any] | None:
    """``spec.candidate`` of the canary ``name`` in ``text`` as plain data, or None."""
    doc = find_canary(text, name, namespace)
    if doc is None:
        return None
    spec = doc.get("spec")
    candidate = spec.get("candidate") if isinstance(spec, dict) else None
    return candidate if isinstance(candidate, dict) else None


def normalized_variant(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """A variant with defaults filled in (``replicas: 1`` equals an absent ``replicas``), or None
    when ``data`` is not a valid variant."""
    try:
        return VariantSpec.model_validate(dict(data)).model_dump(mode="json")
    except ValidationError:
        return None


def same_variant(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """True when ``a`` and ``b`` describe the same variant (defaults count as written)."""
    na, nb = normalized_variant(a), normalized_variant(b)
    if na is None or nb is None:
        return dict(a) == dict(b)
    return na == nb


# --- locating nodes ------------------------------------------------------------------------------


def _compose(text: str) -> list[Node]:
    try:
        return [n for n in YAML(typ="rt").compose_all(text) if n is not None]
    except YAMLError as exc:
        raise WriteBackError(f"the file is not YAML: {exc}") from None


def _locate(text: str, name: str, namespace: str | None) -> _Located:
    matches: list[tuple[bool, MappingNode]] = []
    for node in _compose(text):
        if _scalar(_get(node, "kind")) != KIND:
            continue
        meta = _get(node, "metadata")
        if meta is None:
            continue
        ns = _scalar(_get(meta, "namespace"))
        if _matches(_scalar(_get(meta, "name")), ns, name, namespace):
            matches.append((ns == namespace, node))  # type: ignore[arg-type]
    if not matches:
        where = f"{namespace}/{name}" if namespace else name
        raise WriteBackError(f"no ModelCanary {where} in the file")
    node = sorted(matches, key=lambda m: not m[0])[0][1]
    spec = _get(node, "spec")
    candidate = _get(spec, "candidate") if spec is not None else None
    key = _key_node(spec, "candidate") if spec is not None else None
    if candidate is None or key is None or not isinstance(candidate, MappingNode):
        raise WriteBackError(f"the ModelCanary {name} has no spec.candidate mapping")
    return _Located(
        candidate=candidate,
        stable=_get(spec, "stable") if spec is not None else None,
        candidate_name=_get(candidate, "name"),
        key_column=key.start_mark.column,
    )


def _region(text: str, node: Node) -> tuple[int, int]:
    """Character offsets of ``node``: exact for flow style; whole lines for block style (from the
    start of the first key's line to the end of the last value's line, its comment included)."""
    if getattr(node, "flow_style", False):
        return node.start_mark.index, node.end_mark.index
    start = text.rfind("\n", 0, node.start_mark.index) + 1
    last = _last_mark(node)
    if last.column == 0:  # a block scalar ends at the start of the next line
        end = last.index - 1 if last.index > 0 else 0
        end = max(end, start)
    else:
        newline = text.find("\n", last.index)
        end = len(text) if newline < 0 else newline
    return start, end


def _last_mark(node: Node) -> Any:
    """The end mark of the last scalar (or flow collection) inside ``node``."""
    while isinstance(node.value, list) and node.value and not getattr(node, "flow_style", False):
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    return node.end_mark


# --- building the replacement --------------------------------------------------------------------


def _shift(block: str, src_col: int, dst_col: int, *, first_line: bool) -> str:
    """Move ``block`` from column ``src_col`` to ``dst_col``.

    A block mapping (``first_line``): every line; blank lines stay empty and a line indented less
    than ``src_col`` (a comment) lands at ``dst_col``. A flow mapping: its first line is spliced
    in place and the continuation lines move by the same number of columns.
    """
    lines = block.split("\n")
    if not first_line:
        delta = dst_col - src_col
        head, rest = lines[0], lines[1:]
        moved = [
            " " * delta + line
            if delta >= 0
            else line[min(-delta, len(line) - len(line.lstrip(" "))) :]
            for line in rest
        ]
        return "\n".join([head, *moved])
    out = []
    for line in lines:
        if not line.strip():
            out.append("")
        elif len(line) - len(line.lstrip(" ")) >= src_col:
            out.append(" " * dst_col + line[src_col:])
        else:
            out.append(" " * dst_col + line.lstrip(" "))
    return "\n".join(out)


def _render(data: Mapping[str, Any], *, flow: bool, column: int, step: int) -> str:
    """``data`` as YAML text (PyYAML's emitter: it quotes what YAML 1.1 would misread, such as
    ``yes``, as the product's loader reads 1.1), keys in their order."""
    rendered = yaml.safe_dump(
        dict(data), default_flow_style=flow, sort_keys=False, width=4096, indent=step
    ).rstrip("\n")
    if flow:
        return rendered
    return "\n".join(" " * column + line if line else "" for line in rendered.split("\n"))


def _source_block(
    src_text: str, src: Node, name_override: tuple[Node, str] | None
) -> tuple[str, int, bool]:
    """The text of mapping ``src`` (its name value replaced when asked), its column, flow?"""
    start, end = _region(src_text, src)
    block = src_text[start:end]
    if name_override is not None:
        name_node, name_text = name_override
        a, b = name_node.start_mark.index - start, name_node.end_mark.index - start
        if not 0 <= a <= b <= len(block):
            raise WriteBackError("cannot place the candidate's name in the restored mapping")
        block = block[:a] + name_text + block[b:]
    return block, src.start_mark.column, bool(getattr(src, "flow_style", False))


def replace_candidate(
    text: str,
    name: str,
    namespace: str | None,
    previous: str | None,
    *,
    filename: str | None = None,
) -> Edit:
    """Put back an earlier ``spec.candidate`` of canary ``name`` in ``text``.

    ``previous`` is the file's text at the version whose candidate is restored; with None the
    candidate becomes a copy of ``spec.stable`` of ``text`` that keeps the candidate's ``name``
    (variants need distinct names). Raises :class:`~controlplane.errors.WriteBackError` when the
    canary or its candidate is not in the file, or when the edit does not verify.
    """
    target = _locate(text, name, namespace)
    before = candidate_of(text, name, namespace)
    if before is None:
        raise WriteBackError(f"the ModelCanary {name} has no readable spec.candidate")
    if previous is not None:
        source = _locate(previous, name, namespace)
        src_node, src_text, override = source.candidate, previous, None
        expected = candidate_of(previous, name, namespace)
        if expected is None:
            raise WriteBackError("the earlier version has no readable spec.candidate")
    else:
        if target.stable is None or not isinstance(target.stable, MappingNode):
            raise WriteBackError(f"the ModelCanary {name} has no spec.stable mapping")
        doc = find_canary(text, name, namespace) or {}
        stable = dict(doc.get("spec", {}).get("stable") or {})
        if "targetRef" in stable:
            raise WriteBackError(
                "the file had no earlier candidate, and its stable is a live InferenceService "
                "(targetRef), which a candidate cannot copy: revert the candidate by hand"
            )
        name_node = _get(target.stable, "name")
        cand_name = target.candidate_name
        if name_node is None or cand_name is None:
            raise WriteBackError("stable and candidate need a name to copy stable over candidate")
        ca, cb = _region_exact(cand_name)
        override = (name_node, text[ca:cb])
        src_node, src_text = target.stable, text
        expected = {**stable, "name": before.get("name")}
    block, src_col, src_flow = _source_block(src_text, src_node, override)
    start, end = _region(text, target.candidate)
    dst_col = target.candidate.start_mark.column
    dst_flow = bool(getattr(target.candidate, "flow_style", False))
    if src_flow == dst_flow:
        replacement = _shift(block, src_col, dst_col, first_line=not dst_flow)
    else:
        step = max(dst_col - target.key_column, 2)
        replacement = _render(expected, flow=dst_flow, column=dst_col, step=step)
    new_text = text[:start] + replacement + text[end:]
    _verify(text, new_text, start, end, len(replacement), name, namespace, expected, filename)
    first_line = text.count("\n", 0, start) + 1
    return Edit(text=new_text, before=before, after=expected, first_line=first_line)


def _region_exact(node: Node) -> tuple[int, int]:
    return node.start_mark.index, node.end_mark.index


def _verify(
    old: str,
    new: str,
    start: int,
    end: int,
    length: int,
    name: str,
    namespace: str | None,
    expected: Mapping[str, Any],
    filename: str | None,
) -> None:
    """Byte-identical outside the region; the same documents and fields except the candidate."""
    if new[:start] != old[:start] or new[start + length :] != old[end:]:
        raise WriteBackError("the edit would change text outside spec.candidate")
    try:
        old_docs = [d.data for d in parse_text(old, filename)]
        new_docs = [d.data for d in parse_text(new, filename)]
    except SpecError as exc:
        raise WriteBackError(f"the edited file does not parse: {exc}") from None
    if len(old_docs) != len(new_docs):
        raise WriteBackError("the edit changed the number of documents in the file")
    changed = 0
    for a, b in zip(old_docs, new_docs, strict=True):
        if a == b:
            continue
        changed += 1
        if not (isinstance(a, dict) and _is_canary_data(a) and isinstance(b, dict)):
            raise WriteBackError("the edit changed another document of the file")
        a_rest = {**a, "spec": {**a.get("spec", {}), "candidate": None}}
        b_rest = {**b, "spec": {**b.get("spec", {}), "candidate": None}}
        if a_rest != b_rest:
            raise WriteBackError("the edit changed fields other than spec.candidate")
        if b.get("spec", {}).get("candidate") != dict(expected):
            raise WriteBackError("the edited candidate is not the one intended")
    if changed > 1:
        raise WriteBackError("the edit changed more than one document")
    got = candidate_of(new, name, namespace)
    if got is None or got != dict(expected):
        raise WriteBackError("the edited candidate is not the one intended")
