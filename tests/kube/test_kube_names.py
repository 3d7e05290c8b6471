"""The name fence of the KubeClient adapters: FakeKube and a real kube-apiserver refuse the same.

Every verb (get, list, create, replace, patch, apply, replace_status, delete, watch, event) is
given names that would change what a request addresses: ``..`` segments (the HTTP client
collapses them, so ``team-a`` + ``../../team-b/modelcanaries/victim`` was team-b's canary),
``/``, ``?`` (``?labelSelector=x`` listed instead of getting one object), ``#``, ``%``, an empty
name (the ``kubernetes`` client lists when the name is empty) and namespaces that are no DNS-1123
label. Each is :class:`~controlplane.errors.InvalidName` on both backends, and nothing is asked:
the fake logs no call, the real adapter sends no HTTP request (read off its HTTP client), and the
victims in another namespace are unchanged on the server. The ``fake`` / ``real`` parametrization
is tests/kube/test_kube_contract.py's; ``real`` runs on the loopback kube-apiserver of
tests/support/realkube.py (``binary``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from support.api import canary as api_canary

from controlplane.errors import InvalidName, KubeError
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.kube.lease import LeaderElector
from controlplane.kube.real import RealKube
from controlplane.spec.models import API_VERSION, KIND
from harness.kube.fake import FakeKube

BAD_NAMES = (
    "../../{other}/modelcanaries/victim",
    "../../../../../../api/v1/namespaces/{other}/configmaps/victim",
    "victim/status",
    "?labelSelector=x",
    "victim#x",
    "victim%2F..%2Fx",
    "..",
    ".",
    "",
    "victim\n",
)
"""Names that address something else than one object of the kind asked for."""
BAD_NAMESPACES = (
    "../{other}",
    "{ns}/modelcanaries/../../{other}",
    "{ns}?labelSelector=x",
    "{ns}#x",
    "Team-A",
    "a.b",
    "",
    "x" * 64,
)
"""Namespaces that are no DNS-1123 label (the first four would leave the namespace's path)."""


class UrlLog:
    """Every URL a RealKube's HTTP client is asked for (observed, not changed)."""

    def __init__(self, kube: RealKube) -> None:
        self.urls: list[str] = []
        self._lock = threading.Lock()
        rest = kube._api_client.rest_client
        send = rest.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.urls.append(f"{method} {url}")
            return send(method, url, *args, **kwargs)

        rest.request = request

    def count(self) -> int:
        with self._lock:
            return len(self.urls)


@dataclass
class Side:
    """One backend: ``kube`` works in ``ns``; ``other`` holds the victims; ``sent()`` counts
    what reached the server (the fake's call log, the real client's requests)."""

    name: str
    kube: KubeClient
    ns: str
    other: str
    sent: Callable[[], int]

    def victims(self) -> list[Obj]:
        """The victims as stored now (their resourceVersions and annotations)."""
        return [
            self.kube.get(Ref(API_VERSION, KIND, self.other, "victim")),
            self.kube.get(Ref("v1", "ConfigMap", self.other, "victim")),
        ]

    def objects_in_ns(self) -> list[str]:
        return sorted(
            o["metadata"]["name"]
            for kind in ((API_VERSION, KIND), ("v1", "ConfigMap"))
            for o in self.kube.list(*kind, self.ns)
        )


@pytest.fixture(scope="module")
def recorded_real(loopback: Any) -> tuple[RealKube, UrlLog]:
    """A RealKube of its own (the session's shared one is not observed) and its request log."""
    kube = RealKube.connect(kubeconfig=str(loopback.kubeconfig))
    return kube, UrlLog(kube)


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.binary)])
def side(request: pytest.FixtureRequest) -> Side:
    if request.param == "fake":
        fake = FakeKube()
        built = Side("fake", fake, "team-a", "team-b", fake.count)
    else:
        from support.realkube import new_namespace

        kube, log = request.getfixturevalue("recorded_real")
        built = Side(
            "real", kube, new_namespace(kube, "team-a"), new_namespace(kube, "team-b"), log.count
        )
    built.kube.create(api_canary("victim", namespace=built.other))
    built.kube.create(configmap(built.other, "victim"))
    built.kube.create(api_canary("mine", namespace=built.ns))
    return built


def configmap(ns: str, name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": {"k": "v"},
    }


Verb = Callable[[KubeClient, str, str], object]
"""One call of one verb with a namespace and a name."""

PATCH: Obj = {"metadata": {"annotations": {"canary.controlplane.dev/intent": "[]"}}}
NAME_VERBS: dict[str, Verb] = {
    "get": lambda k, ns, n: k.get(Ref(API_VERSION, KIND, ns, n)),
    "patch": lambda k, ns, n: k.patch(Ref(API_VERSION, KIND, ns, n), PATCH),
    "patch-json": lambda k, ns, n: k.patch(
        Ref("v1", "ConfigMap", ns, n), [{"op": "add", "path": "/data/x", "value": "y"}], kind="json"
    ),
    "delete": lambda k, ns, n: k.delete(Ref(API_VERSION, KIND, ns, n)),
    "create": lambda k, ns, n: k.create(api_canary(n, namespace=ns)),
    "replace": lambda k, ns, n: k.replace(api_canary(n, namespace=ns)),
    "apply": lambda k, ns, n: k.apply(api_canary(n, namespace=ns)),
    "replace_status": lambda k, ns, n: k.replace_status(api_canary(n, namespace=ns, status={})),
    "event-named": lambda k, ns, n: k.event(
        api_canary("mine", namespace=ns), "Probe", "probe", name=n
    ),
    "event-about": lambda k, ns, n: k.event(api_canary(n, namespace=ns), "Probe", "probe"),
}
"""Verbs that put a name in the request path (create: in the body; refused all the same)."""
NAMESPACE_VERBS: dict[str, Callable[[KubeClient, str], object]] = {
    "list": lambda k, ns: k.list(API_VERSION, KIND, ns),
    "list_with_version": lambda k, ns: k.list_with_version("v1", "ConfigMap", ns, limit=1),
    "watch": lambda k, ns: k.watch(API_VERSION, KIND, ns, timeout_s=1),
    **{verb: (lambda k, ns, call=call: call(k, ns, "mine")) for verb, call in NAME_VERBS.items()},
}
"""Every verb, given a namespace that is no label (and a good name)."""


def drained(call: Callable[..., object], *args: object) -> None:
    """``call(*args)``, and the first event when it is a watch (reading reaches the server)."""
    result = call(*args)
    if isinstance(result, Iterator):
        next(result, None)


def refused(side: Side, what: str, call: Callable[..., object], *args: object) -> str:
    """``call(*args)`` must raise InvalidName having asked nothing and changed nothing."""
    before_victims, before_ns = side.victims(), side.objects_in_ns()
    sent = side.sent()
    with pytest.raises(InvalidName) as caught:
        drained(call, *args)
    assert side.sent() == sent, f"{side.name}: {what} reached the server"
    assert side.victims() == before_victims, f"{side.name}: {what} changed a victim"
    assert side.objects_in_ns() == before_ns, f"{side.name}: {what} wrote in {side.ns}"
    return str(caught.value)


@pytest.mark.parametrize("verb", sorted(NAME_VERBS))
def test_every_verb_refuses_names_that_leave_the_object(side: Side, verb: str) -> None:
    call = NAME_VERBS[verb]
    for template in BAD_NAMES:
        if verb == "create" and not template:
            continue  # no name on create is generateName's case (test_a_create_without_a_name)
        bad = template.format(other=side.other)
        message = refused(side, f"{verb} {bad!r}", call, side.kube, side.ns, bad)
        assert "name" in message


@pytest.mark.parametrize("verb", sorted(NAMESPACE_VERBS))
def test_every_verb_refuses_namespaces_that_are_no_label(side: Side, verb: str) -> None:
    call = NAMESPACE_VERBS[verb]
    for template in BAD_NAMESPACES:
        if verb.startswith("event") and not template:
            continue  # an object without a namespace is cluster-scoped: its Events go to default
        bad = template.format(ns=side.ns, other=side.other)
        message = refused(side, f"{verb} namespace {bad!r}", call, side.kube, bad)
        assert "namespace" in message


def test_valid_names_pass_the_fence(side: Side) -> None:
    """The fence refuses no name the server serves: dots, digits, an Event's dotted name, a
    cluster-wide list (no namespace), a cluster-scoped object."""
    mine = side.kube.get(Ref(API_VERSION, KIND, side.ns, "mine"))
    assert mine["metadata"]["namespace"] == side.ns
    side.kube.create(configmap(side.ns, "a.b-c.0"))
    assert side.kube.get(Ref("v1", "ConfigMap", side.ns, "a.b-c.0"))["data"] == {"k": "v"}
    assert side.kube.event(mine, "Probe", "valid names pass", name="mine.probe") is True
    assert [o["metadata"]["name"] for o in side.kube.list(API_VERSION, KIND, side.ns)] == ["mine"]
    everywhere = {
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in side.kube.list(API_VERSION, KIND)
    }
    assert {(side.ns, "mine"), (side.other, "victim")} <= everywhere
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{side.ns}-x"}}
    side.kube.create(namespace)
    assert (
        side.kube.get(Ref("v1", "Namespace", None, f"{side.ns}-x"))["metadata"]["name"]
        == f"{side.ns}-x"
    )


def test_a_create_without_a_name_is_a_generate_name(side: Side) -> None:
    """On create (a POST to the collection) the name may be absent: ``generateName``."""
    obj = configmap(side.ns, "x")
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "gen-"
    made = side.kube.create(obj)
    assert made["metadata"]["name"].startswith("gen-")
    del obj["metadata"]["generateName"]
    with pytest.raises(KubeError, match="name"):  # neither: the server's own refusal
        side.kube.create(obj)


def test_refused_names_are_a_kube_error_and_a_value_error(side: Side) -> None:
    with pytest.raises(KubeError):
        side.kube.get(Ref(API_VERSION, KIND, side.ns, "../x"))
    with pytest.raises(ValueError, match=r"may not contain '\.\.'"):
        side.kube.get(Ref(API_VERSION, KIND, side.ns, "../x"))


def test_a_lease_with_a_bad_name_is_refused_when_the_elector_is_built(side: Side) -> None:
    sent = side.sent()
    with pytest.raises(InvalidName):
        LeaderElector(side.kube, side.ns, "../../kube-system/leases/x", "me", 15, lambda: 0.0)
    with pytest.raises(InvalidName):
        LeaderElector(side.kube, "../kube-system", "lease", "me", 15, lambda: 0.0)
    assert side.sent() == sent
