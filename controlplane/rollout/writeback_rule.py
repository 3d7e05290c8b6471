"""Which rollbacks are reverted in git: the rollout rule behind ``spec.gitWriteBack``.

Owns :func:`writes_back` and the reasons it reverts (:data:`AUTOMATIC_REASONS`); the git work
stays in :mod:`controlplane.gitops.writeback`. Pure. See docs/git-writeback.md, "Which rollbacks".
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.rollout.state import Event, ReasonKind, RolloutState
from controlplane.spec.models import ModelCanary

AUTOMATIC_REASONS: frozenset[ReasonKind] = frozenset(
    {"breach", "shadow-expired", "not-ready", "not-routed"}
)
"""Rollbacks the controller decided on its own: always written back when the canary opted in."""


@dataclass(frozen=True)
class WriteBackOptions:
    """What the operator chose: ``on_abort`` also reverts a user's ``abort`` (off by default: a
    user who aborts may well want to fix forward instead)."""

    on_abort: bool = False


def writes_back(
    spec: ModelCanary, state: RolloutState, event: Event, options: WriteBackOptions
) -> bool:
    """True when ``event`` is a rollback to revert in git: a ``RolledBack`` event of a canary
    that opted in (``spec.gitWriteBack``), whose state is still rolled back (not retried or
    changed since: nothing to revert any more), for an automatic reason, or ``aborted`` when
    ``options.on_abort``."""
    if event.type != "RolledBack" or spec.spec.git_write_back is None:
        return False
    if state.stage != "rolled_back" or state.reason is None:
        return False
    kind = state.reason.kind
    return kind in AUTOMATIC_REASONS or (options.on_abort and kind == "aborted")
