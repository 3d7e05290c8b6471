"""The environments are installed compiled: ``make setup``'s ``--compile-bytecode``, and the
engine image's base layer (:func:`harness.node.images.engine_base`).

Every process of the suite that imports from ``.venv`` (``canaryctl`` and the controllers the
tests start, the servers on this machine) runs where ``PYTHONDONTWRITEBYTECODE`` may be set, and
without the bytecode compiles every module it imports at each start: 2.2 s of CPU to import
``kubernetes.client`` here, 0.5 s with it; 8.6 s and 3.5 s for ``torch``. The simulated
engine's pods run with ``PYTHONDONTWRITEBYTECODE`` too: 0.8 s of CPU to import its four
dependencies without their bytecode, 0.3 s with it.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from support.bytecode import uncompiled

from harness.node import images


@pytest.mark.slow  # reads the head of some 22,000 files' bytecode: about 2 s
def test_every_installed_module_has_its_bytecode() -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    assert Path(sys.prefix) in site.parents, site  # the environment's, not the system's
    missing = uncompiled(site)
    assert not missing, f"{len(missing)} modules without bytecode ({missing[:5]}): make setup"


@pytest.mark.binary  # umoci
def test_the_engine_images_base_has_its_dependencies_bytecode(tmp_path: Path) -> None:
    """Unpacked as the node's containerd sees it; the image's python3 is bookworm's 3.11, the
    same bytecode format as this one's (the check uses this Python's magic number)."""
    assert sys.version_info[:2] == (3, 11), sys.version_info
    bundle = tmp_path / "bundle"
    base = images.engine_base()
    images.need("umoci", "umoci")
    subprocess.run(
        ["umoci", "unpack", "--image", f"{base}:base", str(bundle)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = bundle / "rootfs" / images.ENGINE_SITE.lstrip("/")
    assert (site / "pydantic").is_dir(), sorted(p.name for p in site.iterdir())
    missing = uncompiled(site)
    assert not missing, f"{len(missing)} modules without bytecode ({missing[:5]})"
