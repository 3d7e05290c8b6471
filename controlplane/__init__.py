"""controlplane: metric-gated canary rollouts of (quantized) LLM variants on KServe + vLLM.

A pure core in thin shells. Its packages, their layers and every module, one line each:
docs/architecture.md (held to the tree by tests/test_package_map.py).
"""

__version__ = "0.1.0"
