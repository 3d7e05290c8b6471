"""The sections of ``kubectl canary get`` about the cluster and the plan, drawn with rich: the
weight set against the weight held (:func:`weights`), the step plan (:func:`plan`), the object
tree with health (:func:`tree`), each check's recent results (:func:`check_history`) and the
Kubernetes Events (:func:`cluster_events`). Rendering only: the values come from
:mod:`controlplane.view`. Drawn by :mod:`controlplane.cli.live`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.table import Table
from rich.text import Text

from controlplane.view.canary import CanaryView, human
from controlplane.view.checks import CheckRow

if TYPE_CHECKING:
    from controlplane.view.owned import Actual, Node, Owned

PHASE_STYLES: dict[str, str] = {
    "promoted": "bold green",
    "rolled_back": "bold red",
    "invalid": "bold red",
    "paused": "bold yellow",
    "holding": "yellow",
    "throttled": "magenta",
    "progressing": "cyan",
    "shadow": "blue",
    "pending": "dim",
    "gated": "blue",
    "awaiting_approval": "bold yellow",
}
VERDICT_STYLES: dict[str, str] = {
    "pass": "green",
    "holds": "green",
    "breach": "bold red",
    "inconclusive": "yellow",
    "not yet": "yellow",
    "running": "blue",
    "passed": "green",
    "failed": "bold red",
}
PHASE_COLOURS: dict[str, str] = {
    "promoted": "green",
    "rolled_back": "red",
    "invalid": "red",
    "paused": "yellow",
    "progressing": "cyan",
}
"""The phase on the tree's root line: plainer than the header's :data:`PHASE_STYLES`."""
HEALTH_STYLES: dict[str, str] = {
    "Ready": "green",
    "Progressing": "cyan",
    "Degraded": "bold red",
    "Missing": "yellow",
    "Forbidden": "yellow",
    "Unknown": "dim",
}
STATE_STYLES: dict[str, str] = {
    "done": "green",
    "current": "bold cyan",
    "pending": "dim",
    "rolled back": "bold red",
    "skipped": "dim",
    "not run": "dim",
}
RESULT_MARKS: dict[str, str] = {"pass": "✔", "breach": "✖", "inconclusive": "?"}
"""One mark per recorded result in a check's history line."""


def new_table() -> Table:
    """A table of ``get``: a heading rule, no outer edge (every section's)."""
    return Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, expand=False)


def weights(snap: CanaryView, actual: Actual | None) -> Text:
    """``set 25% (step 2/4), actual 25% (HTTPRoute x)``; ``DIFFERS`` when they are not equal."""
    weight, mirror = snap.set_weight()
    text = Text(f"set {weight}%{' + mirror' if mirror else ''}")
    if actual is None:
        return text
    if actual.weights is None:
        text.append(", actual unknown: ", style="yellow")
        text.append(actual.why, style="yellow")
        return text
    got = actual.weights
    text.append(f", actual {got.candidate}%{' + mirror' if got.mirror else ''} ({actual.source})")
    if (got.candidate, got.mirror) != (weight, mirror):
        text.append("  DIFFERS", style="bold red")
        text.append(" (the router has not applied the step yet, or something else wrote the route)")
    return text


def plan(snap: CanaryView, now: float) -> Table:
    """Every stage of the spec: done / current / pending (or rolled back, skipped, not run)."""
    table = new_table()
    for name, justify in (
        ("STEP", "left"),
        ("WEIGHT", "right"),
        ("DURATION", "right"),
        ("STATE", "left"),
        ("ELAPSED", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for row in snap.plan:
        elapsed = human(snap.elapsed(row, now))
        if row.state == "current" and snap.paused_at is not None:
            elapsed += " (paused)"
        weight = "mirror" if row.label == "shadow" else f"{row.weight}%"
        state = row.state + (" (manual approval)" if row.manual else "")
        table.add_row(
            row.label,
            weight,
            row.duration or "-",
            Text(state, style=STATE_STYLES.get(row.state, "")),
            elapsed,
        )
    return table


NAME_WIDTH = 56
"""The most a name (with its branch) takes in the tree before it is cut with ``…``."""


def _branch(last: tuple[bool, ...]) -> tuple[str, str]:
    """The branch drawn before a node at ``last`` (one flag per level: the last child there),
    and the one its continuation lines get."""
    lead = "".join("   " if done else "│  " for done in last[:-1])
    if not last:
        return "", ""
    return lead + ("└─ " if last[-1] else "├─ "), lead + ("   " if last[-1] else "│  ")


def tree(snap: CanaryView, owned: Owned) -> Text:
    """The canary over its serving objects over their Deployments over their pods, then the
    routes: one line each (name, the variant it serves, kind, health, ready / wanted), and why
    on the line below when there is something to say."""
    rows: list[tuple[str, str, Text, str, str, str]] = []

    def add(node: Node, last: tuple[bool, ...]) -> None:
        branch, more = _branch(last)
        ready = f"{node.ready}/{node.wanted}" if node.wanted is not None else ""
        health = Text(node.health, style=HEALTH_STYLES.get(node.health, ""))
        under = more + ("│  " if node.children else "   ")
        name = branch + node.name + (f" ({node.role})" if node.role else "")
        rows.append((name, node.kind, health, ready, under, node.why))
        for index, child in enumerate(node.children):
            add(child, (*last, index == len(node.children) - 1))

    phase = Text(snap.phase or "unknown", style=PHASE_COLOURS.get(snap.phase, ""))
    rows.append((snap.name, "ModelCanary", phase, "", "", ""))
    for index, node in enumerate(owned.nodes):
        add(node, (index == len(owned.nodes) - 1,))
    width = min(max(len(r[0]) for r in rows), NAME_WIDTH)
    kind = max(len(r[1]) for r in rows)
    out = Text()
    out.append(f"{'NAME'.ljust(width)}  {'KIND'.ljust(kind)}  {'HEALTH'.ljust(11)}  READY\n")
    for name, what, health, ready, under, why in rows:
        if len(name) > width:
            name = name[: width - 1] + "…"
        out.append(f"{name.ljust(width)}  {what.ljust(kind)}  ")
        out.append_text(health)
        line = " " * (11 - len(health.plain)) + f"  {ready.rjust(5)}" if ready else ""
        out.append(line + "\n")
        if why:
            out.append(f"{under}  ")
            out.append(why + "\n", style="dim")
    out.rstrip()
    return out


def check_history(rows: tuple[CheckRow, ...]) -> Table:
    """Each check's recent results in this stage, oldest first (``✔`` pass, ``✖`` breach, ``?``
    inconclusive) with their counts, and why the latest result is what it is when the status
    says (a check's ``reason``, else its ``message``)."""
    table = new_table()
    table.add_column("CHECK", no_wrap=True)
    table.add_column("RECENT (oldest first)", no_wrap=True)
    table.add_column("WHY (latest)")
    for row in rows:
        recent = row.recent or (((row.at, row.verdict, row.value),) if row.verdict else ())
        marks = Text()
        for _at, result, _value in recent:
            word = result or ""
            marks.append(RESULT_MARKS.get(word, "·"), style=VERDICT_STYLES.get(word, ""))
        counts = {k: sum(1 for r in recent if r[1] == k) for k in RESULT_MARKS}
        said = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        marks.append(f"  {said}" if said else "not evaluated")
        table.add_row(row.metric, marks, row.why or "-")
    return table


def cluster_events(owned: Owned, now: float, limit: int, canary: str = "") -> Table:
    """The last ``limit`` Kubernetes Events about the canary and its objects, Warnings in
    colour, repeats counted (``x3``); the object as ``kubectl events`` names it
    (``deployment/x``), ``canary`` for the canary ``canary`` itself."""
    table = new_table()
    table.add_column("AGE", justify="right", no_wrap=True)
    table.add_column("TYPE", no_wrap=True)
    table.add_column("REASON", no_wrap=True)
    table.add_column("OBJECT", no_wrap=True)
    table.add_column("MESSAGE")
    for event in owned.events[-limit:] if limit else ():
        warning = event.type == "Warning"
        age = human(now - event.last) if event.last is not None else "-"
        if event.count > 1:
            age += f" (x{event.count})"
        table.add_row(
            age,
            Text(event.type, style="bold yellow" if warning else ""),
            Text(event.reason, style="red" if warning else ""),
            _object(event.object, canary),
            event.message,
        )
    return table


def _object(what: str, canary: str) -> str:
    kind, _, name = what.partition("/")
    if kind == "ModelCanary" and name == canary:
        return "canary"
    return f"{kind.lower()}/{name}"
