"""Test support shared by the suites: synthetic metric scenarios and a real Prometheus fixture.

Imported by tests as ``support.*`` (``tests/`` is on ``sys.path`` through its ``conftest.py``).
"""
