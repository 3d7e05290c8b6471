"""The Kubernetes adapter: the only package that may import the ``kubernetes`` client.

Its modules, one line each: docs/architecture.md, "Module map" (`kube/`).
"""
