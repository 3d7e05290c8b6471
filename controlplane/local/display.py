"""Progress display of ``canaryctl up``: weight, step, time left and live metrics per variant.

Owns what a person watching ``up`` sees: a ``rich`` live panel on a terminal, else one line per
event plus a periodic status line (stderr when stdout carries JSON); every view names the engine
and says **simulated** when it is. Pure rendering of a :class:`ProgressFrame`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from controlplane.local.load import LoadStats
from controlplane.rollout.state import Event, RolloutState
from controlplane.spec.models import ModelCanary
from controlplane.spec.units import format_duration

LOG_EVERY_S = 10.0
LIVE_METRICS = ("requests/s", "p95 latency", "p95 ttft", "errors")


@dataclass
class ProgressFrame:
    """Everything the ``up`` progress display shows at one moment."""

    canary: ModelCanary
    state: RolloutState
    engine: str
    time_scale: float
    now: float
    load: LoadStats | None = None
    live: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        name = self.canary.metadata.name
        sim = " · SIMULATED engine (no model runs)" if self.engine == "simulated" else ""
        return f"canaryctl up · {name} · engine {self.engine}{sim} · time x{self.time_scale:g}"

    def step_line(self) -> str:
        state, steps = self.state, self.canary.spec.steps
        if state.stage == "steps":
            current = steps[state.step_index]
            line = f"step {state.step}/{len(steps)} · weight {state.weight}%"
            if current.duration is not None:
                left = state.stage_started_at + current.duration.seconds - self.now
                spec_left = round(max(left, 0.0) * self.time_scale)
                line += f" · {max(left, 0.0):.0f}s left (spec time {format_duration(spec_left)})"
            return line + (" · holding" if state.holding else "")
        if state.stage == "shadow":
            return f"shadow · mirroring · weight {state.weight}%"
        return f"{state.phase} · weight {state.weight}%"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def render(snap: ProgressFrame) -> Group:
    """The live panel's content."""
    checks = Table(title="checks (latest evaluation)", expand=True)
    for col in ("check", "metric", "verdict", "value", "candidate", "stable"):
        checks.add_column(col)
    for key, check in snap.state.checks.items():
        style = {"pass": "green", "breach": "red"}.get(check.verdict, "yellow")
        checks.add_row(
            key,
            check.metric,
            Text(check.verdict, style=style),
            _fmt(check.value),
            _fmt(check.candidate),
            _fmt(check.stable),
        )
    live = Table(title="live metrics per variant (Prometheus)", expand=True)
    live.add_column("variant")
    for name in LIVE_METRICS:
        live.add_column(name)
    live.add_column("client requests")
    for variant, values in snap.live.items():
        sent = snap.load.by_variant.get(variant, 0) if snap.load else 0
        live.add_row(variant, *(values.get(n, "-") for n in LIVE_METRICS), str(sent))
    recent = Text("\n".join(event_line(e) for e in snap.state.history[-6:]))
    return Group(Text(snap.step_line(), style="bold"), checks, live, recent)


def event_line(event: Event) -> str:
    clock = time.strftime("%H:%M:%S", time.localtime(event.time))
    return f"{clock} {event.type:<12} step {event.step} weight {event.weight}% {event.message}"


class ProgressDisplay(Protocol):
    """Where ``up`` shows its progress: a live panel or plain log lines."""

    def start(self, lines: list[str]) -> None: ...

    def update(self, snap: ProgressFrame) -> None: ...

    def stop(self) -> None: ...

    def print(self, line: str) -> None: ...


class LiveDisplay:
    """A ``rich`` live panel (terminals)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: Live | None = None

    def start(self, lines: list[str]) -> None:
        for line in lines:
            self.console.print(line)
        self._live = Live(console=self.console, refresh_per_second=2, transient=False)
        self._live.start()

    def update(self, snap: ProgressFrame) -> None:
        if self._live is not None:
            self._live.update(Panel(render(snap), title=snap.title))

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def print(self, line: str) -> None:
        self.console.print(line)


class LogDisplay:
    """Plain lines: every new event, and a status line every ``every`` seconds."""

    def __init__(self, console: Console, every: float = LOG_EVERY_S) -> None:
        self.console = console
        self.every = every
        self._seen = 0
        self._last = 0.0

    def start(self, lines: list[str]) -> None:
        for line in lines:
            self.print(line)

    def update(self, snap: ProgressFrame) -> None:
        history = snap.state.history
        for event in history[self._seen :]:
            self.print(f"[{snap.engine}] {event_line(event)}")
        self._seen = len(history)
        if snap.now - self._last >= self.every:
            self._last = snap.now
            live = "; ".join(
                f"{v}: " + ", ".join(f"{k} {x}" for k, x in values.items())
                for v, values in snap.live.items()
            )
            self.print(f"[{snap.engine}] {snap.step_line()}" + (f" | {live}" if live else ""))

    def stop(self) -> None:
        return None

    def print(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)
