"""The controller's HTTP API (FastAPI): health, metrics, canaries, actions and webhooks.

:mod:`~controlplane.api.app` builds the application, :mod:`~controlplane.api.auth` says who may
call it, :mod:`~controlplane.api.alertmanager` and :mod:`~controlplane.api.git` receive webhooks,
:mod:`~controlplane.api.server` serves it on a thread. docs/api.md describes it for users.
"""
