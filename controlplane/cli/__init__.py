"""``canaryctl`` / ``kubectl-canary``: one module per verb, thin; rendering separate.

Its modules, one line each: docs/architecture.md, "Module map" (`cli/`).
"""
