"""The exit codes of a rollout's outcome, shared by ``status``, ``simulate`` and ``up``.

Owns the numbers scripts and CI branch on (0 promoted, 3 in progress, 4 paused or awaiting
approval, 5 rolled back), so the three verbs agree; :func:`replay_exit` is a replay's code. Pure.
See docs/cli.md, "Exit codes of an outcome".
"""

from __future__ import annotations

EXIT_PROMOTED = 0
EXIT_ERROR = 1
EXIT_INVALID = 2
EXIT_IN_PROGRESS = 3
EXIT_PAUSED = 4
EXIT_ROLLED_BACK = 5


def replay_exit(outcome: str) -> int:
    """The exit code of a replay that ended with ``outcome``: 5 for ``rolled_back``, else 0 (the
    replay ran; ``up`` maps its own other outcomes, see :func:`controlplane.cli.up.exit_code`)."""
    return EXIT_ROLLED_BACK if outcome == "rolled_back" else EXIT_PROMOTED


__all__ = [
    "EXIT_ERROR",
    "EXIT_INVALID",
    "EXIT_IN_PROGRESS",
    "EXIT_PAUSED",
    "EXIT_PROMOTED",
    "EXIT_ROLLED_BACK",
    "replay_exit",
]
