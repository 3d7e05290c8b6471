"""One YAML document of a spec file, with the line of every field path in it.

Owns :class:`Document`, the unit :mod:`controlplane.spec.load` reads and every problem is placed
by: a problem at a path gets the path's line, or its nearest ancestor's
(``FILE:LINE: path: message``). Pure. Called by :mod:`controlplane.spec.load`, the messages of
validation errors (:mod:`controlplane.spec.pydantic_errors`) and :mod:`controlplane.validation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controlplane.errors import Problem
from controlplane.spec.paths import Loc, format_path, parse_path


@dataclass(frozen=True)
class Document:
    """One YAML document of a file: plain data plus the line of every field path in it."""

    data: object
    lines: Mapping[str, int]
    line: int | None
    file: str | None = None
    index: int = 0
    problems: tuple[Problem, ...] = field(default=())

    def line_of(self, path: str | Loc) -> int | None:
        """Line of ``path``, or of its nearest ancestor present in the YAML (the document's start).

        None for a document that did not come from YAML (an object read from Kubernetes).
        """
        loc = parse_path(path) if isinstance(path, str) else path
        while loc:
            found = self.lines.get(format_path(loc))
            if found is not None:
                return found
            loc = loc[:-1]
        return self.line

    def problem(self, path: str, message: str) -> Problem:
        """A :class:`Problem` at ``path`` with this document's file and the path's line."""
        return Problem(path=path, message=message, line=self.line_of(path), file=self.file)
