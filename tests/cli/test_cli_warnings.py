"""``status.warnings`` (an alert not delivered) shows in the ``get [-w]`` view, read tolerantly
(issue #41: ``AlertDeliveryFailed`` showed only in ``kubectl get events``)."""

from __future__ import annotations

import io

from support.cli import plain_console
from support.cli_rollouts import NAME, NS, Clock, at_step_two

from controlplane.cli.live import render
from controlplane.operations import get_canary
from controlplane.status.document import with_warning
from controlplane.view.canary import WarningRow, snapshot
from harness.kube.fake import FakeKube

TEXT = (
    "slack alert (spec.alerts[0].slack) for RolledBack not delivered: Secret "
    "ml-serving/slack-hook not found (spec.alerts[0].slack)"
)


def test_the_view_shows_the_warnings(clock: Clock) -> None:
    kube = FakeKube(now=clock)
    obj = at_step_two(kube, clock).obj
    warnings = with_warning(None, "AlertDeliveryFailed", TEXT, clock.now - 300)
    obj["status"]["warnings"] = with_warning(warnings, "AlertDeliveryFailed", TEXT, clock.now - 60)
    kube.replace_status(obj)
    snap = snapshot(get_canary(kube, NS, NAME))
    assert snap.warnings == (WarningRow("AlertDeliveryFailed", TEXT, clock.now - 60, 2),)
    out = io.StringIO()
    console = plain_console(out)
    console.width = 400
    console.print(render(snap, clock.now))
    text = out.getvalue()
    assert "Warnings" in text
    assert f"1m ago  AlertDeliveryFailed (x2)  {TEXT}" in text


def test_unreadable_warnings_are_skipped() -> None:
    obj = {
        "metadata": {"name": "c", "namespace": "ml"},
        "status": {"warnings": ["junk", {"type": 3}, {"type": "X", "message": "m", "at": "x"}]},
    }
    assert snapshot(obj).warnings == (WarningRow("X", "m", None, 1),)
