"""The endpoint policy (controlplane/spec/endpoints.py): which spec URLs the controller may be sent
to. Matching on scheme, host and port, path prefixes on segment boundaries, and the URL shapes
refused whatever the allow-list says (credentials, dot segments, encoded dots and slashes)."""

from __future__ import annotations

import pytest
from support.canaries import model_canary

from controlplane.spec.endpoints import (
    EndpointPolicy,
    endpoint_problems,
    entry_problem,
    shown,
)

PROM = EndpointPolicy(prometheus=("http://prom.monitoring:9090/prom",))


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://prom.monitoring:9090/prom", True),
        ("http://prom.monitoring:9090/prom/", True),
        ("http://prom.monitoring:9090/prom/tenant-a", True),
        ("http://PROM.Monitoring:9090/prom", True),  # the host is case-insensitive
        ("HTTP://prom.monitoring:9090/prom", True),  # so is the scheme
        ("http://prom.monitoring:9090/prometheus", False),  # a prefix, not on a segment boundary
        ("http://prom.monitoring:9090/Prom", False),  # the path is not
        ("http://prom.monitoring:9090/", False),
        ("http://prom.monitoring:9090", False),
        ("http://prom.monitoring:9091/prom", False),  # the port
        ("http://prom.monitoring/prom", False),  # port 80 is another port
        ("https://prom.monitoring:9090/prom", False),  # the scheme
        ("http://prom.monitoring.evil:9090/prom", False),
        ("http://evil/prom.monitoring:9090/prom", False),
        ("http://prom.monitoring:9090/prom/../admin", False),
        ("http://prom.monitoring:9090/prom/./x", False),
        ("http://prom.monitoring:9090/prom/%2e%2e/admin", False),
        ("http://prom.monitoring:9090/prom/%2E%2E/admin", False),
        ("http://prom.monitoring:9090/prom%2fadmin", False),
        ("http://prom.monitoring:9090/prom/%252e%252e/admin", False),
        ("http://prom.monitoring:9090/prom\\..\\admin", False),
        ("http://user:pass@prom.monitoring:9090/prom", False),
        ("http://prom.monitoring:9090@evil:9090/prom", False),
        ("http://prom.monitoring:9090/prom?x=1", False),  # a query the entry does not have
        ("http://prom.monitoring:9090/prom?", False),
        ("http://prom.monitoring:9090/prom#frag", False),
        ("http://prom.monitoring:99999/prom", False),  # not a port
        ("ftp://prom.monitoring:9090/prom", False),
    ],
)
def test_prefix_matching(url: str, allowed: bool) -> None:
    assert PROM.allows("prometheus", url) is allowed


def test_dot_segments_are_refused_even_under_an_allowed_root() -> None:
    root = EndpointPolicy(prometheus=("http://prom:9090",))
    assert root.allows("prometheus", "http://prom:9090")
    assert root.allows("prometheus", "http://prom:9090/anything/below")
    why = root.refusal("prometheus", "http://prom:9090/../admin")
    assert why == "http://prom:9090/../admin is refused: it has a '.' or '..' path segment"
    why = root.refusal("prometheus", "http://prom:9090/%2e%2e/admin")
    assert why is not None
    assert "percent-encoded" in why


def test_default_ports_are_the_schemes() -> None:
    policy = EndpointPolicy(alerts=("https://hooks.example.com/canary",))
    assert policy.allows("alerts", "https://hooks.example.com:443/canary/team-a")
    assert not policy.allows("alerts", "https://hooks.example.com:8443/canary")
    assert not policy.allows("alerts", "http://hooks.example.com/canary")


def test_a_query_only_when_the_entry_has_the_same() -> None:
    policy = EndpointPolicy(alerts=("https://hooks.example.com/in?team=a",))
    assert policy.allows("alerts", "https://hooks.example.com/in?team=a")
    assert not policy.allows("alerts", "https://hooks.example.com/in?team=b")
    assert not policy.allows("alerts", "https://hooks.example.com/in")


def test_userinfo_is_refused_and_not_shown() -> None:
    policy = EndpointPolicy(prometheus=("http://prom:9090",))
    why = policy.refusal("prometheus", "http://admin:s3cret@prom:9090")
    assert why is not None
    assert "s3cret" not in why
    assert why.startswith("http://***@prom:9090 is refused: it has a user name or password")
    assert shown("https://a:b@h/x?y") == "https://***@h/x?y"


def test_the_controllers_own_urls_are_allowed_exactly() -> None:
    policy = EndpointPolicy().with_own(prometheus="http://prom:9090", argo="https://argo:2746")
    assert policy.allows("prometheus", "http://prom:9090")
    assert policy.allows("prometheus", "http://prom:9090/")
    assert not policy.allows("prometheus", "http://prom:9090/admin")  # exact, not a prefix
    assert policy.allows("argo", "https://argo:2746")
    assert not policy.allows("argo", "https://argo:2746/x")
    assert not policy.allows("argo", "http://prom:9090")  # per kind
    assert not policy.allows("alerts", "http://prom:9090")


def test_nothing_is_allowed_by_default() -> None:
    closed = EndpointPolicy()
    for kind in ("prometheus", "argo", "alerts"):
        assert not closed.allows(kind, "http://127.0.0.1:9090")  # type: ignore[arg-type]


def test_messages_name_the_flag_and_the_chart_value() -> None:
    closed = EndpointPolicy()
    assert closed.refusal("prometheus", "http://x:9090") == (
        "http://x:9090 is not among the Prometheus URLs this controller may query (an "
        "administrator allows it with --allow-prometheus or the chart's "
        "allowedEndpoints.prometheus)"
    )
    argo = closed.refusal("argo", "http://127.0.0.1:2746")
    assert argo is not None
    assert "--allow-argo-server" in argo
    assert "allowedEndpoints.argoServers" in argo
    alerts = closed.refusal("alerts", "https://hooks.example.com")
    assert alerts is not None
    assert "--allow-alert-url" in alerts
    assert "allowedEndpoints.alerts" in alerts


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("http://prom:9090", None),
        ("https://hooks.example.com/canary/", None),
        ("prom:9090", "is not an http:// or https:// URL"),
        ("http://u:p@prom:9090", "has a user name or password"),
        ("http://prom:9090/a/../b", "has a '.' or '..' path segment"),
        ("http:///path", "has no host"),
    ],
)
def test_entry_problems(entry: str, problem: str | None) -> None:
    found = entry_problem(entry)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)


GATE = {"name": "eval", "before": "promotion", "workflowTemplate": {"name": "t"}}


def test_every_spec_url_is_checked_at_its_path() -> None:
    canary = model_canary(
        prometheus="http://x:9090",
        gates=[GATE, {**GATE, "name": "e2", "argoServer": "http://127.0.0.1:2746"}],
        alerts=[
            {"slack": {"webhookSecretRef": {"name": "s", "key": "url"}}},
            {"webhook": {"url": "https://hooks.example.com/canary"}},
            {"alertmanager": {"url": "http://alertmanager:9093"}},
        ],
    )
    found = [
        (p.path, p.message.split(" is ")[0]) for p in endpoint_problems(canary, EndpointPolicy())
    ]
    assert found == [
        ("spec.analysis.prometheus", "http://x:9090"),
        ("spec.gates[1].argoServer", "http://127.0.0.1:2746"),
        ("spec.alerts[1].webhook.url", "https://hooks.example.com/canary"),
        ("spec.alerts[2].alertmanager.url", "http://alertmanager:9093"),
    ]
    allowed = EndpointPolicy(
        prometheus=("http://x:9090",),
        argo=("http://127.0.0.1:2746",),
        alerts=("https://hooks.example.com", "http://alertmanager:9093"),
    )
    assert endpoint_problems(canary, allowed) == []


def test_a_spec_without_urls_has_no_problems() -> None:
    assert endpoint_problems(model_canary(), EndpointPolicy()) == []
