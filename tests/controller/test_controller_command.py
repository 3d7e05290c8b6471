"""``canaryctl controller`` as a whole: the flags wire the metrics, the alert notifier and git
write-back into one reconciler, and one ``--once`` pass drives a canary on the fake cluster."""

from __future__ import annotations

import argparse
import threading
from typing import Any

import pytest
from support.canaries import canary_dict

from controlplane.cli import controller as command
from controlplane.controller.metrics import ControllerMetrics
from controlplane.errors import UsageError
from controlplane.gitops.writeback import GitWriteBack
from controlplane.notify import AlertNotifier
from controlplane.operations import record_intent
from harness.kube.fake import FakeKube

NS = "ml-serving"


# the example canary's traffic in these tests
TRAFFIC = {"router": "gateway-api", "gateway": {"name": "gw"}}


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    return parser.parse_args(["controller", *argv])


def test_every_notifier_is_told_of_events(tmp_path: Any) -> None:
    kube = FakeKube()
    kube.create(canary_dict(traffic=TRAFFIC))
    told: list[str] = []

    class Recorder:
        def notify(self, obj: Any, canary: Any, state: Any, event: Any) -> None:
            told.append(event.type)

    args = _args("--api-port", "0", "--git-cache-dir", str(tmp_path))
    metrics = ControllerMetrics()
    controller = command.build(args, kube, metrics=metrics, notifiers=[Recorder()])
    controller.poll(0.1)
    controller.run_once()
    record_intent(kube, NS, "support-triage", "abort", "alice")
    controller.poll(0.1)
    controller.run_once()
    status = kube.get(command_ref())["status"]
    assert status["phase"] == "rolled_back"
    assert told
    assert told == [e["type"] for e in status["history"]]


def command_ref() -> Any:
    from controlplane.kube.client import canary_ref

    return canary_ref(NS, "support-triage")


def test_once_runs_with_alerts_and_write_back_wired(tmp_path: Any, monkeypatch: Any) -> None:
    kube = FakeKube()
    kube.create(canary_dict(traffic=TRAFFIC))
    built: dict[str, Any] = {}
    real_build = command.build

    def spy(args: argparse.Namespace, kube: Any, clock: Any = None, **kw: Any) -> Any:
        built.update(kw)
        return real_build(args, kube, **kw)

    monkeypatch.setattr(command, "build", spy)
    args = _args("--once", "--api-port", "0", "--git-cache-dir", str(tmp_path))
    assert command.run(args, kube) == 0
    kinds = {type(n) for n in built["notifiers"]}
    assert kinds == {AlertNotifier, GitWriteBack}
    assert isinstance(built["metrics"], ControllerMetrics)
    assert kube.get(command_ref())["status"]["phase"] == "pending"
    assert not [t for t in threading.enumerate() if t.name == "git-source"]


def test_argo_flags_build_the_gate_runner(tmp_path: Any) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    args = _args("--argo-server", "http://argo.example:2746", "--argo-token-file", str(token))
    gates = command.gates_from(args)
    assert gates.server == "http://argo.example:2746/"
    assert gates.token() == "s3cret"
    unset = command.gates_from(_args("--argo-token-file", str(tmp_path / "missing")))
    assert unset.server is None
    assert unset.token() is None


def test_allow_flags_build_the_endpoint_policy(tmp_path: Any) -> None:
    args = _args(
        "--prometheus",
        "http://prom.monitoring:9090",
        "--allow-prometheus",
        "http://thanos.team-a:9090/tenant-a",
        "--argo-server",
        "https://argo.ops:2746",
        "--allow-argo-server",
        "https://argo.team-a:2746",
        "--allow-alert-url",
        "https://hooks.example.com/canary",
        "--argo-token-file",
        str(tmp_path / "token"),
    )
    policy = command.settings_from(args).policy
    assert policy.allows("prometheus", "http://prom.monitoring:9090")
    assert policy.allows("prometheus", "http://thanos.team-a:9090/tenant-a/x")
    assert not policy.allows("prometheus", "http://thanos.team-a:9090/tenant-b")
    assert policy.allows("alerts", "https://hooks.example.com/canary/a")
    gates = command.gates_from(args)
    assert gates.endpoints.allows("argo", "https://argo.ops:2746")
    assert gates.endpoints.allows("argo", "https://argo.team-a:2746")
    assert not gates.endpoints.allows("argo", "http://127.0.0.1:2746")
    closed = command.settings_from(_args()).policy  # nothing allowed by default
    assert not closed.allows("prometheus", "http://prom.monitoring:9090")
    assert not command.gates_from(_args()).endpoints.allows("argo", "https://argo.ops:2746")


@pytest.mark.parametrize(
    ("flag", "url", "why"),
    [
        ("--allow-argo-server", "http://u:p@argo:2746", "has a user name or password"),
        ("--allow-prometheus", "prom:9090", "is not an http:// or https:// URL"),
        ("--allow-alert-url", "https://hooks.example.com/a/../b", "has a '.' or '..' path"),
    ],
)
def test_a_malformed_allow_entry_stops_the_controller_before_it_connects(
    flag: str, url: str, why: str
) -> None:
    with pytest.raises(UsageError) as caught:
        command.run(_args(flag, url, "--once", "--api-port", "0"), kube=None)
    assert str(caught.value).startswith(f"{flag} {url!r}: {why}")


def test_each_transition_is_one_log_line(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Issue #41: ``controller --once`` and the running controller logged no transitions."""
    kube = FakeKube()
    kube.create(canary_dict(traffic=TRAFFIC))
    args = _args("--api-port", "0", "--git-cache-dir", str(tmp_path))
    controller = command.build(args, kube, metrics=ControllerMetrics())
    caplog.set_level("INFO", logger="controlplane.controller.event_sink")
    controller.poll(0.1)
    controller.run_once()
    record_intent(kube, NS, "support-triage", "abort", "alice")
    controller.poll(0.1)
    controller.run_once()
    history = kube.get(command_ref())["status"]["history"]
    lines = [r for r in caplog.records if r.name == "controlplane.controller.event_sink"]
    assert [r.getMessage().split(": ", 2)[1].split(" ")[0] for r in lines] == [
        e["type"] for e in history
    ]
    rolled = lines[-1]
    assert rolled.levelname == "WARNING"
    assert rolled.getMessage().startswith(f"{NS}/support-triage: RolledBack ")
    assert "aborted by alice" in rolled.getMessage()
    assert all("\n" not in r.getMessage() for r in lines)
