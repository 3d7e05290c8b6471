"""The sequential judge: anytime-valid tests of counts and latency histograms.

Its modules, one line each: docs/architecture.md, "Module map" (`analysis/sequential/`).
"""
