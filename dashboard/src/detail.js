// One canary: why it stands where it stands. The rollback's reason in words first, the steps and
// the weight over time, every check with both variants' values against its limit (and the
// sequential evidence against its boundary when the check has one), gates, the quality judge,
// capacity and GPU-hours, what was expected against what is observed, Events and history, and
// the verbs.
import { html } from "htm/preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { Actions } from "./actions.js";
import { Chart, checkChart, evidenceChart, weightChart } from "./charts.js";
import { Badge } from "./list.js";
import { age, clock, duration, ms, seconds, specTime, timeZone } from "./time.js";
import { eventText, fmtValue, verdictText, verdictTone } from "./words.js";

const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
// a status time (RFC 3339, or unix seconds from an older controller) as unix seconds, or null
const secs = (v) => {
  const t = ms(v);
  return t === null ? null : t / 1000;
};
// the level a sequential check's evidence rolls back at (status.checks.*.evidenceBound)
const bound = (check) => num(check.evidenceBound);

// The current step's own span in unix seconds, which a chart whose data spans no time (one point,
// or none) draws instead of a range of its own: from the step's start (else the rollout's) to the
// later of the last evaluation and the start plus the step's duration, at least one analysis
// interval (else a minute) long. A simulated canary's spec durations run `simulated` times faster.
function stageSpan(spec, status, simulated) {
  const start = secs(status.stageStartedAt) ?? secs(status.startedAt);
  if (start === null) return null;
  const scale = simulated || 1;
  const step = (spec.steps || [])[(status.step || 1) - 1] || {};
  const lasts = seconds(step.duration);
  const interval = seconds((spec.analysis || {}).interval);
  const shortest = interval ? interval / scale : 60;
  const end = Math.max(secs(status.lastEvaluation) ?? start, lasts ? start + lasts / scale : start);
  return [start, Math.max(end, start + shortest)];
}

function When({ t, start, simulated }) {
  if (ms(t) === null) return html`<span class="muted">—</span>`;
  const spec = simulated ? specTime(t, start, simulated) : null;
  return html`<time datetime=${new Date(ms(t)).toISOString()}>${clock(t)}</time>${spec
    ? html` <span class="spec">(${spec})</span>`
    : null}`;
}

function Section({ id, title, children }) {
  return html`<section aria-labelledby=${id} class="card">
    <h2 id=${id}>${title}</h2>
    ${children}
  </section>`;
}

function Reason({ status }) {
  const r = status.reason;
  if (!r || !r.message) return null;
  const rolledBack = status.phase === "rolled_back";
  return html`<div class=${`reason ${rolledBack ? "tone-bad" : "tone-warn"}`} data-testid="reason">
    <h2>${rolledBack ? "Why it rolled back" : "Why it stopped"}</h2>
    <p>${r.message}</p>
    ${r.metric || r.step
      ? html`<p class="muted">${r.metric ? `check: ${r.metric}` : ""}${r.step ? ` · step ${r.step}` : ""}${r.at ? ` · ${clock(r.at)}` : ""}</p>`
      : null}
  </div>`;
}

function Timeline({ spec, status, simulated, span }) {
  const steps = spec.steps || [];
  const current = status.step || 0;
  const done = status.phase === "promoted";
  const history = status.history || [];
  const start = status.startedAt;
  const data = useMemo(() => {
    const xs = [];
    const ys = [];
    for (const e of history) {
      if (secs(e.time) === null) continue;
      xs.push(secs(e.time));
      ys.push(num(e.weight) ?? 0);
    }
    const last = xs.length ? xs[xs.length - 1] : null;
    const now = secs(status.lastEvaluation) ?? last;
    if (now !== null && last !== null && now > last) {
      xs.push(now);
      ys.push(ys[ys.length - 1]);
    }
    return [xs, ys];
  }, [history, status.lastEvaluation]);
  return html`<${Section} id="timeline" title="Steps">
    <ol class="steps">
      ${steps.map((s, i) => {
        const n = i + 1;
        const state = done || n < current ? "done" : n === current ? "current" : "pending";
        const back = status.phase === "rolled_back";
        const label =
          state === "done" ? "done" : state === "current" ? (back ? "rolled back here" : "now")
            : back ? "not run" : "to come";
        return html`<li class=${`step step-${state}`} aria-current=${state === "current" ? "step" : undefined}>
          <strong>Step ${n}</strong> · ${s.weight}%${s.duration ? ` for ${s.duration}` : ""}
          <span class="muted"> · ${label}</span>
        </li>`;
      })}
    </ol>
    ${data[0].length > 0
      ? html`<${Chart} label="The candidate's share of traffic over time"
          build=${weightChart} data=${data} deps=${[]} span=${span} />`
      : html`<p class="muted">No weight changes yet.</p>`}
    <p class="muted">Started <${When} t=${start} start=${start} simulated=${simulated} />.</p>
  </${Section}>`;
}

function thresholdText(check) {
  const parts = [];
  if (num(check.above) !== null) parts.push(`fails above ${fmtValue(check.above, check.metric)}`);
  if (num(check.below) !== null) parts.push(`fails below ${fmtValue(check.below, check.metric)}`);
  return parts.join(", ") || "—";
}

function CheckCard({ id, check, simulated, start, span }) {
  const recent = check.recent && check.recent.length ? check.recent : [check];
  const separate =
    num(check.candidate) !== null && num(check.value) !== null && check.candidate !== check.value;
  const metric = check.metric;
  const ratioLike = separate && Math.abs(check.value) < 10;
  const fmt = {
    raw: (v) => fmtValue(v, metric),
    value: (v) =>
      separate && ratioLike && v !== null && v !== undefined ? `${(v * 100).toPrecision(3)}%` : fmtValue(v, metric),
  };
  const data = useMemo(() => {
    const xs = [];
    const cand = [];
    const stab = [];
    const val = [];
    for (const r of recent) {
      if (secs(r.at) === null) continue;
      xs.push(secs(r.at));
      cand.push(num(r.candidate) ?? (separate ? null : num(r.value)));
      stab.push(num(r.stable));
      val.push(num(r.value));
    }
    const cols = [xs, cand, stab];
    if (separate) cols.push(val);
    if (num(check.above) !== null) cols.push(xs.map(() => check.above));
    if (num(check.below) !== null) cols.push(xs.map(() => check.below));
    return cols;
  }, [check]);
  const ev = useMemo(() => {
    const rows = recent.filter((r) => num(r.evidence) !== null && secs(r.at) !== null);
    if (!rows.length || bound(check) === null) return null;
    return [rows.map((r) => secs(r.at)), rows.map((r) => r.evidence), rows.map(() => bound(check))];
  }, [check]);
  const key = `check-${id.replace(/[^a-zA-Z0-9]/g, "-")}`;
  const samples = check.samples;
  return html`<article class="check" aria-labelledby=${key} data-check=${id}>
    <h3 id=${key}>${metric} <span class=${`badge tone-${verdictTone(check.verdict)}`}>${verdictText(check.verdict)}</span></h3>
    <dl class="facts">
      <div><dt>Candidate</dt><dd>${fmtValue(num(check.candidate) ?? (separate ? null : num(check.value)), metric)}</dd></div>
      <div><dt>Stable</dt><dd>${fmtValue(num(check.stable), metric)}</dd></div>
      ${separate ? html`<div><dt>Compared</dt><dd>${fmt.value(check.value)}</dd></div>` : null}
      <div><dt>Limit</dt><dd>${separate && ratioLike ? thresholdText({ ...check, metric: "ratio" }) : thresholdText(check)}</dd></div>
      ${samples !== undefined && samples !== null
        ? html`<div><dt>Samples</dt><dd>${typeof samples === "object" ? Object.entries(samples).map(([k, v]) => `${k} ${v}`).join(", ") : samples}</dd></div>`
        : null}
      ${num(check.evidence) !== null
        ? html`<div><dt>Evidence</dt><dd>${check.evidence.toPrecision(3)}${bound(check) !== null ? ` of ${bound(check).toPrecision(3)} needed` : ""}</dd></div>`
        : null}
      <div><dt>Checked</dt><dd><${When} t=${check.at} start=${start} simulated=${simulated} /></dd></div>
    </dl>
    ${check.message ? html`<p>${check.message}</p>` : null}
    ${data[0].length > 0
      ? html`<${Chart} label=${`${metric}: candidate and stable over time against the limit`}
          build=${checkChart(fmt, { separate, above: check.above, below: check.below })}
          data=${data} deps=${[separate]} span=${span} />`
      : null}
    ${ev
      ? html`<${Chart} label=${`${metric}: the sequential test's evidence against its boundary`}
          build=${evidenceChart} data=${ev} deps=${[]} span=${span} />`
      : null}
    <details>
      <summary>Results as a table (${recent.length})</summary>
      <table>
        <thead><tr><th scope="col">Time</th><th scope="col">Result</th><th scope="col">Candidate</th>
          <th scope="col">Stable</th>${separate ? html`<th scope="col">Compared</th>` : null}
          <th scope="col">Samples</th><th scope="col">Evidence</th></tr></thead>
        <tbody>${recent.map((r) => html`<tr>
          <td><${When} t=${r.at} start=${start} simulated=${simulated} /></td>
          <td>${verdictText(r.verdict)}</td>
          <td>${fmtValue(num(r.candidate) ?? (separate ? null : num(r.value)), metric)}</td>
          <td>${fmtValue(num(r.stable), metric)}</td>
          ${separate ? html`<td>${fmt.value(r.value)}</td>` : null}
          <td>${typeof r.samples === "object" && r.samples ? Object.values(r.samples).join(" / ") : r.samples ?? "—"}</td>
          <td>${num(r.evidence) !== null ? r.evidence.toPrecision(3) : "—"}</td>
        </tr>`)}</tbody>
      </table>
    </details>
  </article>`;
}

function Checks({ status, simulated, span }) {
  const checks = Object.entries(status.checks || {});
  const past = status.lastChecks || [];
  return html`<${Section} id="checks" title="Checks">
    ${checks.length
      ? checks.map(([id, c]) => html`<${CheckCard} key=${id} id=${id} check=${c} simulated=${simulated} start=${status.startedAt} span=${span} />`)
      : html`<p class="muted">No check has run in this step yet.</p>`}
    ${past.length
      ? html`<h3>Latest results of every check</h3>
        <table>
          <thead><tr><th scope="col">Check</th><th scope="col">Step</th><th scope="col">Result</th>
            <th scope="col">Candidate</th><th scope="col">Stable</th><th scope="col">Value</th><th scope="col">Note</th></tr></thead>
          <tbody>${past.map((c) => html`<tr>
            <td>${c.metric || c.key}</td><td>${c.step ?? "—"}</td>
            <td>${verdictText(c.verdict || c.result)}</td>
            <td>${fmtValue(num(c.candidate), c.metric)}</td><td>${fmtValue(num(c.stable), c.metric)}</td>
            <td>${fmtValue(num(c.value), c.metric)}</td><td>${c.message || ""}</td></tr>`)}</tbody>
        </table>`
      : null}
  </${Section}>`;
}

function Gates({ status, simulated }) {
  const gates = Object.entries(status.gates || {});
  if (!gates.length) return null;
  return html`<${Section} id="gates" title="Gates">
    <table>
      <thead><tr><th scope="col">Gate</th><th scope="col">At</th><th scope="col">Workflow</th>
        <th scope="col">Result</th><th scope="col">Submitted</th><th scope="col">Message</th></tr></thead>
      <tbody>${gates.map(([k, g]) => html`<tr>
        <td>${g.gate || k}</td><td>${g.point || "—"}</td>
        <td>${g.namespace ? `${g.namespace}/` : ""}${g.workflow || "—"}</td>
        <td>${g.result || "running"}${g.phase ? ` (${g.phase})` : ""}</td>
        <td><${When} t=${g.submittedAt} start=${status.startedAt} simulated=${simulated} /></td>
        <td>${g.message || ""}</td></tr>`)}</tbody>
    </table>
  </${Section}>`;
}

// status.capacity.gpuHours are those held up to its `at`; its `gpus` are held since (the
// controller writes the record when a count changes, not as time passes)
function hoursNow(cap, now = Date.now()) {
  const hours = num(cap.gpuHours);
  if (hours === null) return "—";
  const at = ms(cap.at);
  const since = at === null ? 0 : Math.max(0, now - at) / 3_600_000;
  return (hours + (num(cap.gpus) ?? 0) * since).toFixed(1);
}

function Capacity({ spec, status }) {
  const cap = status.capacity;
  const gpu = (v) => (spec[v] && spec[v].gpu) || "—";
  return html`<${Section} id="capacity" title="Capacity and cost">
    ${cap
      ? html`<dl class="facts">
          ${["stable", "candidate"].map((role) => html`<div><dt>${role}</dt>
            <dd>${(cap.ready || {})[role] ?? 0} ready of ${(cap.planned || {})[role] ?? 0} planned
              · ${gpu(role)}</dd></div>`)}
          <div><dt>GPUs held</dt><dd>${cap.gpus ?? "—"}${cap.budget !== undefined && cap.budget !== null ? ` of a budget of ${cap.budget}` : ""}</dd></div>
          <div><dt>GPU-hours so far</dt><dd data-testid="gpu-hours">${hoursNow(cap)}</dd></div>
        </dl>`
      : html`<p class="muted">No capacity plan recorded (stable on ${gpu("stable")}, candidate on ${gpu("candidate")}).</p>`}
  </${Section}>`;
}

// the quality judge's reading (spec.quality): the server's words, as `kubectl canary get` says
// them (CanaryDetail.quality), and the pairs it has read
function Quality({ canary, status }) {
  if (!canary.quality) return null;
  const q = status.quality || {};
  const decided = { breach: "answers worse: rolled back", pass: "within the tolerance" }[q.decided]
    || "none yet";
  return html`<${Section} id="quality" title="Quality">
    <p data-testid="quality">${canary.quality}</p>
    <dl class="facts">
      <div><dt>pairs read</dt><dd data-testid="quality-pairs">${num(q.pairs) ?? 0}</dd></div>
      <div><dt>decision</dt><dd data-testid="quality-decision">${decided}</dd></div>
      ${num(q.lost) ? html`<div><dt>lost unread</dt><dd>${q.lost}</dd></div>` : null}
    </dl>
  </${Section}>`;
}

// what the measured profiles expected of the candidate against stable, beside what the checks
// observed: the server's rows (CanaryDetail.expected, as `kubectl canary get` computes them);
// without measured profiles, what the checks observed alone
function Expected({ canary, status }) {
  const pct = (r) => (r === null || r === undefined ? "—" : `${r >= 1 ? "+" : ""}${((r - 1) * 100).toFixed(1)}%`);
  const given = canary.expected;
  if (given && given.rows && given.rows.length) {
    return html`<${Section} id="expected" title="Speed and cost: expected against observed">
      <table data-testid="expected">
        <thead><tr><th scope="col">Measure</th><th scope="col">Expected change</th>
          <th scope="col">Observed change</th><th scope="col">Observed by</th></tr></thead>
        <tbody>${given.rows.map((r) => html`<tr><td>${r.quantity}</td><td>${pct(r.expected)}</td>
          <td>${pct(r.observed)}</td><td>${r.how}</td></tr>`)}</tbody>
      </table>
      <p class="muted">The candidate against stable (more is slower for a latency, dearer for a
        cost). ${given.sources}</p>
    </${Section}>`;
  }
  const rows = [];
  for (const [id, c] of Object.entries(status.checks || {})) {
    const cand = num(c.candidate);
    const stab = num(c.stable);
    if (cand === null || stab === null || stab === 0) continue;
    rows.push({ metric: c.metric, observed: cand / stab, id });
  }
  if (!rows.length) return null;
  return html`<${Section} id="expected" title="Speed: the candidate against stable">
    <table>
      <thead><tr><th scope="col">Measure</th><th scope="col">Observed change</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr><td>${r.metric}</td><td>${pct(r.observed)}</td></tr>`)}</tbody>
    </table>
    <p class="muted">The candidate's value over stable's, as the latest check measured them
      (more is slower for a latency). No measured profile of both variants, so nothing is
      expected.</p>
  </${Section}>`;
}

function Events({ events }) {
  return html`<${Section} id="events" title="Events">
    ${events === null
      ? html`<p class="muted">Loading…</p>`
      : events.error
      ? html`<p class="muted">${events.error}</p>`
      : events.items.length === 0
      ? html`<p class="muted">${events.why || "No Events."}</p>`
      : html`<table>
          <thead><tr><th scope="col">Type</th><th scope="col">Reason</th><th scope="col">Object</th>
            <th scope="col">Last seen</th><th scope="col">Count</th><th scope="col">Message</th></tr></thead>
          <tbody>${events.items.map((e) => html`<tr class=${e.type === "Warning" ? "warning" : ""}>
            <td>${e.type}</td><td>${e.reason}</td><td>${e.object || ""}</td>
            <td><time datetime=${e.lastTimestamp || ""} title=${clock(e.lastTimestamp)}>${age(e.lastTimestamp)} ago</time></td>
            <td class="num">${e.count ?? 1}</td><td>${e.message}</td></tr>`)}</tbody>
        </table>`}
  </${Section}>`;
}

function History({ status, simulated }) {
  const history = [...(status.history || [])].reverse();
  return html`<${Section} id="history" title="History">
    ${history.length
      ? html`<table data-testid="history">
          <thead><tr><th scope="col">When</th><th scope="col">What</th><th scope="col">Step</th>
            <th scope="col">Weight</th><th scope="col">Details</th></tr></thead>
          <tbody>${history.map((e) => html`<tr>
            <td><${When} t=${e.time} start=${status.startedAt} simulated=${simulated} /></td>
            <td>${eventText(e.type)}</td><td class="num">${e.step}</td><td class="num">${e.weight}%</td>
            <td>${e.message}</td></tr>`)}</tbody>
        </table>`
      : html`<p class="muted">Nothing has happened yet.</p>`}
  </${Section}>`;
}

function Tree({ items }) {
  return html`<ul class="tree">${items.map((o) => html`<li>
    <strong>${o.kind}</strong> ${o.name}${o.role ? html` <span class="muted">(${o.role})</span>` : null}${" "}
    · <span class=${`health health-${(o.health || "").toLowerCase()}`}>${o.health}</span>
    ${o.wanted !== null && o.wanted !== undefined ? html` · ${o.ready ?? 0} of ${o.wanted} ready` : null}
    ${o.detail ? html` <span class="muted">— ${o.detail}</span>` : null}
    ${o.children && o.children.length ? html`<${Tree} items=${o.children} />` : null}
  </li>`)}</ul>`;
}

function Objects({ objects }) {
  if (!objects || objects.error || !objects.items) return null;
  const w = objects.weights;
  const pair = (v) => `stable ${v.stable}%, candidate ${v.candidate}%${v.mirror ? " (mirrored)" : ""}`;
  return html`<${Section} id="objects" title="What it runs">
    ${objects.items.length ? html`<${Tree} items=${objects.items} />` : html`<p class="muted">${objects.note || "No objects."}</p>`}
    ${w && w.set
      ? html`<p data-testid="weights">Traffic set by the rollout: ${pair(w.set)}.
          ${w.actual ? ` The route holds now: ${pair(w.actual)}${w.source ? ` (${w.source})` : ""}.` : w.why ? ` ${w.why}` : ""}</p>`
      : null}
  </${Section}>`;
}

export function DetailPage({ ns, name, fromStream, version }) {
  const [canary, setCanary] = useState(null);
  const [problem, setProblem] = useState(null);
  const [events, setEvents] = useState(null);
  const [objects, setObjects] = useState(null);
  const [tick, setTick] = useState(0);

  const reload = () => setTick((t) => t + 1);
  // Events and the objects follow a change too, at most once a second
  const pending = useRef(null);
  const refreshAround = () => {
    if (pending.current) return;
    pending.current = setTimeout(() => {
      pending.current = null;
      api.events(ns, name).then(setEvents, () => {});
      api.objects(ns, name).then(setObjects, () => {});
    }, 1000);
  };
  useEffect(() => () => clearTimeout(pending.current), []);

  useEffect(() => {
    api.get(ns, name).then(
      (c) => {
        setCanary(c);
        setProblem(null);
      },
      (err) => setProblem(err.status === 404 ? `No canary ${ns}/${name}.` : err.message),
    );
    api.events(ns, name).then(setEvents, (err) =>
      setEvents({ error: err.status === 404 ? "This server does not list Events." : err.message }),
    );
    api.objects(ns, name).then(setObjects, (err) => setObjects({ error: err.message }));
  }, [ns, name, tick]);

  // live: an upsert carries the whole canary; a polled summary only tells us to fetch again
  useEffect(() => {
    if (!fromStream || !canary) return;
    if (fromStream.resourceVersion === canary.resourceVersion) return;
    if (fromStream.status) setCanary(fromStream);
    else reload();
    refreshAround();
  }, [version]);

  useEffect(() => {
    if (canary) document.getElementById("main")?.focus({ preventScroll: true });
  }, [canary === null]);

  if (problem) {
    return html`<main id="main" tabindex="-1"><p><a href="#/">All canaries</a></p>
      <p class="alert" role="alert">${problem}</p></main>`;
  }
  if (!canary) return html`<main id="main" tabindex="-1"><p role="status">Loading…</p></main>`;
  const status = canary.status || {};
  const spec = canary.spec || {};
  // a simulated canary's time scale (its spec's clock runs that much faster), else false
  const simulated = canary.simulated ? canary.timeScale || 1 : false;
  const steps = (spec.steps || []).length;
  const span = stageSpan(spec, status, simulated);

  return html`<main id="main" tabindex="-1" data-canary=${`${ns}/${name}`}>
    <nav aria-label="Breadcrumb"><a href="#/">All canaries</a></nav>
    <h1>${name} <span class="muted ns">in ${ns}</span></h1>
    <div class="summary">
      <span data-testid="phase"><${Badge} phase=${canary.phase} /></span>
      <span>step <strong data-testid="step">${canary.step ?? "—"}</strong>${steps ? ` of ${steps}` : ""}</span>
      <span>candidate weight <strong data-testid="weight">${canary.weight ?? 0}%</strong></span>
      <span>${canary.stable || "?"} → ${canary.candidate || "?"}</span>
      ${status.stageStartedAt ? html`<span>in this step for ${duration((ms(status.lastEvaluation) ?? Date.now()) / 1000 - secs(status.stageStartedAt))}</span>` : null}
    </div>
    ${simulated
      ? html`<p class="notice" data-testid="simulated">A simulated canary (canaryctl up): the spec's
          clock runs ${simulated}× faster than real time, so each time is shown in your zone
          (${timeZone()}) and, in brackets, as the spec's time since the rollout began.</p>`
      : html`<p class="muted small">Times are in your zone, ${timeZone()}.</p>`}
    <${Reason} status=${status} />
    ${status.waiting ? html`<p class="notice">Waiting: ${typeof status.waiting === "string" ? status.waiting : JSON.stringify(status.waiting)}</p>` : null}
    ${(status.warnings || []).map((w) => html`<p class="alert" role="alert">${w.type}: ${w.message}${w.count > 1 ? ` (${w.count} times)` : ""}</p>`)}
    <${Actions} canary=${canary} onDone=${reload} />
    <${Timeline} spec=${spec} status=${status} simulated=${simulated} span=${span} />
    <${Checks} status=${status} simulated=${simulated} span=${span} />
    <${Gates} status=${status} simulated=${simulated} />
    <${Quality} canary=${canary} status=${status} />
    <${Capacity} spec=${spec} status=${status} />
    <${Expected} canary=${canary} status=${status} />
    <${Objects} objects=${objects} />
    <${Events} events=${events} />
    <${History} status=${status} simulated=${simulated} />
    <p class="muted small">Last evaluated <${When} t=${status.lastEvaluation} start=${status.startedAt} simulated=${simulated} />
      ${" "}(${age(status.lastEvaluation)} ago).</p>
  </main>`;
}
