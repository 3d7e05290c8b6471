"""The view of ``kubectl canary get NAME [-w]``: one ModelCanary on a terminal, with rich.

Owns :func:`render` (a :class:`~controlplane.view.canary.CanaryView` at a given time, with the
sections of :mod:`controlplane.cli.tree_view` when what the cluster holds was read) and
:class:`FrameWriter` (frames redrawn in place on a terminal, appended when changed elsewhere, so
``get -w | tee log`` keeps a record). Rendering only: the values come from :mod:`controlplane.view`.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from controlplane.cli import tree_view
from controlplane.cli.tree_view import PHASE_STYLES, VERDICT_STYLES
from controlplane.profiles.expected import pct, sources_line
from controlplane.view.canary import CanaryView, human
from controlplane.view.checks import CheckRow

if TYPE_CHECKING:
    from controlplane.view.owned import Owned

EVENTS_SHOWN = 5

EVENT_STYLES: dict[str, str] = {
    "RolledBack": "bold red",
    "Breached": "red",
    "Promoted": "bold green",
    "ShadowPassed": "green",
    "Advanced": "green",
    "Paused": "yellow",
    "Held": "yellow",
    "Throttled": "magenta",
    "GateFailed": "bold red",
    "GatePassed": "green",
    "AwaitingApproval": "yellow",
}


def phase_text(snap: CanaryView) -> Text:
    label = snap.phase or "unknown"
    return Text(label, style=PHASE_STYLES.get(snap.phase, ""))


def _timing(snap: CanaryView, now: float) -> str:
    if snap.phase == "invalid":
        return "stopped until the spec is fixed"
    if snap.terminal:
        last = snap.events[-1].time if snap.events else None
        return f"finished {human(now - last)} ago" if last is not None else "finished"
    spent = snap.in_stage(now)
    if snap.stage in (None, "pending"):
        since = snap.started_at
        if since is None:
            return "not yet seen by the controller"
        return f"pending for {human(now - since)}: {snap.pending_why(now)}"
    where = "in shadow" if snap.stage == "shadow" else f"in step {snap.step}"
    text = f"{human(spent)} {where}"
    left = snap.left(now)
    if left is not None:
        text += f", {human(left)} left of {snap.stage_duration_text}"
        if left <= 0:
            text += " (due: waits for its checks)"
    if snap.paused_at is not None:
        text += f" (clock stopped while paused, {human(now - snap.paused_at)})"
    return text


def _header(snap: CanaryView, now: float) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    title = Text.assemble((f"{snap.namespace}/{snap.name}", "bold"), "  ", phase_text(snap))
    if snap.paused:
        title.append(f" ({snap.paused_by()})")
    grid.add_row("ModelCanary", title)
    if snap.stage == "shadow":
        step = "shadow (mirroring all traffic, user weight 0%)"
    else:
        step = f"{snap.stage_label()} at weight {snap.weight}%"
    grid.add_row("Step", step)
    grid.add_row("Variants", f"stable {snap.stable} -> candidate {snap.candidate}")
    grid.add_row("Time", _timing(snap, now))
    if snap.reason:
        grid.add_row("Reason", Text(snap.reason, style=PHASE_STYLES.get(snap.phase, "")))
    for problem in snap.problems[:5]:
        grid.add_row("Problem", Text(problem, style="red"))
    if len(snap.problems) > 5:
        grid.add_row("", f"(+{len(snap.problems) - 5} more problems)")
    for intent in snap.pending:
        by = f" by {intent.user}" if intent.user else ""
        grid.add_row(
            "Pending", f"{intent.verb}{by}, {human(now - intent.at)} ago (not acted on yet)"
        )
    if snap.awaiting_approval:
        grid.add_row(
            "Approval",
            Text(
                f"step {snap.step} is done and waits for: "
                f"kubectl canary promote {snap.name} -n {snap.namespace}",
                style="yellow",
            ),
        )
    if snap.stale and snap.phase:
        grid.add_row(
            "Note",
            Text(
                f"the controller has not yet seen generation {snap.generation} "
                f"(status is for {snap.observed_generation})",
                style="yellow",
            ),
        )
    return grid


def _result(row: CheckRow) -> Text:
    if row.verdict is None:
        return Text("not evaluated", style="dim")
    word = row.verdict
    if row.promote:
        word = {"breach": "holds", "pass": "not yet"}.get(word, word)
    text = Text(word, style=VERDICT_STYLES.get(word, ""))
    if row.decided:
        text.append(f" (decided {row.decided})")
    if row.since is not None and row.at is not None and row.for_seconds > 0:
        text.append(f" {human(row.at - row.since)}/{row.for_text}")
    return text


def _checks(snap: CanaryView, now: float) -> Table:
    table = tree_view.new_table()
    for name, justify in (
        ("CHECK", "left"),
        ("CONDITION", "left"),
        ("CANDIDATE", "right"),
        ("STABLE", "right"),
        ("VALUE", "right"),
        ("RESULT", "left"),
        ("EVALUATED", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=name != "CONDITION")  # type: ignore[arg-type]
    for row in snap.checks:
        action = "promote if" if row.promote else "roll back if"
        table.add_row(
            row.metric,
            f"{action} {row.threshold()}" + (f" over {row.window}" if row.window else ""),
            row.show(row.candidate),
            row.show(row.stable),
            row.show(row.value, compared=True),
            _result(row),
            f"{human(now - row.at)} ago" if row.at is not None else "-",
        )
    return table


def _why_inconclusive(snap: CanaryView) -> list[RenderableType]:
    """One line per inconclusive check under the table: why, as the verdict said it
    (``latency: no data: no series matched ...``, ``too few samples: 42 of minSamples 100 ...``);
    the table's RESULT column has no room for it."""
    lines: list[RenderableType] = []
    for row in snap.checks:
        if row.verdict != "inconclusive":
            continue
        why = row.message.removeprefix(f"{row.metric}: ") or "no reason recorded"
        lines.append(Text.assemble((f"{row.metric} inconclusive: ", "yellow"), why))
    return lines


def _events(snap: CanaryView, now: float, limit: int) -> Table:
    table = tree_view.new_table()
    table.add_column("AGE", justify="right", no_wrap=True)
    table.add_column("EVENT", no_wrap=True)
    table.add_column("STEP", justify="right", no_wrap=True)
    table.add_column("WEIGHT", justify="right", no_wrap=True)
    table.add_column("MESSAGE")
    for event in snap.events[-limit:]:
        table.add_row(
            human(now - event.time) if event.time is not None else "-",
            Text(event.type, style=EVENT_STYLES.get(event.type, "")),
            str(event.step),
            f"{event.weight}%",
            event.message,
        )
    return table


def _gates(snap: CanaryView, now: float) -> Table:
    table = tree_view.new_table()
    for name in ("GATE", "POINT", "WORKFLOW", "PHASE", "RESULT", "SUBMITTED", "MESSAGE"):
        table.add_column(name, no_wrap=name != "MESSAGE")
    for gate in snap.gates:
        submitted = gate.submitted_at
        table.add_row(
            gate.gate,
            gate.point,
            gate.workflow,
            gate.phase,
            Text(gate.result, style=VERDICT_STYLES.get(gate.result, "")),
            f"{human(now - submitted)} ago" if submitted is not None else "-",
            gate.message,
        )
    return table


def _warnings(snap: CanaryView, now: float) -> list[RenderableType]:
    """``status.warnings``, newest last: ``2m ago  AlertDeliveryFailed (x3)  slack alert ...``."""
    lines: list[RenderableType] = []
    for warning in snap.warnings:
        ago = f"{human(now - warning.at)} ago" if warning.at is not None else "-"
        times = f" (x{warning.count})" if warning.count > 1 else ""
        lines.append(
            Text.assemble(
                (f"{ago}  ", "dim"), (f"{warning.type}{times}", "yellow"), f"  {warning.message}"
            )
        )
    return lines


def _change(ratio: float | None) -> Text:
    if ratio is None:
        return Text("-", style="dim")
    return Text(pct(ratio))


def _expected(snap: CanaryView) -> list[RenderableType]:
    """The expected change from measured profiles beside what the checks observed."""
    if snap.expected is None or snap.expected.headline is None:
        return []
    table = tree_view.new_table()
    table.add_column("QUANTITY", no_wrap=True)
    table.add_column("EXPECTED", justify="right", no_wrap=True)
    table.add_column("OBSERVED", justify="right", no_wrap=True)
    table.add_column("OBSERVED BY")
    for row in snap.expected_rows():
        how = Text(row.how, style="dim" if row.observed is None else "")
        table.add_row(row.quantity, _change(row.expected), _change(row.observed), how)
    title = Text("Expected vs observed (candidate against stable)", style="bold")
    return [Text(""), title, table, Text(sources_line(snap.expected), style="dim")]


def render(
    snap: CanaryView, now: float, *, events: int = EVENTS_SHOWN, owned: Owned | None = None
) -> RenderableType:
    """The whole view of ``snap`` at ``now``; with ``owned`` (what the cluster holds: ``get``
    without ``-w``), the weight in effect, the objects the canary owns and the Kubernetes
    Events about them too."""
    header = _header(snap, now)
    if owned is not None:
        header.add_row("Weight", tree_view.weights(snap, owned.actual))
    parts: list[RenderableType] = [header]
    if snap.plan:
        parts += [Text(""), Text("Steps", style="bold"), tree_view.plan(snap, now)]
    if owned is not None:
        parts += [Text(""), Text("Objects", style="bold")]
        if owned.note:
            parts.append(Text(owned.note, style="yellow"))
        else:
            parts.append(tree_view.tree(snap, owned))
    if snap.checks:
        where = "shadow" if snap.stage == "shadow" else f"step {snap.stage_label()}"
        if snap.terminal or snap.phase == "invalid":
            where = "last evaluation"
        parts += [Text(""), Text(f"Checks ({where})", style="bold"), _checks(snap, now)]
        if owned is not None:  # the history's WHY column says why
            parts += [
                Text(""),
                Text("Check history", style="bold"),
                tree_view.check_history(snap.checks),
            ]
        else:
            parts += _why_inconclusive(snap)
    elif snap.stage in ("shadow", "steps"):
        parts += [Text(""), Text("Checks: none in this stage", style="dim")]
    parts += _expected(snap)
    if snap.capacity is not None:
        parts += [Text(""), Text("Capacity", style="bold"), Text(snap.capacity.line(now))]
    if snap.quality is not None:
        parts += [Text(""), Text("Quality", style="bold"), Text(snap.quality)]
    if snap.sessions is not None:
        weight, _ = snap.set_weight()
        parts += [Text(""), Text("Sessions", style="bold"), Text(snap.sessions.line(weight))]
    if snap.gates:
        parts += [Text(""), Text("Gates", style="bold"), _gates(snap, now)]
    if snap.warnings:
        parts += [Text(""), Text("Warnings", style="bold"), *_warnings(snap, now)]
    if snap.events and events == 0:
        parts += [Text(""), Text(f"Events: {len(snap.events)} (--events 0)", style="dim")]
    elif snap.events:
        shown = min(events, len(snap.events))
        parts += [
            Text(""),
            Text(f"Events (last {shown} of {len(snap.events)})", style="bold"),
            _events(snap, now, events),
        ]
    else:
        parts += [Text(""), Text("Events: none in the rollout's history yet", style="dim")]
    if owned is not None:
        parts += _cluster_events(owned, now, events, snap.name)
    return Group(*parts)


def _cluster_events(owned: Owned, now: float, limit: int, canary: str) -> list[RenderableType]:
    """The Kubernetes Events about the canary and its objects (Warnings counted in the title)."""
    if owned.events_why:
        return [
            Text(""),
            Text(f"Kubernetes Events: cannot list: {owned.events_why}", style="yellow"),
        ]
    if not owned.events:
        return [Text(""), Text("Kubernetes Events: none", style="dim")]
    shown = min(limit, len(owned.events))
    warnings = sum(1 for e in owned.events if e.type == "Warning")
    said = f", {warnings} warning{'s' if warnings != 1 else ''}" if warnings else ""
    if shown == 0:
        text = f"Kubernetes Events: {len(owned.events)}{said} (--events 0)"
        return [Text(""), Text(text, style="bold yellow" if warnings else "dim")]
    title = f"Kubernetes Events (last {shown} of {len(owned.events)}{said})"
    table = tree_view.cluster_events(owned, now, limit, canary)
    return [Text(""), Text(title, style="bold"), table]


class FrameWriter:
    """Frames of the view on ``console``: in place on a terminal, appended otherwise."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None
        self._inplace = console.is_terminal and not console.is_dumb_terminal

    def __enter__(self) -> FrameWriter:
        if self._inplace:
            self._live = Live(
                Text(""),
                console=self._console,
                auto_refresh=False,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
                vertical_overflow="visible",
            )
            self._live.start()
        return self

    def show(self, frame: RenderableType, *, changed: bool) -> None:
        """Show ``frame``; off a terminal only frames of a changed object are written."""
        if self._live is not None:
            self._live.update(frame, refresh=True)
        elif changed:
            self._console.print(frame)
            self._console.print()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
