"""Human output of a replay: a readable timeline of events and the outcome, rendered with rich.

Owns presentation only; called by ``canaryctl simulate`` (and the demo). Times are shown both
absolute (UTC) and relative to the start of the rollout (``d2 03:00``), since a four-week rollout is
read in days.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from controlplane.simulation import SimulationResult

_STYLE = {
    "RolledBack": "bold red",
    "Breached": "red",
    "Paused": "yellow",
    "Throttled": "yellow",
    "Held": "yellow",
    "Promoted": "bold green",
    "ShadowPassed": "green",
    "Advanced": "cyan",
    "StepStarted": "cyan",
}


def relative(seconds: float) -> str:
    """``d2 03:15`` for 2 days, 3 hours and 15 minutes after the start."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    return f"d{days} {hours:02d}:{rest // 60:02d}"


def print_timeline(result: SimulationResult, console: Console | None = None) -> None:
    """Print the event table and an outcome panel for ``result``."""
    out = console or Console()
    canary = result.canary
    title = (
        f"{canary.metadata.namespace}/{canary.metadata.name}: "
        f"{canary.spec.stable.name} -> {canary.spec.candidate.name} "
        f"({canary.spec.candidate.quantization}), {result.evaluations} evaluations"
    )
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("when", no_wrap=True)
    table.add_column("UTC", no_wrap=True, style="dim")
    table.add_column("event", no_wrap=True)
    table.add_column("step", justify="right")
    table.add_column("weight", justify="right")
    table.add_column("message")
    for event in result.events:
        stamp = datetime.fromtimestamp(event.time, tz=UTC).strftime("%Y-%m-%d %H:%M")
        style = _STYLE.get(event.type, "")
        table.add_row(
            relative(event.time - result.start),
            stamp,
            f"[{style}]{event.type}[/]" if style else event.type,
            str(event.step),
            f"{event.weight}%",
            event.message,
        )
    out.print(table)
    if result.checks:
        out.print(_checks_table(result))
    out.print(_outcome_panel(result))


def _checks_table(result: SimulationResult) -> Table:
    """Each check by its metric and where it ran: its verdicts, and why it was inconclusive."""
    table = Table(title="checks", title_justify="left", expand=False)
    table.add_column("check", no_wrap=True)
    table.add_column("where", no_wrap=True)
    for name in ("evaluated", "pass", "breach", "inconclusive"):
        table.add_column(name, justify="right")
    table.add_column("last inconclusive because", overflow="fold")
    for tally in result.checks:
        table.add_row(
            tally.metric,
            tally.where,
            str(tally.evaluations),
            str(tally.passed),
            f"[red]{tally.breached}[/]" if tally.breached else "0",
            f"[yellow]{tally.inconclusive}[/]" if tally.inconclusive else "0",
            Text(tally.last_inconclusive.removeprefix(f"{tally.metric}: ") or "-"),
        )
    return table


def _outcome_panel(result: SimulationResult) -> Panel:
    outcome = result.outcome
    colour = {"promoted": "green", "rolled_back": "red", "paused": "yellow"}.get(outcome, "blue")
    lines = [f"[bold]{outcome}[/] at step {result.state.step}, weight {result.state.weight}%"]
    if result.finished_at is not None:
        lines.append(f"after {relative(result.finished_at - result.start)} (day hh:mm)")
    reason = result.reason
    if reason is not None:
        lines.append(f"reason: {reason.message}")
    why = result.why()
    if why is not None:
        lines.append(f"why: {escape(why)}")
    quality = result.quality_words()
    if quality is not None:
        lines.append(escape(quality))
    return Panel("\n".join(lines), border_style=colour, title="outcome", expand=False)
