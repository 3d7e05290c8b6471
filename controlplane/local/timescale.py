"""``--time-scale N``: every duration of a canary divided by N, within what Prometheus can see.

Owns rewriting a canary for the local stack so the schedule runs in minutes while the machine and
analysis stay the controller's, with two floors: ``interval`` at least one scrape, and every window
at least :data:`MIN_WINDOW_SCRAPES` scrapes (``rate()`` needs two samples; four intervals is
Prometheus' advice). Floors applied are reported (:class:`Scaling`). Pure. See docs/local.md,
"Time scale, and the shortest usable windows".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.errors import UsageError
from controlplane.spec.check_keys import PROMOTE_KEY, shadow_check, step_check
from controlplane.spec.models import CheckSpec, ModelCanary
from controlplane.spec.units import Duration

MIN_WINDOW_SCRAPES = 4
"""A query window spans at least this many scrape intervals (``rate()`` needs >= 2 samples)."""


@dataclass
class Scaling:
    """What scaling did: the factor, the floors, and one line per duration that hit a floor."""

    factor: float
    scrape_interval: float
    notes: list[str] = field(default_factory=list)

    @property
    def min_window(self) -> float:
        return MIN_WINDOW_SCRAPES * self.scrape_interval

    def seconds(self, spec_seconds: float) -> float:
        """Wall-clock seconds of a spec duration (no floor)."""
        return spec_seconds / self.factor


def _scaled(d: Duration, scaling: Scaling, floor: float, what: str) -> Duration:
    seconds = d.seconds / scaling.factor
    if 0 < seconds < floor:
        scaling.notes.append(
            f"{what} {d} / {scaling.factor:g} = {Duration.of(seconds)} is raised to "
            f"{Duration.of(floor)} (scrape interval {Duration.of(scaling.scrape_interval)})"
        )
        seconds = floor
    return Duration.of(seconds) if seconds else Duration(0.0, "0")


def _check(check: CheckSpec, scaling: Scaling, where: str) -> CheckSpec:
    changes: dict[str, Duration] = {"for_": _scaled(check.for_, scaling, 0.0, f"{where}.for")}
    if check.window is not None:
        changes["window"] = _scaled(check.window, scaling, scaling.min_window, f"{where}.window")
    return check.model_copy(update=changes)


def scale_canary(
    canary: ModelCanary, factor: float, scrape_interval: float
) -> tuple[ModelCanary, Scaling]:
    """``canary`` with every duration divided by ``factor`` (floors applied), and the report."""
    if not factor > 0:
        raise UsageError(f"--time-scale must be a positive number, got {factor!r}")
    scaling = Scaling(factor, scrape_interval)
    spec = canary.spec
    analysis = spec.analysis.model_copy(
        update={
            "interval": _scaled(spec.analysis.interval, scaling, scrape_interval, "interval"),
            "window": _scaled(spec.analysis.window, scaling, scaling.min_window, "window"),
        }
    )
    steps = []
    for i, step in enumerate(spec.steps):
        update: dict[str, object] = {
            "rollback_on": [
                _check(c, scaling, step_check(i, j)) for j, c in enumerate(step.rollback_on)
            ]
        }
        if step.duration is not None:
            update["duration"] = _scaled(step.duration, scaling, 0.0, f"steps[{i}].duration")
        steps.append(step.model_copy(update=update))
    shadow = spec.shadow
    if shadow is not None:
        shadow = shadow.model_copy(
            update={
                "duration": _scaled(shadow.duration, scaling, 0.0, "shadow.duration"),
                "promote_on": _check(shadow.promote_on, scaling, PROMOTE_KEY),
                "rollback_on": [
                    _check(c, scaling, shadow_check(j)) for j, c in enumerate(shadow.rollback_on)
                ],
            }
        )
    new_spec = spec.model_copy(update={"analysis": analysis, "steps": steps, "shadow": shadow})
    return canary.model_copy(update={"spec": new_spec}), scaling
