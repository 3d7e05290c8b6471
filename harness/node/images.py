"""The container images a real node runs, built here and never pulled.

Owns the two OCI images the node's pods run, written as OCI image layouts with ``umoci`` and
imported into containerd with ``ctr images import`` (no registry anywhere):

- ``localhost/pause:3.10.1``: the sandbox image, Kubernetes' own ``build/pause/linux/pause.c``
  compiled static (``scripts/build-kube.sh`` builds it from the ``k8s.io/kubernetes`` module, as
  ``build/pause/Makefile`` does: ``-Os -Wall -Werror -static``), run as 65535 like the upstream
  image;
- ``localhost/controlplane-engine:<tag>``: the project's vLLM-compatible server
  (``python -m controlplane.local.serve``). Its base layer is Debian bookworm ``minbase`` with
  ``python3`` (``mmdebstrap`` from Debian's packages) and the server's dependencies at the
  versions of ``uv.lock`` (``uv pip install --target``, manylinux wheels for CPython 3.11,
  bookworm's Python) compiled to bytecode by the image's own ``python3``; the base is built once
  per lock and cached outside the repository. The
  project's wheel (``uv build``, package data included) is one more layer on top, so a code
  change costs seconds, and the tag is the hash of that layer.

Called by :mod:`harness.node.node`; the cache folder is ``$XDG_CACHE_HOME/controlplane-tools/
images``. A missing tool is a :class:`~harness.cluster.kubeapi.KubeSetupError` naming the Debian
package, never a skip.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.cluster.kubeapi import KubeSetupError, tool_dir
from harness.tools import tools_dir

PAUSE_VERSION = "3.10.1"
"""kubeadm's ``PauseVersion`` in Kubernetes v1.34.10 (``cmd/kubeadm/app/constants``)."""
PAUSE_IMAGE = f"localhost/pause:{PAUSE_VERSION}"
ENGINE_REPOSITORY = "localhost/controlplane-engine"
DEBIAN_SUITE = "bookworm"
"""Debian 12: its ``python3`` is CPython 3.11, the wheels below are for it."""
ENGINE_PACKAGES = ("aiohttp", "prometheus-client", "pydantic", "pyyaml")
"""What ``python -m controlplane.local.serve`` imports outside the standard library (its test
checks numpy, scipy, kubernetes and fastapi stay out)."""
ENGINE_USER = "65532:65532"
ENGINE_SITE = "/opt/engine/site"
ENGINE_SRC = "/opt/engine/src"
RECIPE = "engine-base-5"
"""Bumped whenever the way the base layer is built changes (part of its cache key)."""
DEBIAN_PACKAGES = ("python3", "libnuma1")
"""``libnuma1``: vLLM's CPU kernels link ``libnuma.so.1`` (the real engine runs on this image).
No C++ compiler: vLLM's own CPU image has one (``docker/Dockerfile.cpu``, read on vLLM's main
branch on 2026-11-28, not at the v0.32.0 tag: its ``base-common`` stage installs gcc and g++),
because vLLM compiles some functions with ``torch.compile`` whatever ``--enforce-eager`` says,
at the first request that needs them (vLLM 0.32.0's ``batched_count_greater_than``,
``vllm/v1/sample/ops/logprobs.py``, at the first request for ``logprobs``). The real engine's
pods here turn ``torch.compile`` off instead (``TORCH_COMPILE_DISABLE``,
:data:`harness.node.serving.VLLM_ENV`), which saves the image a compiler, Python's headers and
``openssl`` (95 MB) and the engines a compile that stalled them past two minutes on a loaded
host."""
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Image:
    """An OCI image layout archive ready for ``ctr images import`` and the name it gets."""

    ref: str
    archive: Path


def cache_dir() -> Path:
    return tools_dir() / "images"


def need(tool: str, package: str) -> str:
    """The path of ``tool``, or a KubeSetupError naming the Debian package that has it."""
    found = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if found is None:
        raise KubeSetupError(
            f"{tool} is not installed: run `make kube-tools` (it installs the Debian package "
            f"{package})"
        )
    return found


def uv_binary() -> str:
    """``$UV``, else the uv ``make setup`` installs in the tools folder, else ``uv`` on PATH."""
    if os.environ.get("UV"):
        return os.environ["UV"]
    pinned = sorted(glob.glob(str(tools_dir() / "uv-*" / "bin" / "uv")))
    if pinned:
        return pinned[-1]
    found = shutil.which("uv")
    if found is None:
        raise KubeSetupError("uv is not installed: run `make setup`")
    return found


def _run(argv: list[str], what: str, timeout: float = 900) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise KubeSetupError(f"{what} failed ({' '.join(argv[:3])} ...):\n{done.stderr[-3000:]}")
    return done.stdout


def _umoci(*args: str) -> str:
    return _run([need("umoci", "umoci"), *args], f"umoci {args[0]}")


def _archive(layout: Path, into: Path) -> Path:
    """The layout folder as one tar (what ``ctr images import`` reads)."""
    with tarfile.open(into, "w") as tar:
        for entry in sorted(layout.rglob("*")):
            tar.add(entry, arcname=str(entry.relative_to(layout)), recursive=False)
    return into


def binary_image(
    work: Path,
    reference: str,
    binary: Path,
    at: str,
    config: tuple[str, ...],
    files: dict[str, str] | None = None,
) -> Image:
    """An image of one layer holding one static ``binary`` (built by ``make kube-tools``) at
    ``at`` in an otherwise empty root, with ``files`` (path in the root -> text) beside it and a
    sticky, writable ``/tmp`` when there are any, and ``umoci config`` arguments ``config``: the
    sandbox's pause image and Argo's executor (:mod:`harness.node.workflow_images`)."""
    if not os.access(binary, os.X_OK):
        raise KubeSetupError(f"{binary.name} is not built: run `make kube-tools`")
    name, tag = binary.name, reference.rsplit(":", 1)[1]
    layout, bundle = work / f"{name}-layout", work / f"{name}-bundle"
    shutil.rmtree(layout, ignore_errors=True)
    shutil.rmtree(bundle, ignore_errors=True)
    _umoci("init", "--layout", str(layout))
    _umoci("new", "--image", f"{layout}:{tag}")
    _umoci("unpack", "--image", f"{layout}:{tag}", str(bundle))
    rootfs = bundle / "rootfs"
    (rootfs / at).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, rootfs / at)
    for path, text in (files or {}).items():
        (rootfs / path).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / path).write_text(text)
    if files:
        (rootfs / "tmp").mkdir(exist_ok=True)
        (rootfs / "tmp").chmod(0o1777)
    _umoci("repack", "--image", f"{layout}:{tag}", str(bundle))
    _umoci("config", "--image", f"{layout}:{tag}", *config)
    shutil.rmtree(bundle, ignore_errors=True)
    return Image(reference, _archive(layout, work / f"{name}.tar"))


def pause_image(work: Path) -> Image:
    """The sandbox image from the pause binary ``scripts/build-kube.sh`` built."""
    return binary_image(
        work,
        PAUSE_IMAGE,
        tool_dir() / "pause",
        "pause",
        ("--config.entrypoint", "/pause", "--config.user", "65535:65535"),
    )


def locked_requirements() -> str:
    """The engine's packages and their dependencies at ``uv.lock``'s versions (a constraints
    file for ``uv pip install``)."""
    return _run(
        [
            uv_binary(),
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-project",
            "--no-hashes",
            "--format",
            "requirements-txt",
            "--project",
            str(ROOT),
        ],
        "uv export",
    )


def pinned(constraints: str) -> str:
    """``constraints`` without its comments: what a cache key may hash. ``uv export`` writes the
    command it ran, the checkout's path included, as a comment, which would give every clone
    keys of its own and a cold build."""
    return "\n".join(line for line in constraints.splitlines() if not line.lstrip().startswith("#"))


def base_key(constraints: str) -> str:
    text = "\n".join(
        [RECIPE, DEBIAN_SUITE, *DEBIAN_PACKAGES, *ENGINE_PACKAGES, pinned(constraints)]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def engine_base() -> Path:
    """The cached OCI layout holding the engine's base (tag ``base``), built when missing."""
    constraints = locked_requirements()
    final = cache_dir() / f"engine-base-{base_key(constraints)}"
    if (final / "index.json").exists():
        return final
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix="building-") as tmp:
        work = Path(tmp)
        layout, bundle = work / "layout", work / "bundle"
        _umoci("init", "--layout", str(layout))
        _umoci("new", "--image", f"{layout}:base")
        _umoci("unpack", "--image", f"{layout}:base", str(bundle))
        rootfs = bundle / "rootfs"
        _run(
            [
                need("mmdebstrap", "mmdebstrap"),
                "--variant=minbase",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                "--mode=root",
                "--quiet",
                DEBIAN_SUITE,
                str(rootfs),
            ],
            "mmdebstrap",
        )
        for doc in ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/cache/apt"):
            shutil.rmtree(rootfs / doc, ignore_errors=True)
        (work / "constraints.txt").write_text(constraints)
        _run(
            [
                uv_binary(),
                "pip",
                "install",
                "--quiet",
                "--target",
                str(rootfs / ENGINE_SITE.lstrip("/")),
                "--python-version",
                "3.11",
                "--python-platform",
                "x86_64-manylinux_2_28",
                "--only-binary",
                ":all:",
                "--no-compile",
                "-c",
                str(work / "constraints.txt"),
                *ENGINE_PACKAGES,
            ],
            "uv pip install (the engine's dependencies)",
        )
        # their bytecode, by the image's own python3 at the paths it imports them from: the
        # image runs with PYTHONDONTWRITEBYTECODE, and each pod would compile them at its start
        # (0.8 s of CPU to import the four here, 0.3 s with their bytecode). Unchecked-hash
        # (PEP 552): the layer keeps a file's time to the second, rounded, so a timestamp .pyc
        # (which holds the time floored) went stale for many of them; nothing in an
        # image changes its sources
        _run(
            [
                *("chroot", str(rootfs), "python3", "-m", "compileall", "-q"),
                *("--invalidation-mode", "unchecked-hash", ENGINE_SITE),
            ],
            "compileall (the engine's dependencies)",
        )
        _umoci("repack", "--image", f"{layout}:base", str(bundle))
        shutil.rmtree(bundle)
        if not final.exists():  # another build may have finished first: same content
            os.replace(layout, final)
    return final


def project_layer(work: Path) -> tuple[Path, str]:
    """This checkout's package as one layer tar under :data:`ENGINE_SRC`: its wheel (``uv
    build``, from its sdist, package data included) installed there without dependencies,
    archived deterministically (sorted, owner 0, time 0; umoci compresses it). Returns the tar
    and the hash of its content (the image's tag)."""
    wheels, site = work / "wheel", work / "site"
    shutil.rmtree(wheels, ignore_errors=True)
    shutil.rmtree(site, ignore_errors=True)
    uv = uv_binary()
    # the sdist first, then the wheel from it in a temporary folder (what plain ``uv build``
    # does): a wheel built straight from the checkout would leave setuptools' build/ in it
    _run([uv, "build", "--quiet", "--out-dir", str(wheels), str(ROOT)], "uv build")
    (wheel,) = wheels.glob("*.whl")
    _run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-compile",
            "--target",
            str(site),
            "--python-version",
            "3.11",
            str(wheel),
        ],
        "uv pip install (the project's wheel)",
    )
    return layer_of(site, ENGINE_SRC, work / "project.tar")


def layer_of(folder: Path, prefix: str, into: Path) -> tuple[Path, str]:
    """Every file under ``folder`` as a layer tar at ``prefix`` (deterministic: sorted, owner 0,
    time 0, no ``__pycache__``); returns it and the first 12 hex digits of its sha256."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            if "__pycache__" in path.parts or path.suffix == ".pyc" or path.is_symlink():
                continue
            name = f"{prefix.strip('/')}/{path.relative_to(folder)}"
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_file():
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    data = raw.getvalue()
    into.write_bytes(data)
    return into, hashlib.sha256(data).hexdigest()[:12]


def _link_or_copy(source: str, target: str) -> None:
    """A hard link where the cache and the work folder share a file system, else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def engine_image(work: Path) -> Image:
    """The engine image: the cached base plus this checkout's package."""
    base = engine_base()
    layout = work / "engine-layout"
    shutil.rmtree(layout, ignore_errors=True)
    shutil.copytree(base, layout, copy_function=_link_or_copy)
    # umoci rewrites index.json: the copy gets its own, the blobs stay shared (content-addressed)
    (layout / "index.json").unlink()
    shutil.copy2(base / "index.json", layout / "index.json")
    layer, tag = project_layer(work)
    _umoci("raw", "add-layer", "--image", f"{layout}:base", "--tag", tag, str(layer))
    _umoci(
        "config",
        "--image",
        f"{layout}:{tag}",
        "--config.entrypoint",
        "python3",
        "--config.entrypoint",
        "-m",
        "--config.entrypoint",
        "controlplane.local.serve",
        "--config.env",
        f"PYTHONPATH={ENGINE_SRC}:{ENGINE_SITE}",
        "--config.env",
        "PYTHONDONTWRITEBYTECODE=1",
        "--config.user",
        ENGINE_USER,
        "--config.workingdir",
        "/",
    )
    _umoci("rm", "--image", f"{layout}:base")
    return Image(f"{ENGINE_REPOSITORY}:{tag}", _archive(layout, work / "engine.tar"))
