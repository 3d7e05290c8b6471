"""controlplane: metric-gated canary rollouts of (quantized) LLM variants on KServe + vLLM.

The package is a pure core (``spec``, ``rollout``, ``analysis``, ``profiles``,
``serving``) wrapped in thin shells (``providers``, ``routing``, ``kube``, ``cli``).
"""

__version__ = "0.1.0"
