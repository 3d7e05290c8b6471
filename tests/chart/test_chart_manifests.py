"""The plain manifests (manifests/controller, manifests/rbac, manifests/monitoring) are the chart's
rendering (tests/chart/render_manifests.py), and nothing else lives there."""

from __future__ import annotations

from render_manifests import MANIFESTS, files


def test_manifests_are_the_chart_rendering() -> None:
    stale = [
        path
        for path, text in files().items()
        if not (MANIFESTS / path).exists() or (MANIFESTS / path).read_text() != text
    ]
    assert not stale, f"stale: {stale}; run .venv/bin/python tests/chart/render_manifests.py"


def test_no_hand_written_leftovers() -> None:
    present = {
        str(p.relative_to(MANIFESTS))
        for folder in ("controller", "rbac", "monitoring")
        for p in (MANIFESTS / folder).glob("*.yaml")
    }
    assert present - set(files()) == {"controller/namespace.yaml"}
