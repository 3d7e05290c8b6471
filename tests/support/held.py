"""What a costly test resource is held by from one module to the next: one register, two rules.

A real-node stack or a loopback cluster with controllers takes a minute or more to start, so a
module does not start its own: it asks a :class:`Held` register for the one held under a key,
and the first asker's ``start`` (a context manager) starts it. When it is let go is each
holder's rule, written by its pytest hook:

- :mod:`support.shared_stack`: one real-node stack at a time (one node per machine), let go
  before a test of another kind sets up;
- :mod:`support.realkube`: the loopback clusters that run controllers, each let go after a
  module when the next module's test needs none of them.

Both let go of everything at the session's end. Called by those two modules only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, ExitStack
from typing import Any, TypeVar

T = TypeVar("T")


class Held:
    """Running resources by key, each kept until :meth:`release` lets it go (its context
    manager's exit runs then)."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[ExitStack, Any]] = {}

    def get(self, key: str, start: Callable[[], AbstractContextManager[T]]) -> T:
        """What is held under ``key``, else what ``start()`` enters, held from now on. A start
        that raises holds nothing (what it entered before the error is exited)."""
        if key not in self._held:
            exits = ExitStack()
            try:
                value = exits.enter_context(start())
            except BaseException:
                exits.close()
                raise
            self._held[key] = (exits, value)
        got: T = self._held[key][1]
        return got

    def keys(self) -> list[str]:
        """The keys held now, in the order they were started."""
        return list(self._held)

    def release(self, keep: Iterable[str] = ()) -> None:
        """Let go of everything held but what ``keep`` names."""
        kept = set(keep)
        for key in [k for k in self._held if k not in kept]:
            exits, _value = self._held.pop(key)
            exits.close()
