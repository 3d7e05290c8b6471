"""What a canary looks like to a person: the one view model that ``kubectl canary get`` /
``list`` / ``status``, the HTTP API and the dashboard render. Pure.

Its modules, one line each: docs/architecture.md, "Module map" (`view/`).
"""
