"""Cross-field validation of a ModelCanary: every problem, with its field path.

Owns the rules a single field's type cannot express (weights increase, checks name defined metrics,
thresholds fit their metric's unit, the router can do what the spec asks, each variant fits on its
GPU, ...); the shape of each field is :mod:`controlplane.spec.models`'s. The one entry point for
everybody: ``canaryctl validate`` calls :func:`check_file`, the controller and the API call
:func:`check_object` (a dict read from Kubernetes) or :func:`validate` (a typed model).

:func:`validate` is pure given a catalogue; with ``catalog=None`` it uses the packaged GPU
catalogue (read once per process). The rules are listed in docs/spec.md, "Validation rules".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from controlplane.analysis import resolution, seqcheck
from controlplane.errors import Problem, ProfileError, SpecError
from controlplane.profiles.catalog import Catalog, load_catalog
from controlplane.profiles.measured import preferred_fit
from controlplane.routing.base import capability_problems
from controlplane.serving.versions import version_problems, vllm_version
from controlplane.spec.load import Document, build, parse_text, read_source
from controlplane.spec.messages import did_you_mean
from controlplane.spec.models import (
    GATE_PLACEHOLDERS,
    CheckSpec,
    GateSpec,
    MetricSpec,
    ModelCanary,
    VariantSpec,
)
from controlplane.spec.paths import Loc, format_path
from controlplane.spec.units import BUILTIN_UNITS, Duration, Quantity, Unit

LATENCY_BUILTINS = ("e2e-latency", "ttft", "inter-token-latency")
QUERY_PLACEHOLDERS = ("namespace", "canary", "variant", "window")
SELECTOR_PLACEHOLDERS = ("namespace", "canary", "variant")
MIN_INTERVAL_SECONDS = 1.0

# Threshold units each metric kind accepts (a plain number is in the metric's own unit).
_ACCEPTS: dict[Unit, frozenset[Unit]] = {
    Unit.SECONDS: frozenset({Unit.SECONDS, Unit.NUMBER}),
    Unit.RATIO: frozenset({Unit.RATIO, Unit.NUMBER}),
    Unit.NUMBER: frozenset({Unit.NUMBER}),
}
_KIND_WORDS = {
    Unit.SECONDS: "a latency in seconds",
    Unit.RATIO: "a ratio",
    Unit.NUMBER: "a plain number",
}
_EXAMPLES = {
    Unit.SECONDS: "write e.g. 300ms or 1.5s",
    Unit.RATIO: "write e.g. 0.1% or 0.001",
    Unit.NUMBER: "write a number without a unit",
}
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)


class _Rules:
    """Collects the problems of one canary; one method per part of the spec."""

    def __init__(self, canary: ModelCanary, catalog: Catalog) -> None:
        self.canary = canary
        self.catalog = catalog
        self.problems: list[Problem] = []
        self.interval = canary.spec.analysis.interval
        self.metrics: dict[str, MetricSpec] = {}
        for metric in canary.spec.analysis.metrics:
            self.metrics.setdefault(metric.name, metric)

    def add(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(path=format_path(loc), message=message))

    # ------------------------------------------------------------------ analysis and metrics

    def analysis(self) -> None:
        analysis = self.canary.spec.analysis
        loc: Loc = ("spec", "analysis")
        if self.interval.seconds < MIN_INTERVAL_SECONDS:
            self.add((*loc, "interval"), f"must be at least 1s, got {self.interval}")
        self.window(analysis.window, (*loc, "window"), "analysis.window")
        if analysis.selector is not None:
            self.placeholders(analysis.selector, (*loc, "selector"), SELECTOR_PLACEHOLDERS)
            if "{{variant}}" not in analysis.selector:
                self.add(
                    (*loc, "selector"),
                    "must contain {{variant}}: it is what tells the candidate's series from the "
                    "stable's",
                )
        first: dict[str, int] = {}
        for i, metric in enumerate(analysis.metrics):
            self.metric(metric, (*loc, "metrics", i))
            if metric.name in first:
                self.add(
                    (*loc, "metrics", i, "name"),
                    f"duplicate metric name {metric.name!r} "
                    f"(also spec.analysis.metrics[{first[metric.name]}])",
                )
            else:
                first[metric.name] = i

    def window(self, window: Duration, loc: Loc, what: str) -> None:
        if window.seconds <= 0:
            self.add(loc, f"{what} must be longer than 0")
        elif window.seconds < self.interval.seconds:
            self.add(
                loc,
                f"{what} ({window}) is shorter than analysis.interval ({self.interval}): "
                "samples between evaluations would never be looked at",
            )

    def metric(self, metric: MetricSpec, loc: Loc) -> None:
        if metric.builtin is None and metric.query is None:
            self.add(loc, "a metric needs exactly one of 'builtin' or 'query', got neither")
        elif metric.builtin is not None and metric.query is not None:
            self.add(loc, "a metric needs exactly one of 'builtin' or 'query', got both")
        if metric.quantile is not None and metric.builtin not in LATENCY_BUILTINS:
            what = f"not to {metric.builtin}" if metric.builtin else "not to query metrics"
            self.add(
                (*loc, "quantile"),
                "'quantile' applies only to the latency histograms "
                f"({', '.join(LATENCY_BUILTINS)}), {what}",
            )
        if metric.unit is not None and metric.builtin is not None:
            kind = _KIND_WORDS[BUILTIN_UNITS[metric.builtin]]
            self.add(
                (*loc, "unit"),
                f"'unit' applies only to query metrics: {metric.builtin} is {kind} already",
            )
        if metric.query is not None:
            self.placeholders(metric.query, (*loc, "query"), QUERY_PLACEHOLDERS)

    def placeholders(self, text: str, loc: Loc, allowed: tuple[str, ...]) -> None:
        shown = ", ".join("{{" + name + "}}" for name in allowed)
        for match in _PLACEHOLDER.finditer(text):
            name = match.group(1)
            if name not in allowed:
                hint = did_you_mean(name.strip(), allowed)
                hint = hint.replace("'", "'{{", 1).replace("'?", "}}'?") if hint else ""
                self.add(loc, f"unknown placeholder {match.group(0)!r} (allowed: {shown}){hint}")
        if "{{" in _PLACEHOLDER.sub("", text):
            self.add(loc, "unclosed placeholder: '{{' without '}}'")

    # ------------------------------------------------------------------ checks

    def check(
        self,
        check: CheckSpec,
        loc: Loc,
        limit: Duration | None,
        limit_what: str,
        *,
        in_step: bool = False,
    ) -> None:
        """Rules of one check; ``limit`` is the step's or the shadow's duration."""
        metric = self.metrics.get(check.metric)
        if metric is None:
            defined = ", ".join(self.metrics) or "none"
            hint = did_you_mean(check.metric, self.metrics)
            self.add(
                (*loc, "metric"),
                f"metric {check.metric!r} is not defined in spec.analysis.metrics "
                f"(defined: {defined}){hint}",
            )
        if check.above is None and check.below is None:
            self.add(loc, "a check needs 'above' or 'below' (or both)")
        above, below = check.above, check.below
        if above and below and above.unit is below.unit and below.value >= above.value:
            self.add(
                loc,
                f"'below' ({below}) must be less than 'above' ({above}): as written every value "
                "is a breach",
            )
        for name, threshold in (("above", check.above), ("below", check.below)):
            if threshold is not None:
                self.threshold(check, metric, threshold, (*loc, name))
        if check.min_samples is not None and metric is not None and metric.builtin is None:
            self.add(
                (*loc, "minSamples"),
                f"'minSamples' applies only to built-in metrics; {check.metric!r} is a query "
                "metric (its sample count is unknown)",
            )
        if check.window is not None:
            self.window(check.window, (*loc, "window"), "window")
        if metric is not None:  # judge: sequential supports only some metrics and bounds
            self.problems.extend(seqcheck.problems(self.canary, check, format_path(loc)))
        if check.final_look > 0 and seqcheck.is_sequential(check):
            if not in_step:
                self.add(
                    (*loc, "finalLook"),
                    "finalLook applies to a step's rollbackOn (its closing test runs when the "
                    "step's duration is up)",
                )
            elif limit is None:
                self.add(
                    (*loc, "finalLook"),
                    "finalLook needs the step's duration (its closing test runs when the "
                    "duration is up): this step has none",
                )
        wait = check.for_
        if 0 < wait.seconds < self.interval.seconds:
            self.add(
                (*loc, "for"),
                f"'for' ({wait}) is shorter than analysis.interval ({self.interval}): "
                f"use 0 for immediate, or at least {self.interval}",
            )
        if limit is not None and wait.seconds > limit.seconds:
            self.add(
                (*loc, "for"),
                f"'for' ({wait}) is longer than {limit_what} ({limit}): this check could never "
                "take effect",
            )

    def threshold(
        self, check: CheckSpec, metric: MetricSpec | None, value: Quantity, loc: Loc
    ) -> None:
        if check.compare == "baseline":
            if value.unit not in _ACCEPTS[Unit.RATIO]:
                self.add(
                    loc,
                    f"{str(value)!r} does not fit 'compare: baseline' (a relative drift, "
                    "candidate / stable - 1): write e.g. 5% or 0.05",
                )
            return
        if metric is None:
            return
        if metric.builtin is not None:
            kind: Unit | None = BUILTIN_UNITS[metric.builtin]
            what = f"{metric.builtin} is {_KIND_WORDS[BUILTIN_UNITS[metric.builtin]]}"
        elif metric.unit is not None:
            kind = Unit(metric.unit)
            what = f"a query metric with unit: {metric.unit}"
        else:
            kind, what = None, ""
        if kind is None:
            return
        if value.unit not in _ACCEPTS[kind]:
            self.add(
                loc,
                f"{str(value)!r} does not fit metric {metric.name!r} ({what}): {_EXAMPLES[kind]}",
            )
        elif (
            kind is Unit.RATIO
            and value.unit is Unit.NUMBER
            and metric.builtin is not None
            and not 0 <= value.value <= 1
        ):
            self.add(
                loc,
                f"{value} on metric {metric.name!r} ({metric.builtin}, a fraction from 0 to 1) "
                f"means {value.value * 100:g}%: write a percentage like 5% or a fraction "
                "like 0.05",
            )

    # ------------------------------------------------------------------ steps, shadow, budget

    def steps(self) -> None:
        steps = self.canary.spec.steps
        for i, step in enumerate(steps):
            loc: Loc = ("spec", "steps", i)
            last = i == len(steps) - 1
            if i > 0 and step.weight <= steps[i - 1].weight:
                self.add(
                    (*loc, "weight"),
                    f"weights must strictly increase: {step.weight} is not above the previous "
                    f"step's {steps[i - 1].weight}",
                )
            if last and step.weight != 100:
                self.add(
                    (*loc, "weight"),
                    f"the last step's weight must be 100 (it promotes the candidate), "
                    f"got {step.weight}",
                )
            if step.duration is None:
                if not last:
                    self.add((*loc, "duration"), "every step but the last needs a duration")
            elif step.duration.seconds < self.interval.seconds:
                self.add(
                    (*loc, "duration"),
                    f"{step.duration} is shorter than analysis.interval ({self.interval}): the "
                    "step would end before its checks are evaluated",
                )
            for j, check in enumerate(step.rollback_on):
                where = (*loc, "rollbackOn", j)
                self.check(check, where, step.duration, "the step's duration", in_step=True)

    def shadow(self) -> None:
        shadow = self.canary.spec.shadow
        if shadow is None:
            return
        loc: Loc = ("spec", "shadow")
        if shadow.duration.seconds < self.interval.seconds:
            self.add(
                (*loc, "duration"),
                f"{shadow.duration} is shorter than analysis.interval ({self.interval})",
            )
        self.check(shadow.promote_on, (*loc, "promoteOn"), shadow.duration, "the shadow duration")
        for j, check in enumerate(shadow.rollback_on):
            self.check(check, (*loc, "rollbackOn", j), shadow.duration, "the shadow duration")

    def budget(self) -> None:
        budget = self.canary.spec.budget
        if budget is None:
            return
        loc: Loc = ("spec", "budget")
        first = self.canary.spec.steps[0].weight
        if budget.throttle_weight >= first:
            self.add(
                (*loc, "throttleWeight"),
                f"must be below the first step's weight ({first}), got {budget.throttle_weight}: "
                "throttling would not lower the weight",
            )
        if budget.cost_query is not None:
            self.placeholders(budget.cost_query, (*loc, "costQuery"), QUERY_PLACEHOLDERS)

    # ------------------------------------------------------------------ variants, traffic, alerts

    def variants(self) -> None:
        spec = self.canary.spec
        stable, candidate = spec.stable, spec.candidate
        self.problems.extend(version_problems(self.canary, self.catalog))
        if spec.candidate_is_stable():
            # A no-op rollout (e.g. git reverted a failed candidate to the stable): valid, the
            # controller finishes it at once and deploys nothing, so the names may even be equal.
            for role, variant in (("stable", stable), ("candidate", candidate)):
                self.fit(variant, ("spec", role))
            return
        if candidate.name == stable.name:
            self.add(
                ("spec", "candidate", "name"),
                f"candidate and stable are both named {candidate.name!r}: variants need distinct "
                "names (they label pods and metrics)",
            )
        if _serving_identity(candidate) == _serving_identity(stable):
            self.add(
                ("spec", "candidate"),
                "candidate serves the same as stable (storageUri, quantization, systemPrompt, "
                "args, gpu, gpuCount and gpuMemoryUtilization all equal) and only its replicas "
                "differ: that is not a canary. Make it equal to stable in every field but name "
                "for a no-op, or change what it serves",
            )
        for role, variant in (("stable", stable), ("candidate", candidate)):
            self.fit(variant, ("spec", role))

    def fit(self, variant: VariantSpec, loc: Loc) -> None:
        if self.catalog.gpu(variant.gpu) is None:
            known = self.catalog.gpu_names()
            self.add(
                (*loc, "gpu"),
                f"unknown GPU {variant.gpu!r}{did_you_mean(variant.gpu, known)} "
                f"(known: {', '.join(known)})",
            )
            return
        try:
            report = preferred_fit(self.canary.spec.model, variant, self.catalog)
        except ProfileError as exc:
            self.add((*loc, "quantization"), str(exc))
            return
        if not report.fits:
            self.add((*loc, "gpu"), f"the model does not fit: {report.message}")

    def traffic(self) -> None:
        """What the router cannot do (cohort, mirror) or needs (gateway, hosts): its own table."""
        self.problems.extend(capability_problems(self.canary))

    # ------------------------------------------------------------------ gates

    def gates(self) -> None:
        spec = self.canary.spec
        first: dict[str, int] = {}
        for i, gate in enumerate(spec.gates):
            loc: Loc = ("spec", "gates", i)
            if gate.name in first:
                self.add(
                    (*loc, "name"),
                    f"duplicate gate name {gate.name!r} (also spec.gates[{first[gate.name]}])",
                )
            else:
                first[gate.name] = i
            self.gate(gate, loc, len(spec.steps))

    def gate(self, gate: GateSpec, loc: Loc, steps: int) -> None:
        if gate.before == "step" and not gate.steps:
            self.add(
                (*loc, "steps"),
                "'before: step' needs 'steps': the 1-based numbers of the steps the gate runs "
                "before, e.g. [2, 3]",
            )
        if gate.before != "step" and gate.steps:
            self.add(
                (*loc, "steps"),
                f"'steps' applies only to 'before: step' (this gate runs before {gate.before})",
            )
        seen: set[int] = set()
        for j, number in enumerate(gate.steps):
            if number > steps:
                self.add(
                    (*loc, "steps", j),
                    f"there is no step {number}: the spec has {steps} step"
                    f"{'s' if steps != 1 else ''}",
                )
            if number in seen:
                self.add((*loc, "steps", j), f"step {number} is listed twice")
            seen.add(number)
        if gate.timeout.seconds < MIN_INTERVAL_SECONDS:
            self.add((*loc, "timeout"), f"must be at least 1s, got {gate.timeout}")
        for key, value in gate.parameters.items():
            self.placeholders(value, (*loc, "parameters", key), GATE_PLACEHOLDERS)

    def alerts(self) -> None:
        for i, alert in enumerate(self.canary.spec.alerts):
            channels = [
                name
                for name, value in (
                    ("slack", alert.slack),
                    ("webhook", alert.webhook),
                    ("alertmanager", alert.alertmanager),
                )
                if value is not None
            ]
            if len(channels) != 1:
                got = " and ".join(channels) if channels else "none"
                self.add(
                    ("spec", "alerts", i),
                    f"an alert needs exactly one of slack, webhook or alertmanager, got {got}",
                )


def _serving_identity(variant: VariantSpec) -> tuple[object, ...]:
    return (
        variant.storage_uri,
        variant.quantization,
        variant.system_prompt,
        tuple(variant.args),
        variant.gpu,
        variant.gpu_count,
        variant.gpu_memory_utilization,
    )


def validate(canary: ModelCanary, catalog: Catalog | None = None) -> list[Problem]:
    """Every cross-field problem of ``canary`` (paths set; no lines or file: see check_*).

    ``catalog`` None: the packaged GPU catalogue.
    """
    rules = _Rules(canary, catalog if catalog is not None else load_catalog())
    rules.analysis()
    rules.steps()
    rules.shadow()
    rules.budget()
    rules.variants()
    rules.traffic()
    rules.alerts()
    rules.gates()
    rules.problems.extend(resolution.problems(canary, vllm_version(canary)))
    return rules.problems


def _check_document(doc: Document, catalog: Catalog | None) -> list[Problem]:
    canary, problems = build(doc)
    if canary is not None:
        problems.extend(doc.problem(p.path, p.message) for p in validate(canary, catalog))
    return sorted(problems, key=lambda p: p.line if p.line is not None else 0)


def check_text(
    source: str | bytes, filename: str | None = None, catalog: Catalog | None = None
) -> list[Problem]:
    """Every problem of every document in ``source``: YAML, structure and cross-field rules."""
    try:
        documents = parse_text(source, filename)
    except SpecError as exc:
        return list(exc.problems)
    problems: list[Problem] = []
    for doc in documents:
        problems.extend(_check_document(doc, catalog))
    return problems


def check_file(path: str | os.PathLike[str], catalog: Catalog | None = None) -> list[Problem]:
    """Every problem of the file at ``path`` (an unreadable file is one problem)."""
    try:
        source = read_source(path)
    except SpecError as exc:
        return list(exc.problems)
    return check_text(source, os.fspath(path), catalog)


def check_object(data: Mapping[str, object], catalog: Catalog | None = None) -> list[Problem]:
    """Every problem of a ModelCanary given as plain data (e.g. read from Kubernetes); no lines."""
    return _check_document(Document(data=dict(data), lines={}, line=None), catalog)


def validated_text(
    source: str | bytes, filename: str | None = None, catalog: Catalog | None = None
) -> list[ModelCanary]:
    """The canaries of ``source`` when all are valid; else :class:`SpecError` with every problem."""
    documents = parse_text(source, filename)
    canaries: list[ModelCanary] = []
    problems: list[Problem] = []
    for doc in documents:
        canary, found = build(doc)
        if canary is not None:
            found.extend(doc.problem(p.path, p.message) for p in validate(canary, catalog))
            canaries.append(canary)
        problems.extend(sorted(found, key=lambda p: p.line if p.line is not None else 0))
    if problems:
        raise SpecError(problems)
    return canaries


def validated_file(
    path: str | os.PathLike[str], catalog: Catalog | None = None
) -> list[ModelCanary]:
    """:func:`validated_text` of the file at ``path``."""
    return validated_text(read_source(path), os.fspath(path), catalog)
