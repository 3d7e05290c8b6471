"""Fixtures of the API tests: a fake cluster whose canary is rolling out, and the API on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.api import NAME, STATIC, World, canary

START = 1_800_000_000.0


@pytest.fixture
def world(tmp_path: Path) -> World:
    """The contract example's canary at step 1 (5%, progressing), its first check not yet due."""
    w = World(START, tmp_path)
    w.create(canary())
    w.run_until(lambda: w.phase() == "progressing", limit_s=3600)
    return w


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(world.app()) as c:
        yield c


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {STATIC}"}


__all__ = ["NAME"]
