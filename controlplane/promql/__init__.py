"""Every PromQL text the product sends: the built-ins, custom templates, grouped and
sequential queries.

Its modules, one line each: docs/architecture.md, "Module map" (`promql/`).
"""
