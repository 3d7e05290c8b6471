"""The controller's HTTP API (FastAPI): health, metrics, canaries, actions and webhooks.

:mod:`~controlplane.api.app` builds the application of an
:class:`~controlplane.api.config.ApiConfig` from its route groups
(:mod:`~controlplane.api.health`, :mod:`~controlplane.api.canaries`,
:mod:`~controlplane.api.actions`, :mod:`~controlplane.api.webhooks`; bodies in
:mod:`~controlplane.api.models`, errors in :mod:`~controlplane.api.error_responses`);
:mod:`~controlplane.api.auth` and :mod:`~controlplane.api.access` say who may call it,
:mod:`~controlplane.api.alertmanager` and :mod:`~controlplane.api.git` receive webhooks,
:mod:`~controlplane.api.server` serves it on a thread. docs/api.md describes it for users.
"""
