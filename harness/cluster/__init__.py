"""The loopback cluster: etcd and kube-apiserver built from source, the controllers, kwok GPU nodes,
the real KServe, LLMInferenceService controller and Prometheus Operator on it.

``python -m harness up|down`` is ``make kube-up`` / ``make kube-down``. Its modules, one
line each: docs/architecture.md, "Module map" (``harness/cluster/``).
"""
