"""Fixtures of the git tests: a bare repository served as the remote, and a developer's clone
with one commit pushed (a module may override ``dev`` with the files it needs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.gitops_world import Clone, Remote


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path / "host")


@pytest.fixture
def dev(remote: Remote) -> Clone:
    clone = remote.clone("dev")
    clone.write("README.md", "models\n")
    clone.commit("initial")
    clone.push()
    return clone
