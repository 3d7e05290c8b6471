"""Metric providers: the implementations of :mod:`controlplane.analysis.metric_provider`'s protocol.

``prometheus`` talks to a real Prometheus through ``prometheus-api-client`` (I/O), ``static`` is
the in-memory fake used by unit tests. A shell around the pure analysis core: analysis defines the
protocol it reads through and never imports a provider; the controller, ``canaryctl simulate`` /
``up`` and the local stack build one and hand it in.

Beside them, what every reader of an HTTP endpoint a tenant may name needs: ``bounded`` (answers
capped in bytes and JSON depth, a server's text cut; also used by the Argo gates, the alert
channels and the git hosts' API above) and ``logsafety`` (the HTTP client libraries' loggers at
WARNING, so that no secret URL is logged).
"""
