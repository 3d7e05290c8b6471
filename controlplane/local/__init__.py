"""The single-machine stack of ``canaryctl up`` and ``canaryctl demo``: model servers and their
engines, load, a router, a throwaway real Prometheus and synthetic vLLM metric history; and one
simulated model server as the main process of a pod (``python -m controlplane.local.serve``).

The loopback Kubernetes cluster of the tests and ``make kube-up`` is not here: it is the test
harness's (``harness/cluster/``, not in the wheel). Its modules, one line each:
docs/architecture.md, "Module map" (`local/`).
"""
