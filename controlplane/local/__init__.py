"""The single-machine stack of ``canaryctl up`` and ``canaryctl demo``, and one simulated model
server as a pod's process (``python -m controlplane.local.serve``).

The tests' loopback Kubernetes cluster is the harness's, not here. Module map:
docs/architecture.md, "Module map" (``local/``).
"""
