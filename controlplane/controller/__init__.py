"""The controller: the imperative shell that reconciles ModelCanary resources.

Its modules, one line each: docs/architecture.md, "Module map" (`controller/`).
"""
