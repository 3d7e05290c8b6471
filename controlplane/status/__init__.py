"""The ``status`` document of a ModelCanary: its format, conditions and times, below every
reader of it.

Its modules, one line each: docs/architecture.md, "Module map" (`status/`).
"""
