"""Counts the spec loader's units of work, which its limits bound whatever the machine's speed.

Used by the hostile-input and fuzz tests of ``tests/spec/`` in place of wall-clock bounds: nodes
composed (at most ``MAX_NODES`` + 1 per file), nodes walked (at most ``MAX_EXPANDED`` + 1 per
document, aliases expanded) and the deepest nesting composed (at most ``MAX_DEPTH`` + 1).
``bench/hostile_input.py`` measures the seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from controlplane.spec import load


@dataclass
class Work:
    """What the loader did: nodes composed, the most nodes walked in one document, depth."""

    composed: int = 0
    walked: int = 0
    depth: int = 0

    def within_limits(self) -> bool:
        return (
            self.composed <= load.MAX_NODES + 1
            and self.walked <= load.MAX_EXPANDED + 1
            and self.depth <= load.MAX_DEPTH + 1
        )


@contextmanager
def counted() -> Iterator[Work]:
    """Count the loader's work while the block runs (not thread-safe: one test at a time)."""
    seen = Work()
    compose, walk = load._LimitedComposer.compose_node, load._Walker.walk

    def counted_compose(self: load._LimitedComposer, parent: Any, index: Any) -> Any:
        seen.composed += 1
        seen.depth = max(seen.depth, self._depth + 1)
        return compose(self, parent, index)

    def counted_walk(self: load._Walker, node: Any, loc: Any, depth: int) -> object:
        seen.walked = max(seen.walked, self.expanded + 1)  # per document: a walker each
        return walk(self, node, loc, depth)

    load._LimitedComposer.compose_node = counted_compose  # type: ignore[method-assign]
    load._Walker.walk = counted_walk  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        load._LimitedComposer.compose_node = compose  # type: ignore[method-assign]
        load._Walker.walk = walk  # type: ignore[method-assign]
