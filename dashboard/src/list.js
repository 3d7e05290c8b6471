// The page of all canaries: phase, step, weight, age, last decision and alerts of each, filtered
// by namespace, phase and name, 50 rows a page (a thousand canaries render as fast as fifty).
import { html } from "htm/preact";
import { useMemo, useState } from "preact/hooks";
import { age, clock, ms } from "./time.js";
import { eventText, phaseText, tone } from "./words.js";

const PAGE = 50;

export const href = (c) =>
  `#/canary/${encodeURIComponent(c.namespace)}/${encodeURIComponent(c.name)}`;

export function Badge({ phase }) {
  return html`<span class=${`badge tone-${tone(phase)}`}>${phaseText(phase)}</span>`;
}

function Decision({ d }) {
  if (!d) return html`<span class="muted">none yet</span>`;
  return html`<span title=${d.message || ""}>${eventText(d.type)}</span>
    <span class="muted"> · <time datetime=${new Date(ms(d.time) || 0).toISOString()}
      title=${clock(d.time)}>${age(d.time)} ago</time></span>`;
}

export function ListPage({ items }) {
  const [ns, setNs] = useState("");
  const [phase, setPhase] = useState("");
  const [text, setText] = useState("");
  const [page, setPage] = useState(0);

  const all = useMemo(
    () =>
      items
        ? [...items.values()].sort(
            (a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name),
          )
        : [],
    [items],
  );
  const namespaces = useMemo(() => [...new Set(all.map((c) => c.namespace))].sort(), [all]);
  const phases = useMemo(() => [...new Set(all.map((c) => c.phase))].sort(), [all]);
  const shown = all.filter(
    (c) =>
      (!ns || c.namespace === ns) &&
      (!phase || c.phase === phase) &&
      (!text || c.name.includes(text.trim())),
  );
  const pages = Math.max(1, Math.ceil(shown.length / PAGE));
  const at = Math.min(page, pages - 1);
  const rows = shown.slice(at * PAGE, at * PAGE + PAGE);
  const filter = (set) => (e) => {
    set(e.currentTarget.value);
    setPage(0);
  };

  return html`<main id="main" tabindex="-1">
    <h1>Canaries</h1>
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <label>Namespace
        <select value=${ns} onChange=${filter(setNs)}>
          <option value="">all</option>
          ${namespaces.map((n) => html`<option value=${n}>${n}</option>`)}
        </select>
      </label>
      <label>Phase
        <select value=${phase} onChange=${filter(setPhase)}>
          <option value="">all</option>
          ${phases.map((p) => html`<option value=${p}>${phaseText(p)}</option>`)}
        </select>
      </label>
      <label>Name contains
        <input type="search" value=${text} onInput=${filter(setText)} />
      </label>
    </form>
    ${items === null
      ? html`<p role="status">Loading…</p>`
      : html`
        <p class="count" role="status">
          ${shown.length} of ${all.length} canar${all.length === 1 ? "y" : "ies"}
        </p>
        <div class="scroll">
        <table class="list" data-testid="canary-list">
          <caption class="sr-only">Canaries, ${shown.length} shown</caption>
          <thead><tr>
            <th scope="col">Name</th><th scope="col">Namespace</th><th scope="col">Phase</th>
            <th scope="col">Step</th><th scope="col">Weight</th><th scope="col">Age</th>
            <th scope="col">Last decision</th><th scope="col">Alerts</th>
          </tr></thead>
          <tbody>
            ${rows.map(
              (c) => html`<tr key=${`${c.namespace}/${c.name}`} data-canary=${`${c.namespace}/${c.name}`}>
                <th scope="row"><a href=${href(c)}>${c.name}</a>
                  ${c.simulated ? html` <span class="tag">simulated</span>` : null}</th>
                <td>${c.namespace}</td>
                <td><${Badge} phase=${c.phase} />${c.paused ? html` <span class="muted">(${c.paused})</span>` : null}</td>
                <td class="num">${c.step ?? "—"}</td>
                <td class="num">${c.weight === null || c.weight === undefined ? "—" : `${c.weight}%`}</td>
                <td>${c.createdAt ? html`<time datetime=${c.createdAt} title=${clock(c.createdAt)}>${age(c.createdAt)}</time>` : "—"}</td>
                <td><${Decision} d=${c.lastDecision} /></td>
                <td class="num">${c.warnings ? html`<span class="badge tone-warn">${c.warnings}</span>` : html`<span class="muted">0</span>`}</td>
              </tr>`,
            )}
          </tbody>
        </table>
        </div>
        ${pages > 1 &&
        html`<nav class="pager" aria-label="Pages">
          <button type="button" disabled=${at === 0} onClick=${() => setPage(at - 1)}>Previous</button>
          <span>page ${at + 1} of ${pages}</span>
          <button type="button" disabled=${at >= pages - 1} onClick=${() => setPage(at + 1)}>Next</button>
        </nav>`}
      `}
  </main>`;
}
