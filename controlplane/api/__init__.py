"""The controller's HTTP API (FastAPI): health, metrics, canaries, actions and webhooks.

Its modules, one line each: docs/architecture.md, "Module map" (`api/`).
"""
