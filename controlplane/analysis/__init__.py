"""Analysis: turns a canary's checks into PromQL, asks a metric provider, and judges the answers.

Its modules, one line each: docs/architecture.md, "Module map" (`analysis/`).
"""
