"""Measuring variants: ``canaryctl profile``'s endpoint client and in-process model builder.

Not part of the pure core: this package does I/O (HTTP, torch). The figures it produces are
shaped and summarized by :mod:`controlplane.profiles.measured` (pure). Called by
:mod:`controlplane.cli.profile`.
"""
