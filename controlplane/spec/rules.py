"""The spec's own cross-field rules: every problem a ModelCanary has on its own, with its path.

Owns the rules a field's type cannot express and that need only the spec; rules that consult
layers above spec plug in through :class:`RuleHooks` (implemented by
:mod:`controlplane.validation`) at their place in the walk, so problems come in one list in field
order. Pure; called by :mod:`controlplane.validation` only. See docs/spec.md, "Validation rules".
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol

from controlplane.errors import Problem
from controlplane.spec.constants import GATE_PLACEHOLDERS
from controlplane.spec.paths import Loc, format_path
from controlplane.spec.units import BUILTIN_UNITS, Duration, Quantity, Unit
from controlplane.spec.words import did_you_mean

if TYPE_CHECKING:  # annotations only
    from controlplane.spec.models import CheckSpec, GateSpec, MetricSpec, ModelCanary, VariantSpec

LATENCY_BUILTINS = ("e2e-latency", "ttft", "inter-token-latency")
QUERY_PLACEHOLDERS = ("namespace", "canary", "variant", "window")
SELECTOR_PLACEHOLDERS = ("namespace", "canary", "variant")
MIN_INTERVAL_SECONDS = 1.0
MAX_QUALITY_SAMPLE = 0.5
"""The largest share of a variant's requests the pairer may carry: each pair adds two requests."""

# Threshold units each metric kind accepts: every threshold is typed, so a bare number fits only
# a plain-number metric (``above: 0.2`` on a latency could be 0.2s or a mistyped 200ms; ``above:
# 200`` is 200 seconds). Only 0 is the same in every unit and is accepted bare everywhere.
_ACCEPTS: dict[Unit, frozenset[Unit]] = {
    Unit.SECONDS: frozenset({Unit.SECONDS}),
    Unit.RATIO: frozenset({Unit.RATIO}),
    Unit.NUMBER: frozenset({Unit.NUMBER}),
}
_KIND_WORDS = {
    Unit.SECONDS: "a latency in seconds",
    Unit.RATIO: "a ratio",
    Unit.NUMBER: "a plain number",
}
_EXAMPLES = {
    Unit.SECONDS: "write e.g. 300ms or 1.5s",
    Unit.RATIO: "write e.g. 0.1% or 5%",
    Unit.NUMBER: "write a number without a unit",
}
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)


_BASELINE_WHAT = "a relative drift (compare: baseline, candidate / stable - 1)"


def _metric_what(metric: MetricSpec, kind: Unit) -> str:
    """``a latency (ttft, seconds)``: the metric a bare-number message names."""
    noun = "a latency" if kind is Unit.SECONDS else "a ratio"
    unit = "seconds" if kind is Unit.SECONDS else "a fraction from 0 to 1"
    if metric.builtin is None:
        return f"{noun} (query metric {metric.name!r}, unit: {kind.value})"
    if metric.builtin == metric.name:
        return f"{noun} ({metric.builtin}, {unit})"
    return f"{noun} (metric {metric.name!r}: {metric.builtin}, {unit})"


def bare_number(value: Quantity, kind: Unit, what: str) -> str:
    """The message for a bare number where ``kind`` (seconds or a ratio) needs a unit, with the
    spellings of what was most likely meant: ``200`` on a latency is read as milliseconds (200
    seconds is beyond any plausible bound, and vLLM's histograms hardly resolve it), ``0.2`` as
    seconds; ``0.05`` on a ratio as the fraction (5%), ``5`` as a percentage (5%)."""
    n = value.value
    if kind is Unit.SECONDS:
        seconds = n / 1000 if abs(n) >= 10 else n
        hint = f"e.g. {_number(seconds * 1000)}ms or {_number(seconds)}s"
        return f"{value} is a bare number on {what}: write a unit, {hint}"
    percent = n * 100 if abs(n) <= 1 else n
    return f"{value} is a bare number on {what}: write a percentage, e.g. {_number(percent)}%"


def _number(x: float) -> str:
    return f"{round(x, 9):.12g}"


class RuleHooks(Protocol):
    """The rules of a spec that need the layers above spec; :func:`problems` calls each at its
    place in the walk. :mod:`controlplane.validation` implements them (:data:`SPEC_ONLY`: none).
    """

    def check(self, canary: ModelCanary, check: CheckSpec, loc: Loc) -> list[Problem]:
        """Problems of one check whose metric is defined (e.g. what its judge supports)."""
        ...

    def versions(self, canary: ModelCanary) -> list[Problem]:
        """Problems of the vLLM version the variants run (before the variants' own rules)."""
        ...

    def variant(self, canary: ModelCanary, variant: VariantSpec, loc: Loc) -> list[Problem]:
        """Problems of one variant at ``loc`` (``spec.stable`` / ``spec.candidate``)."""
        ...

    def traffic(self, canary: ModelCanary) -> list[Problem]:
        """What the router cannot do or needs."""
        ...

    def canary(self, canary: ModelCanary) -> list[Problem]:
        """Problems of the canary as a whole, after every other rule."""
        ...


class _SpecOnly:
    """No product rules: the spec on its own."""

    def check(self, canary: ModelCanary, check: CheckSpec, loc: Loc) -> list[Problem]:
        return []

    def versions(self, canary: ModelCanary) -> list[Problem]:
        return []

    def variant(self, canary: ModelCanary, variant: VariantSpec, loc: Loc) -> list[Problem]:
        return []

    def traffic(self, canary: ModelCanary) -> list[Problem]:
        return []

    def canary(self, canary: ModelCanary) -> list[Problem]:
        return []


SPEC_ONLY: RuleHooks = _SpecOnly()
"""The spec's own rules and nothing else."""


class _Rules:
    """Collects the problems of one canary; one method per part of the spec."""

    def __init__(self, canary: ModelCanary, product: RuleHooks) -> None:
        self.canary = canary
        self.product = product
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
        if metric is not None:  # e.g. judge: sequential supports only some metrics and bounds
            self.problems.extend(self.product.check(self.canary, check, loc))
        if check.final_look > 0 and check.judge == "sequential":
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
            if value.unit is Unit.NUMBER and value.value != 0:
                self.add(loc, bare_number(value, Unit.RATIO, _BASELINE_WHAT))
            elif value.unit not in _ACCEPTS[Unit.RATIO] | {Unit.NUMBER}:
                self.add(
                    loc,
                    f"{str(value)!r} does not fit 'compare: baseline' (a relative drift, "
                    "candidate / stable - 1): write e.g. 5% or -2%",
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
        if kind is None or value.unit in _ACCEPTS[kind]:
            return
        if value.unit is Unit.NUMBER:
            if value.value != 0:
                self.add(loc, bare_number(value, kind, _metric_what(metric, kind)))
            return
        self.add(
            loc,
            f"{str(value)!r} does not fit metric {metric.name!r} ({what}): {_EXAMPLES[kind]}",
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

    def quality(self) -> None:
        quality = self.canary.spec.quality
        if quality is None:
            return
        loc: Loc = ("spec", "quality")
        sample = quality.sample
        if sample.unit is not Unit.RATIO and not (sample.unit is Unit.NUMBER and sample.value == 0):
            self.add((*loc, "sample"), f"must be a share like 5%, got {sample}")
        elif not 0 < sample.value <= MAX_QUALITY_SAMPLE:
            self.add((*loc, "sample"), f"must be above 0% and at most 50%, got {sample}")
        if self.canary.spec.traffic.router != "gateway-api":
            self.add(
                loc,
                "needs traffic.router gateway-api, whose route sends each variant's sample "
                f"through the pairer; {self.canary.spec.traffic.router} does not yet",
            )
        if quality.metric == "agreement" and quality.tolerance >= 1:
            self.add(
                (*loc, "tolerance"),
                f"the mean disagreement tolerated is below 1, got {_number(quality.tolerance)}",
            )

    # ------------------------------------------------------------------ variants, traffic, alerts

    def variants(self) -> None:
        spec = self.canary.spec
        stable, candidate = spec.stable, spec.candidate
        self.adoption()
        if spec.adopted and not stable.storage_uri:
            # the stable is read from the live InferenceService when the canary runs: only the
            # candidate's own rules hold here (canaryctl validate --cluster resolves it first)
            self.problems.extend(self.product.versions(self.canary))
            if candidate.storage_uri and candidate.gpu:
                self.fit(candidate, ("spec", "candidate"))
            return
        self.problems.extend(self.product.versions(self.canary))
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

    def adoption(self) -> None:
        """A variant written out needs ``storageUri`` and ``gpu``; a stable that names the live
        InferenceService (``targetRef``) takes them, and every other serving field, from it, so
        it names nothing else; the candidate never has a ``targetRef``."""
        spec = self.canary.spec
        for role in ("stable", "candidate"):
            variant = spec.variant(role)
            loc: Loc = ("spec", role)
            if variant.target_ref is not None:
                if role == "candidate":
                    self.add(
                        (*loc, "targetRef"),
                        "only the stable names a live InferenceService: the candidate is what "
                        "the canary deploys, so write it out (storageUri, gpu, ...)",
                    )
                    continue
                ref = variant.target_ref
                if self.canary.resolved_from() is not None:
                    continue  # filled in from the live service, not written
                from controlplane.spec.models import VariantSpec  # a problem: the models say it

                for field in sorted(variant.model_fields_set - {"name", "target_ref"}):
                    key = VariantSpec.model_fields[field].alias or field
                    self.add(
                        (*loc, key),
                        f"read from {ref.kind} {ref.name!r} (targetRef): the live service is "
                        "the stable as it serves; leave it out",
                    )
                continue
            for field, key in (("storage_uri", "storageUri"), ("gpu", "gpu")):
                if not getattr(variant, field):
                    self.add((*loc, key), "Field required")

    def fit(self, variant: VariantSpec, loc: Loc) -> None:
        if not (variant.storage_uri and variant.gpu):
            return  # what is missing is said (adoption); the product cannot judge the rest
        self.problems.extend(self.product.variant(self.canary, variant, loc))

    def traffic(self) -> None:
        """Each host the canary's own (:meth:`hosts`), the session key (:meth:`session`), then
        what the router cannot do (cohort, mirror, sessions) or needs (gateway, hosts): its own
        table."""
        self.hosts()
        self.session()
        self.problems.extend(self.product.traffic(self.canary))

    def session(self) -> None:
        """``traffic.session``: exactly one of ``header`` or ``cookie``, and not with a cohort
        (a cohort already decides which requests may reach the candidate)."""
        traffic = self.canary.spec.traffic
        session = traffic.session
        if session is None:
            return
        keys = [k for k in ("header", "cookie") if getattr(session, k) is not None]
        if len(keys) != 1:
            got = " and ".join(keys) if keys else "neither"
            self.add(
                ("spec", "traffic", "session"),
                f"a session needs exactly one of 'header' or 'cookie', got {got}",
            )
        if traffic.cohort is not None:
            self.add(
                ("spec", "traffic", "session"),
                "a session key and a cohort cannot be combined: the cohort already decides "
                "which requests may reach the candidate",
            )

    def hosts(self) -> None:
        """``traffic.hosts``: no wildcard, each a DNS-1123 subdomain (not an IP address), and a
        cluster-local Service host (:func:`cluster_local_namespace`) in the canary's namespace:
        a route on ``*`` or on another namespace's Service would take that traffic."""
        namespace = self.canary.metadata.namespace
        for i, host in enumerate(self.canary.spec.traffic.hosts):
            loc: Loc = ("spec", "traffic", "hosts", i)
            if "*" in host:
                self.add(
                    loc,
                    f"{host!r} is a wildcard: it would route every host it matches, other "
                    "teams' too; list each host by name",
                )
            elif len(host) > 253 or not _HOST.fullmatch(host) or _IPV4.fullmatch(host):
                self.add(
                    loc,
                    f"{host!r} is not a host name: a DNS-1123 subdomain (lowercase letters, "
                    "digits, '-' and '.', at most 253 characters), not an IP address",
                )
            elif (other := cluster_local_namespace(host)) not in (None, namespace):
                self.add(
                    loc,
                    f"{host!r} names a Service in namespace {other!r}: a canary routes only "
                    f"its own namespace's hosts ({namespace!r}); a public host has at least "
                    "three labels (llm.example.com)",
                )

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
        namespace = self.canary.metadata.namespace
        if gate.namespace is not None and gate.namespace != namespace:
            self.add(
                (*loc, "namespace"),
                f"must be the canary's namespace {namespace!r}, got {gate.namespace!r}: a gate's "
                "Workflow runs in the canary's namespace only (leave namespace out)",
            )
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


_HOST = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_IPV4 = re.compile(r"[0-9]+(\.[0-9]+){3}")


def cluster_local_namespace(host: str) -> str | None:
    """The namespace a cluster-local Service host names, None for any other host.

    ``<svc>.<ns>.svc`` and ``<svc>.<ns>.svc.<cluster domain>`` (``cluster.local`` by default),
    and ``<svc>.<ns>``: two labels are what the cluster's DNS search path resolves to a Service
    of namespace ``<ns>``, so they are read as that, never as an apex domain. A single label is
    a short name, which the mesh reads in the route's own namespace (the canary's)."""
    labels = host.split(".")
    if len(labels) == 2 or (len(labels) >= 3 and labels[2] == "svc"):
        return labels[1]
    return None


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


def problems(canary: ModelCanary, product: RuleHooks = SPEC_ONLY) -> list[Problem]:
    """Every cross-field problem of ``canary``, ``product``'s at their place (paths set; no
    lines or file: :mod:`controlplane.validation` adds them)."""
    rules = _Rules(canary, product)
    rules.analysis()
    rules.steps()
    rules.shadow()
    rules.budget()
    rules.quality()
    rules.variants()
    rules.traffic()
    rules.alerts()
    rules.gates()
    rules.problems.extend(product.canary(canary))
    return rules.problems
