"""Single-machine parts: a throwaway real Prometheus and synthetic vLLM metric history.

Its modules, one line each: docs/architecture.md, "Module map" (`local/`).
"""
