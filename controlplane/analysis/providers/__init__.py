"""Metric providers: the :class:`~.base.MetricProvider` protocol and its implementations.

``base`` defines the protocol, ``prometheus`` talks to a real Prometheus through
``prometheus-api-client``, ``static`` is the in-memory fake used by unit tests.
"""
