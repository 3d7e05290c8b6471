"""Reading the catalogue's YAML files: the node tree, duplicate keys refused, ``FILE:LINE``.

Owns :func:`compose` (libyaml for the packaged files when PyYAML has it, the pure-Python parser
for anything else, duplicate keys refused), :func:`marked` (a YAML error as ``FILE:LINE: ...``)
and the kinds the files name (:data:`Architecture`, :data:`Support`, :data:`Speed`). Below both
readers of the files: :mod:`controlplane.profiles.catalog` (the packaged files as they are) and
:mod:`controlplane.profiles.catalog_schema` (any file, checked). Pure: text in, nodes out.
"""

from __future__ import annotations

from typing import Any, Literal

import yaml

from controlplane.errors import ProfileError

Architecture = Literal["ampere", "ada", "hopper", "blackwell"]
Support = Literal["native", "weight-only", "unsupported"]
Speed = Literal["yes", "no", "low-concurrency"]


_FAST_LOADER: type[Any] | None = getattr(yaml, "CSafeLoader", None)
"""PyYAML's libyaml parser, when it was built with it: the same nodes, tags and line marks as
the pure-Python one, in a tenth of the time."""


def compose(text: str, name: str, *, packaged: bool = False) -> yaml.Node:
    """The YAML node tree of ``text``, duplicate keys refused.

    The packaged files (``packaged``) are composed by libyaml when it is there: every command
    that loads the catalogue pays for it at start-up. Anything else, and a packaged
    file libyaml refuses, goes through the pure-Python parser, so that what a file given on the
    command line is accepted with, or refused with, never depends on how PyYAML was built."""
    if packaged and _FAST_LOADER is not None:
        try:
            fast = yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            fast = None  # the pure parser below says what is wrong, as it always has
        if fast is not None:
            _reject_duplicate_keys(fast, name)
            return fast
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise ProfileError(marked(name, exc)) from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"{name}: not valid YAML: {exc}") from exc
    if node is None:
        raise ProfileError(f"{name}: the catalogue file is empty")
    _reject_duplicate_keys(node, name)
    return node


def marked(name: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{name}:{mark.line + 1}" if mark is not None else name
    problem = exc.problem or exc.context or "invalid YAML"
    return f"{where}: not valid YAML: {problem}"


def _reject_duplicate_keys(node: yaml.Node, name: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise ProfileError(
                        f"{name}:{key.start_mark.line + 1}: duplicate key {key.value!r}"
                    )
                seen.add(key.value)
            _reject_duplicate_keys(value, name)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, name)
