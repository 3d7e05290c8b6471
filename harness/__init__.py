"""The test harness of controlplane: in-memory fakes and a real cluster on loopback.

Not part of the product: the wheel ships ``controlplane`` only (``pyproject.toml``,
``[tool.setuptools.packages.find]``) and ``controlplane`` never imports this package (an
import-linter contract). It lives beside the package in the repository, for the tests, the
benchmarks (``bench/``) and ``make kube-up``; what only tests use, built on it, is in
``tests/support/``. Like ``kopf.testing``, a small public surface, importable from here:

- :class:`FakeKube` -- a faithful in-memory API server behind the product's ``KubeClient``
  protocol (:mod:`harness.kube.fake`);
- :class:`FakeKServe` -- a tick-driven fake KServe controller inside a ``FakeKube``
  (:mod:`harness.kube.fake_kserve`);
- :class:`StaticProvider` -- an in-memory metric provider (:mod:`harness.providers`, beside
  ``Healthy``, which answers every query as a healthy pair of variants would);
- :class:`LoopbackCluster`, :func:`start_cluster`, :class:`KubeSetupError` -- etcd and a real
  kube-apiserver on loopback (:mod:`harness.cluster.kubeapi`); ``python -m harness
  up|down`` is ``make kube-up`` / ``make kube-down`` (:mod:`harness.cli`);
- :func:`~harness.node.node.start_node` -- a real node on that cluster: kubelet, containerd and CNI
  running pods from images built here (:mod:`harness.node`).

Beside them, not exported: KServe's and KEDA's stand-ins on a real API server
(:mod:`harness.kube`) and loopback stand-ins of the remote services the product calls
(:mod:`harness.servers`).

Its subpackages and modules, one line each: docs/architecture.md, "Module map" (``harness/``).
"""

from harness.cluster.kubeapi import KubeSetupError, LoopbackCluster, start_cluster
from harness.kube.fake import FakeKube
from harness.kube.fake_kserve import FakeKServe
from harness.providers import StaticProvider

__all__ = [
    "FakeKServe",
    "FakeKube",
    "KubeSetupError",
    "LoopbackCluster",
    "StaticProvider",
    "start_cluster",
]
