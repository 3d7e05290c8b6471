"""Field paths of a ModelCanary: ``spec.steps[1].rollbackOn[0].above``.

Owns the one spelling of a location inside a spec, shared by the loader (YAML line numbers), the
pydantic error mapping and the cross-field validator, so that a path computed in one place finds
its line in another. Keys are the camelCase names users write; keys that are not plain names
(``metadata.labels["app.kubernetes.io/name"]``) are quoted. Pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

Loc = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_SEGMENT = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def format_path(loc: Sequence[str | int]) -> str:
    """``("spec", "steps", 1, "weight")`` -> ``spec.steps[1].weight``."""
    out: list[str] = []
    for seg in loc:
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        elif _PLAIN_KEY.match(seg):
            out.append(f".{seg}" if out else seg)
        else:
            out.append(f"[{json.dumps(seg)}]")
    return "".join(out)


def parse_path(path: str) -> Loc:
    """Inverse of :func:`format_path`; stops at the first segment it cannot read."""
    loc: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _SEGMENT.match(path, pos)
        if match is None or match.end() == pos:
            break
        name, index, quoted = match.groups()
        if name is not None:
            loc.append(name)
        elif index is not None:
            loc.append(int(index))
        else:
            loc.append(str(json.loads(quoted)))
        pos = match.end()
    return tuple(loc)
