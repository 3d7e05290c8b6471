"""The controller's image, built here from the repository's ``Dockerfile`` with buildah.

Owns :func:`controller_image`: the chart's image (``charts/controlplane``, ``image``) made the
way a user makes it (``docker build .``), so the pod the chart runs on the real node runs what
the Dockerfile says, entrypoint, user and all. Nothing is pulled:

- **The base** (:func:`python_base`) stands in for the Dockerfile's ``python:3.11.N-slim-
  bookworm``, which no registry here serves: Debian bookworm ``minbase`` (``mmdebstrap``) with
  Debian's ``python3`` (3.11), ``python-is-python3`` (the Dockerfile runs ``python``),
  ``passwd`` (``groupadd`` / ``useradd``), ``ca-certificates``, and pip installed from Debian's
  own pip wheel (``python3-pip-whl``) into ``/usr/local``, as the official image has it: with a
  ``RECORD``, so the Dockerfile's ``pip uninstall -y pip`` works, and without Debian's
  ``EXTERNALLY-MANAGED`` marker, which the official image's Python does not have either. Built
  once per :data:`PYTHON_RECIPE` and cached outside the repository as a root file system tar.
- **The build**: ``buildah build`` of the Dockerfile with ``--build-arg PYTHON_IMAGE=`` that
  base, in a storage folder of its own (``vfs``, removed after), ``--isolation chroot`` and the
  host's network (pip reaches the package registry as the host's pip does: its
  ``/etc/pip.conf`` and the certificate it names are mounted read-only into the build), every
  dependency pinned to ``uv.lock`` through the Dockerfile's ``PIP_CONSTRAINT`` (a ``uv export``
  mounted into the build). The result is pushed as an OCI archive for ``ctr images import``.
- **The cache**: the tag is the hash of what the build reads (the Dockerfile, the files
  ``.dockerignore`` lets in, the constraints, the base's recipe); an archive of that tag in the
  cache is used as it is, and older ones are removed.

Called by the real-traffic fixtures (``tests/support/real_traffic.py``). A missing tool is a
:class:`~harness.cluster.kubeapi.KubeSetupError` naming the Debian package, never a skip.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from harness.cluster.kubeapi import KubeSetupError
from harness.node.images import ROOT, Image, cache_dir, locked_requirements, need, pinned

CONTROLLER_REPOSITORY = "localhost/controlplane-controller"
PYTHON_BASE = "localhost/python:3.11-bookworm"
PYTHON_RECIPE = "python-base-1"
"""Bumped whenever the way the base is built changes (its cache file's name)."""
BASE_PACKAGES = ("python3", "python3-pip-whl", "python-is-python3", "passwd", "ca-certificates")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONSTRAINTS_IN_BUILD = "/run/controlplane-constraints.txt"
PIP_CONFIG = Path("/etc/pip.conf")


def _run(argv: list[str], what: str, timeout: float = 1200) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-3000:]
        raise KubeSetupError(f"{what} failed ({' '.join(argv[:3])} ...):\n{tail}")
    return done.stdout


def python_base() -> Path:
    """The cached root file system tar of the base (see the module docstring), built when
    missing."""
    final = cache_dir() / f"{PYTHON_RECIPE}.tar"
    if final.exists():
        return final
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix="building-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        # escaped: the hook's own shell runs on the host, the inner one in the new root
        install_pip = (
            'chroot "$1" sh -c "W=\\$(ls /usr/share/python-wheels/pip-*.whl); '
            'python3 \\$W/pip install --quiet --no-index --no-cache-dir \\$W"'
        )
        _run(
            [
                need("mmdebstrap", "mmdebstrap"),
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                "--mode=root",
                "--quiet",
                '--customize-hook=rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED',
                f"--customize-hook={install_pip}",
                '--customize-hook=rm -rf "$1"/usr/share/doc "$1"/usr/share/man "$1"/var/cache/apt',
                "bookworm",
                str(rootfs),
            ],
            "mmdebstrap (the controller image's base)",
        )
        if not final.exists():
            os.replace(rootfs, final)
    return final


def build_inputs() -> list[Path]:
    """The files ``docker build .`` sends, by ``.dockerignore`` (its ``*`` then ``!path``
    lines), sorted."""
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    files: list[Path] = []
    for entry in allowed:
        path = ROOT / entry
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                p
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
    return sorted(files)


def image_key(constraints: str) -> str:
    """The hash of everything the build reads (first 12 hex digits)."""
    digest = hashlib.sha256()
    for text in (PYTHON_RECIPE, pinned(constraints), (ROOT / "Dockerfile").read_text()):
        digest.update(text.encode() + b"\0")
    for path in build_inputs():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def pip_mounts() -> list[str]:
    """``-v`` options giving the build the host's pip configuration, read-only: ``/etc/pip.conf``
    and the certificate files it or ``PIP_CERT`` names, at the same paths."""
    files: list[str] = []
    if PIP_CONFIG.is_file():
        files.append(str(PIP_CONFIG))
        config = configparser.ConfigParser()
        config.read(PIP_CONFIG)
        files.extend(config.get(section, "cert") for section in config if "cert" in config[section])
    if os.environ.get("PIP_CERT"):
        files.append(os.environ["PIP_CERT"])
    return [f"--volume={f}:{f}:ro" for f in dict.fromkeys(files) if Path(f).is_file()]


def controller_image() -> Image:
    """The controller image of this checkout (cached; built with buildah when missing)."""
    constraints = locked_requirements()
    tag = image_key(constraints)
    final = cache_dir() / f"controller-{tag}.tar"
    if final.exists():
        return Image(f"{CONTROLLER_REPOSITORY}:{tag}", final)
    base = python_base()
    buildah = need("buildah", "buildah")
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix="building-") as tmp:
        work = Path(tmp)
        store = [
            buildah,
            f"--root={work / 'storage'}",
            f"--runroot={work / 'run'}",
            "--storage-driver=vfs",
        ]
        (work / "constraints.txt").write_text(constraints)
        try:
            box = _run([*store, "from", "scratch"], "buildah from").strip()
            _run([*store, "add", box, str(base), "/"], "buildah add (the base)")
            _run([*store, "config", f"--env=PATH={PATH}", "--cmd=python3", box], "buildah config")
            _run([*store, "commit", "--quiet", box, PYTHON_BASE], "buildah commit (the base)")
            _run(
                [
                    *store,
                    "build",
                    "--quiet",
                    "--network=host",
                    "--isolation=chroot",
                    f"--volume={work / 'constraints.txt'}:{CONSTRAINTS_IN_BUILD}:ro",
                    f"--build-arg=PIP_CONSTRAINT={CONSTRAINTS_IN_BUILD}",
                    f"--build-arg=PYTHON_IMAGE={PYTHON_BASE}",
                    *pip_mounts(),
                    f"--tag={CONTROLLER_REPOSITORY}:{tag}",
                    f"--file={ROOT / 'Dockerfile'}",
                    str(ROOT),
                ],
                "buildah build (the Dockerfile)",
            )
            archive = work / "controller.tar"
            _run(
                [*store, "push", f"{CONTROLLER_REPOSITORY}:{tag}", f"oci-archive:{archive}:{tag}"],
                "buildah push",
            )
        finally:
            subprocess.run([*store, "rm", "--all"], capture_output=True, check=False)
            subprocess.run([*store, "rmi", "--all", "--force"], capture_output=True, check=False)
        for old in cache_dir().glob("controller-*.tar"):
            old.unlink(missing_ok=True)
        os.replace(archive, final)
    return Image(f"{CONTROLLER_REPOSITORY}:{tag}", final)
