"""Measuring variants: ``canaryctl profile``'s endpoint client and in-process model builder.

Its modules, one line each: docs/architecture.md, "Module map" (`sweep/`).
"""
