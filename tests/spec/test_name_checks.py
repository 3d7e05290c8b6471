"""spec/name_checks: the DNS-1123 rules and the path fence every name passes before a request."""

from __future__ import annotations

import re

import pytest

from controlplane.errors import InvalidName, KubeError
from controlplane.spec import name_checks

TRAVERSALS = [
    "../../team-b/modelcanaries/victim",
    "../../../../../../api/v1/namespaces/payments/configmaps/victim",
    "..",
    ".",
    "a/b",
    "?labelSelector=x",
    "x#frag",
    "%2e%2e",
    "a\nb",
    "",
]


@pytest.mark.parametrize("value", ["a", "team-a", "a" * 63, "0x"])
def test_labels_accepted(value: str) -> None:
    assert name_checks.check_label(value) == value
    assert name_checks.check_subdomain(value) == value


@pytest.mark.parametrize("value", ["A", "-a", "a-", "a" * 64, "a.b", "a_b", *TRAVERSALS, None, 7])
def test_labels_refused(value: object) -> None:
    assert not name_checks.is_label(value)
    with pytest.raises(InvalidName, match="not a valid Kubernetes name"):
        name_checks.check_label(value, "namespace")


def test_a_trailing_newline_is_no_name() -> None:
    """``$`` matches before a final newline: the patterns must match the whole string."""
    assert not name_checks.is_label("team-a\n")
    assert not name_checks.is_subdomain("x.y\n")


def test_subdomains() -> None:
    assert name_checks.check_subdomain("svc.team-a.example") == "svc.team-a.example"
    assert not name_checks.is_subdomain("a..b")
    assert not name_checks.is_subdomain("." + "a" * 10)
    assert not name_checks.is_subdomain("a" * 254)
    with pytest.raises(InvalidName, match=re.escape("canary '../x'")):
        name_checks.check_subdomain("../x", "canary")


@pytest.mark.parametrize("value", TRAVERSALS)
def test_the_fence_refuses_what_changes_a_path(value: str) -> None:
    with pytest.raises(InvalidName):
        name_checks.check_path_segment(value)


@pytest.mark.parametrize("value", ["leader-lock", "system:controller", "Mixed.Case-1", "a.b"])
def test_the_fence_lets_other_kinds_names_through(value: str) -> None:
    """Looser than DNS-1123: RBAC and Event names may hold ':' or upper case."""
    assert name_checks.check_path_segment(value) == value


def test_ref_names_and_the_error_tree() -> None:
    name_checks.check_ref_names(None, "x")
    name_checks.check_ref_names("team-a", None)
    with pytest.raises(KubeError):  # an adapter's callers already handle KubeError
        name_checks.check_ref_names("team-a/../kube-system", "x")
    with pytest.raises(ValueError, match=re.escape("may not contain '..'")):
        name_checks.check_ref_names("team-a", "../../x")
