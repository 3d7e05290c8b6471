"""``--plot FILE.png``: a rollout's picture for a postmortem, weight and every checked metric.

Owns the picture of ``simulate --plot``, ``up --plot`` and ``demo --plot-dir``: :func:`plot_model`
(pure: spans, weight line, events and one panel per checked metric) and :func:`plot_result`
(fetches the series and draws with matplotlib, imported only here). See docs/local.md, "The plot".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from controlplane.analysis.metric_provider import MetricProvider
from controlplane.errors import ProviderError
from controlplane.promql import queries
from controlplane.rollout.state import Event
from controlplane.simulation import SimulationResult
from controlplane.spec.check_keys import decode
from controlplane.spec.models import CheckSpec, MetricSpec
from controlplane.spec.units import Duration, Unit

MAX_POINTS = 1500
MARGIN = 0.04
"""The axis runs on past the run's end by this share of its span (the final weight shows)."""
_UNITS: tuple[tuple[str, float, float], ...] = (
    # (unit, seconds in one, the largest span shown in it)
    ("seconds", 1.0, 180.0),
    ("minutes", 60.0, 3 * 3600.0),
    ("hours", 3600.0, 3 * 86400.0),
    ("days", 86400.0, math.inf),
)
_MEASURES = {
    "ttft": "time to first token",
    "e2e-latency": "end-to-end latency",
    "inter-token-latency": "inter-token latency",
    "error-rate": "error rate",
    "request-rate": "request rate",
    "tokens-per-second": "tokens per second",
    "kv-cache-usage": "KV-cache usage",
}
_MARKS = {
    "Promoted": ("promoted", "tab:green"),
    "RolledBack": ("rolled back", "tab:red"),
    "Paused": ("paused", "tab:orange"),
    "Resumed": ("resumed", "tab:gray"),
}


@dataclass(frozen=True)
class TimeAxis:
    """Spec time since ``start`` in ``unit``: a run's time ``t`` is at
    ``(t - start) * scale / seconds``."""

    start: float
    scale: float
    """Spec seconds per second of the run (``up --time-scale N``: N; a replay: 1)."""
    unit: str
    seconds: float
    """Seconds in one ``unit``."""

    def x(self, t: float) -> float:
        return (t - self.start) * self.scale / self.seconds

    @property
    def label(self) -> str:
        scaled = f"; the run's seconds x {self.scale:g}" if self.scale != 1 else ""
        return f"spec time since the start ({self.unit}{scaled})"


def time_axis(start: float, end: float, scale: float = 1.0) -> TimeAxis:
    """The axis of a run from ``start`` to ``end`` (run time), in the unit its spec span fits."""
    span = max(0.0, end - start) * scale
    for unit, seconds, largest in _UNITS:
        if span <= largest:
            return TimeAxis(start, scale, unit, seconds)
    raise AssertionError("unreachable: the last unit has no limit")


@dataclass(frozen=True)
class Span:
    """A stage the rollout entered, from ``x0`` to ``x1`` on the axis."""

    key: str
    """``steps[0]`` ... (0-based, as check keys spell it) or ``shadow``."""
    label: str
    x0: float
    x1: float


@dataclass(frozen=True)
class Mark:
    """A labelled vertical line: an outcome or a pause."""

    x: float
    label: str
    colour: str


@dataclass(frozen=True)
class Threshold:
    """One check's bound, in the panel's display unit, drawn over its stage's span."""

    value: float
    label: str
    x0: float
    x1: float


@dataclass(frozen=True)
class Panel:
    """One checked metric: its title, its unit, its thresholds and what to query."""

    metric: str
    spec: MetricSpec
    title: str
    ylabel: str
    factor: float
    """Display value = queried value x factor (1000 for ms, 100 for %)."""
    baseline: bool
    window_s: float
    """The query window, in the run's seconds."""
    thresholds: tuple[Threshold, ...]


@dataclass(frozen=True)
class PlotModel:
    """Everything the picture shows except the fetched series."""

    title: str
    axis: TimeAxis
    x_max: float
    weights: tuple[tuple[float, int], ...]
    """The candidate's weight as a step function: (x, weight from x on), to ``x_max``."""
    spans: tuple[Span, ...]
    """The stages shaded: those that lasted (the 100 % step that promotion enters and leaves at
    once has no span)."""
    marks: tuple[Mark, ...]
    panels: tuple[Panel, ...]
    run_start: float
    run_end: float
    """The span to query, in the run's time."""


def _spans(events: tuple[Event, ...], axis: TimeAxis, end: float) -> list[Span]:
    """Each stage entered, from its events: ``ShadowStarted``, ``StepStarted`` / ``Advanced``."""
    starts: list[tuple[str, str, float]] = []
    for e in events:
        if e.type == "ShadowStarted":
            starts.append(("shadow", "shadow (mirror)", e.time))
        elif e.type in ("StepStarted", "Advanced") and e.step >= 1:
            key = f"steps[{e.step - 1}]"
            if not starts or starts[-1][0] != key:
                starts.append((key, f"step {e.step}: {e.weight} %", e.time))
    spans = []
    for i, (key, label, at) in enumerate(starts):
        until = starts[i + 1][2] if i + 1 < len(starts) else end
        spans.append(Span(key, label, axis.x(at), axis.x(max(at, until))))
    return spans


def _weights(result: SimulationResult, axis: TimeAxis, x_max: float) -> list[tuple[float, int]]:
    """The weight after every event and evaluation, in time order, held to ``x_max``."""
    done = result.finished_at
    points = [(e.time, 0, e.weight) for e in result.events]
    points += [(p.time, 1, p.weight) for p in result.trace if done is None or p.time < done]
    points.sort(key=lambda p: (p[0], p[1]))
    line: list[tuple[float, int]] = []
    for t, _, weight in points:
        x = axis.x(t)
        if line and line[-1][0] == x:
            line[-1] = (x, weight)
        elif not line or line[-1][1] != weight:
            line.append((x, weight))
    if done is not None and result.events:
        final = result.events[-1].weight  # promoted: 100, rolled back: 0
        if line[-1][1] != final:
            line.append((axis.x(done), final))
    if line:
        line.append((x_max, line[-1][1]))
    return line


def _marks(result: SimulationResult, axis: TimeAxis) -> list[Mark]:
    marks = []
    for e in result.events:
        if e.type not in _MARKS:
            continue
        word, colour = _MARKS[e.type]
        label = word if e.step < 1 else f"{word} at step {e.step}"
        if e.type == "RolledBack" and result.state.reason is not None:
            label += f": {_short(result.state.reason.message)}"
        marks.append(Mark(axis.x(e.time), label, colour))
    return marks


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scale(check: CheckSpec, metric: MetricSpec) -> tuple[float, str]:
    """Display factor and unit label for a check's values."""
    unit = check.above.unit if check.above else check.below.unit if check.below else None
    if check.compare == "baseline" or unit is Unit.RATIO:
        return 100.0, "%"
    if metric.builtin in ("e2e-latency", "ttft", "inter-token-latency") or unit is Unit.SECONDS:
        return 1000.0, "ms"
    return 1.0, ""


def _measures(metric: MetricSpec) -> str:
    if metric.builtin is None:
        return "a custom query"
    what = _MEASURES.get(metric.builtin, metric.builtin)
    if metric.builtin in ("ttft", "e2e-latency", "inter-token-latency"):
        return f"P{metric.quantile_or_default * 100:g} {what}"
    return what


def _stage(key: str) -> str | None:
    """The stage a check key belongs to, as :class:`Span` keys it; None for an unknown key."""
    parsed = decode(key)
    if parsed is None:
        return None
    return "shadow" if parsed.stage == "shadow" else f"steps[{parsed.step}]"


def _stage_words(stages: list[str]) -> str:
    steps = [int(s[6:-1]) + 1 for s in stages if s.startswith("steps[")]
    words = ["shadow"] if "shadow" in stages else []
    if len(steps) == 1:
        words.append(f"step {steps[0]}")
    elif steps:
        words.append("steps " + ", ".join(str(n) for n in steps))
    return " and ".join(words)


def _panels(result: SimulationResult, axis: TimeAxis, spans: list[Span]) -> list[Panel]:
    """One panel per (metric, compare, window) among the checks of the stages entered."""
    canary = result.canary
    entered = {s.key: s for s in spans}
    groups: dict[tuple[str, str | None, float], list[tuple[str, CheckSpec, MetricSpec]]] = {}
    for key, check in queries.all_checks(canary):
        metric = canary.metric(check.metric)
        stage = _stage(key)
        if metric is None or stage not in entered:
            continue
        window = canary.window_s(check)
        groups.setdefault((check.metric, check.compare, window), []).append((key, check, metric))
    panels = []
    for (name, compare, window), checks in groups.items():
        _, first, metric = checks[0]
        factor, unit = _scale(first, metric)
        stages = list(dict.fromkeys(s for k, _, _ in checks if (s := _stage(k)) is not None))
        baseline = compare == "baseline"
        what = _measures(metric)
        if baseline:
            what += ", the candidate's drift from the stable"
        spec_window = Duration.of(window * axis.scale)
        title = f"{name}: {what}, checked at {_stage_words(stages)} (window {spec_window})"
        thresholds = []
        for key, check, _ in checks:
            span = entered[_stage(key) or ""]
            where = _stage_words([span.key])
            for bound, word in ((check.above, "above"), (check.below, "below")):
                if bound is not None:
                    label = f"{where}: {word} {bound}"
                    thresholds.append(Threshold(bound.value * factor, label, span.x0, span.x1))
        ylabel = f"{name} drift (%)" if baseline else f"{name} ({unit})" if unit else name
        panels.append(
            Panel(name, metric, title, ylabel, factor, baseline, window, tuple(thresholds))
        )
    return panels


def plot_model(result: SimulationResult, time_scale: float = 1.0) -> PlotModel:
    """What :func:`plot_result` draws for ``result``; ``time_scale``: spec seconds per second of
    the run (``up --time-scale``). Pure."""
    canary = result.canary
    start = result.start
    end = result.finished_at
    if end is None:
        end = result.trace[-1].time if result.trace else result.end
    end = max(end, start)
    axis = time_axis(start, end, time_scale)
    x_end = axis.x(end)
    x_max = x_end + MARGIN * x_end if x_end > 0 else 1.0
    spans = _spans(result.events, axis, end)
    title = (
        f"{canary.metadata.name}: {canary.spec.stable.name} -> {canary.spec.candidate.name}"
        f" - {result.outcome.replace('_', ' ')}"
    )
    if result.reason is not None:
        title += f" ({result.reason.message})"
    return PlotModel(
        title=title,
        axis=axis,
        x_max=x_max,
        weights=tuple(_weights(result, axis, x_max)),
        spans=tuple(s for s in spans if s.x1 > s.x0),
        marks=tuple(_marks(result, axis)),
        panels=tuple(_panels(result, axis, spans)),
        run_start=start,
        run_end=end,
    )


def _series(
    provider: MetricProvider, query: str, start: float, end: float, step: float
) -> dict[float, float]:
    try:
        return {t: v for t, v in provider.range(query, start, end, step) if math.isfinite(v)}
    except ProviderError:
        return {}


def plot_result(
    result: SimulationResult,
    provider: MetricProvider,
    path: str | Path,
    time_scale: float = 1.0,
) -> Path:
    """Draw ``result`` to ``path`` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = plot_model(result, time_scale)
    canary = result.canary
    axis = model.axis
    interval = canary.spec.analysis.interval.seconds
    start, end = model.run_start, model.run_end
    step = max(interval, (end - start) / MAX_POINTS) if end > start else interval
    rows = 1 + len(model.panels)
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.4 + 2.3 * len(model.panels)), sharex=True)
    axes = list(axes) if rows > 1 else [axes]
    top = axes[0]
    xs = [x for x, _ in model.weights]
    top.step(xs, [w for _, w in model.weights], where="post", color="tab:purple", label="weight")
    top.set_ylabel("candidate weight (%)")
    top.set_ylim(-5, 112)
    top.set_title(model.title, fontsize=9, loc="left")
    for ax in axes:
        for i, span in enumerate(model.spans):
            ax.axvspan(span.x0, span.x1, color="0.93" if i % 2 == 0 else "0.86", zorder=0)
        for mark in model.marks:
            ax.axvline(mark.x, color=mark.colour, linewidth=1.2, label=mark.label)
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        ax.set_xlim(0, model.x_max)
    for span in model.spans:
        top.text((span.x0 + span.x1) / 2, 106, span.label, ha="center", va="center", fontsize=8)
    top.legend(fontsize=7, loc="center left", framealpha=0.9)
    for ax, panel in zip(axes[1:], model.panels, strict=True):
        stable_q = queries.metric_query(canary, panel.spec, canary.spec.stable.name, panel.window_s)
        cand_q = queries.metric_query(
            canary, panel.spec, canary.spec.candidate.name, panel.window_s
        )
        stable = _series(provider, stable_q, start, end, step)
        cand = _series(provider, cand_q, start, end, step)
        if panel.baseline:
            drift = {t: cand[t] / stable[t] - 1 for t in cand if stable.get(t)}
            ts = sorted(drift)
            ax.plot(
                [axis.x(t) for t in ts],
                [drift[t] * panel.factor for t in ts],
                color="tab:orange",
                label=f"{canary.spec.candidate.name} vs {canary.spec.stable.name}",
            )
        else:
            for series, name, colour in (
                (stable, f"{canary.spec.stable.name} (stable)", "tab:blue"),
                (cand, f"{canary.spec.candidate.name} (candidate)", "tab:orange"),
            ):
                ts = sorted(series)
                ax.plot(
                    [axis.x(t) for t in ts],
                    [series[t] * panel.factor for t in ts],
                    color=colour,
                    label=name,
                    linewidth=1,
                )
        for bound in panel.thresholds:
            ax.hlines(
                bound.value,
                bound.x0,
                bound.x1,
                color="red",
                linestyle="--",
                linewidth=1,
                label=bound.label,
            )
        ax.set_ylabel(panel.ylabel, fontsize=8)
        ax.set_title(panel.title, fontsize=8, loc="left")
        handles, labels = ax.get_legend_handles_labels()
        keep = [
            (h, lab) for h, lab in zip(handles, labels, strict=True) if lab not in _marked(model)
        ]
        ax.legend([h for h, _ in keep], [lab for _, lab in keep], fontsize=7, loc="upper left")
    axes[-1].set_xlabel(axis.label)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _marked(model: PlotModel) -> set[str]:
    """Labels of the vertical lines: in the top panel's legend only."""
    return {m.label for m in model.marks}
