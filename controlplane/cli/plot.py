"""``--plot FILE.png``: weight over time and each checked metric against its thresholds.

Owns the picture of a replay (matplotlib, Agg backend, no display needed). The top panel is the
candidate's user-facing weight per evaluation; below it, one panel per checked metric with both
variants' values over the replayed span (fetched with one range query per variant and metric) and
the check's ``above`` / ``below`` thresholds. A ``compare: baseline`` check is drawn as the drift
``candidate / stable - 1`` against its relative thresholds. The outcome is marked on every panel.
Called by ``canaryctl simulate`` and the demo.
"""

from __future__ import annotations

import math
from pathlib import Path

from controlplane.analysis.metric_provider import MetricProvider
from controlplane.errors import ProviderError
from controlplane.promql import queries
from controlplane.simulation import SimulationResult
from controlplane.spec.models import CheckSpec, MetricSpec
from controlplane.spec.units import Unit

MAX_POINTS = 1500
_DAY = 86400.0


def _checked(result: SimulationResult) -> list[tuple[str, CheckSpec, MetricSpec]]:
    """Every check of the spec whose metric exists, once per (metric, compare, window)."""
    seen: set[tuple[str, str | None, float | None]] = set()
    found: list[tuple[str, CheckSpec, MetricSpec]] = []
    for key, check in queries.all_checks(result.canary):
        metric = result.canary.metric(check.metric)
        if metric is None:
            continue
        ident = (check.metric, check.compare, check.window.seconds if check.window else None)
        if ident in seen:
            continue
        seen.add(ident)
        found.append((key, check, metric))
    return found


def _series(
    provider: MetricProvider, query: str, start: float, end: float, step: float
) -> dict[float, float]:
    try:
        return {t: v for t, v in provider.range(query, start, end, step) if math.isfinite(v)}
    except ProviderError:
        return {}


def _scale(check: CheckSpec, metric: MetricSpec) -> tuple[float, str]:
    """Display factor and unit label for a check's values."""
    unit = check.above.unit if check.above else check.below.unit if check.below else None
    if check.compare == "baseline" or unit is Unit.RATIO:
        return 100.0, "%"
    if metric.builtin in ("e2e-latency", "ttft", "inter-token-latency") or unit is Unit.SECONDS:
        return 1000.0, "ms"
    return 1.0, ""


def plot_result(result: SimulationResult, provider: MetricProvider, path: str | Path) -> Path:
    """Draw ``result`` to ``path`` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    canary = result.canary
    end = result.finished_at or result.trace[-1].time if result.trace else result.end
    start = result.start
    interval = canary.spec.analysis.interval.seconds
    step = max(interval, (end - start) / MAX_POINTS) if end > start else interval
    checks = _checked(result)
    fig, axes = plt.subplots(
        1 + len(checks), 1, figsize=(11, 2.2 + 2.2 * len(checks)), sharex=True, squeeze=False
    )
    days = [(p.time - start) / _DAY for p in result.trace]
    ax0 = axes[0][0]
    ax0.step(days, [p.weight for p in result.trace], where="post", color="tab:purple")
    ax0.set_ylabel("candidate weight %")
    ax0.set_ylim(-3, 103)
    ax0.set_title(
        f"{canary.metadata.name}: {canary.spec.stable.name} -> {canary.spec.candidate.name} "
        f"— {result.outcome}"
        + (f" ({result.reason.message})" if result.reason is not None else ""),
        fontsize=9,
        loc="left",
    )
    for row, (key, check, metric) in enumerate(checks, start=1):
        ax = axes[row][0]
        window = (check.window or canary.spec.analysis.window).seconds
        factor, label = _scale(check, metric)
        stable_q = queries.metric_query(canary, metric, canary.spec.stable.name, window)
        cand_q = queries.metric_query(canary, metric, canary.spec.candidate.name, window)
        stable = _series(provider, stable_q, start, end, step)
        cand = _series(provider, cand_q, start, end, step)
        if check.compare == "baseline":
            drift = {t: cand[t] / stable[t] - 1 for t in cand if stable.get(t)}
            xs = sorted(drift)
            ax.plot(
                [(t - start) / _DAY for t in xs],
                [drift[t] * factor for t in xs],
                color="tab:orange",
                label=f"{canary.spec.candidate.name} drift vs stable",
            )
        else:
            for series, name, colour in (
                (stable, canary.spec.stable.name, "tab:blue"),
                (cand, canary.spec.candidate.name, "tab:orange"),
            ):
                xs = sorted(series)
                ax.plot(
                    [(t - start) / _DAY for t in xs],
                    [series[t] * factor for t in xs],
                    color=colour,
                    label=name,
                    linewidth=1,
                )
        for bound, word in ((check.above, "above"), (check.below, "below")):
            if bound is not None:
                ax.axhline(
                    bound.value * factor,
                    color="red",
                    linestyle="--",
                    linewidth=1,
                    label=f"{word} {bound}",
                )
        ax.set_ylabel(f"{check.metric} {label}".strip(), fontsize=8)
        ax.set_title(key, fontsize=8, loc="left")
        ax.legend(fontsize=7, loc="upper right")
    if result.finished_at is not None:
        for row in axes:
            row[0].axvline((result.finished_at - start) / _DAY, color="black", linewidth=1)
    axes[-1][0].set_xlabel("days since start")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
