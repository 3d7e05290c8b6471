"""The remote services the product calls, stood in on loopback: real HTTP servers on
``127.0.0.1:0`` speaking the Argo Server's workflow endpoints, a GitHub / GitLab REST API, git's
smart-HTTP protocol behind TLS, a hostile Prometheus, and a scripted Slack / webhook receiver.

Its modules, one line each: docs/architecture.md, "Module map" (``harness/servers/``).
"""
