"""The images Argo Workflows' pods run on the real node, built here and never pulled.

Owns two OCI images for :mod:`harness.node.argo` (imported into the node's containerd with
``ctr images import``, like :mod:`harness.node.images`' pause and engine images):

- ``localhost/argoexec:<ARGO_VERSION>``: Argo's executor, the static ``argoexec`` that
  ``scripts/build-argo.sh`` builds from the ``github.com/argoproj/argo-workflows/v3`` module, at
  ``/bin/argoexec`` with ``ENTRYPOINT ["argoexec"]`` and ``hack/nsswitch.conf`` at
  ``/etc/nsswitch.conf``: what the module's ``Dockerfile`` puts in its ``argoexec`` stage (on
  ``gcr.io/distroless/static``, which no registry here serves and which a static binary does not
  need; its ``hack/ssh_known_hosts`` serves git artifacts, which nothing here uses). Every
  Workflow pod runs it: the ``init`` container copies it into the pod, the ``wait`` container
  reports the outputs, and the main container runs the step under ``argoexec emissary``.
- ``localhost/python:3.11-bookworm``: the root file system of
  :func:`harness.node.controller_image.python_base` (Debian bookworm with ``python3`` and
  ``python-is-python3``) as an image of one layer: what the shipped WorkflowTemplates' ``python``
  steps run here in place of ``python:3.12-slim`` (their ``image`` parameter).

Called by :func:`harness.node.argo.start_argo`. A missing tool is a
:class:`~harness.cluster.kubeapi.KubeSetupError` naming the Debian package, never a skip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.cluster.kubeapi import tool_dir
from harness.node.controller_image import PYTHON_BASE, python_base
from harness.node.images import Image, _archive, _umoci, binary_image

EXECUTOR_REPOSITORY = "localhost/argoexec"
NSSWITCH = "hosts: files dns\n"
"""``hack/nsswitch.conf`` of Argo Workflows v3.7.3 (one line: hosts from files, then DNS)."""


def executor_image(work: Path, version: str) -> Image:
    """The executor image from the ``argoexec`` that ``scripts/build-argo.sh`` built."""
    return binary_image(
        work,
        f"{EXECUTOR_REPOSITORY}:{version}",
        tool_dir() / "argoexec",
        "bin/argoexec",
        ("--config.entrypoint", "argoexec"),
        files={"etc/nsswitch.conf": NSSWITCH},
    )


def python_image(work: Path) -> Image:
    """Debian's Python (``python`` and ``python3``) as an image of one layer."""
    tag = PYTHON_BASE.rsplit(":", 1)[1]
    layout = work / "python-layout"
    shutil.rmtree(layout, ignore_errors=True)
    _umoci("init", "--layout", str(layout))
    _umoci("new", "--image", f"{layout}:{tag}")
    _umoci("raw", "add-layer", "--image", f"{layout}:{tag}", str(python_base()))
    _umoci(
        "config",
        "--image",
        f"{layout}:{tag}",
        "--config.env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--config.cmd",
        "python3",
    )
    return Image(PYTHON_BASE, _archive(layout, work / "python.tar"))
