"""In-memory fakes of the Kubernetes API server and of KServe's controller, behind the product's
``KubeClient`` protocol (:mod:`controlplane.kube.client`), and the stand-ins of KServe's and
KEDA's controllers on a real API server (:mod:`harness.kube.isvc_standin`,
:mod:`harness.kube.keda_standin`).

Its modules, one line each: docs/architecture.md, "Module map" (``harness/kube/``).
"""
