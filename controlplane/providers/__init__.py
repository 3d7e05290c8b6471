"""Metric providers: the implementations of :mod:`controlplane.analysis.metric_provider`'s protocol.

A shell around the pure analysis core: analysis defines the protocol it reads through and never
imports a provider; the controller, ``canaryctl simulate`` / ``up`` and the local stack build one
and hand it in. Its modules, one line each: docs/architecture.md, "Module map" (`providers/`).
"""
