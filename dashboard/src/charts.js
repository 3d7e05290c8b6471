// The time-series charts (uPlot): the weight over time from the status's history, and each check's
// values (candidate, stable, the compared value) against its threshold, and the sequential
// evidence against its boundary. Every chart has a text alternative beside it (a table in the
// page), so the charts are decoration for screen readers (role="img" with a label).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useEffect, useRef } from "preact/hooks";
import { html } from "htm/preact";

function colors() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    fg: v("--fg"),
    grid: v("--grid"),
    candidate: v("--candidate"),
    stable: v("--stable"),
    value: v("--value"),
    limit: v("--bad"),
    accent: v("--accent"),
  };
}

const hm = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const hms = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const dhm = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

// time ticks in the viewer's zone: hours and minutes, with the date when the chart spans days
function timeTicks(u, ticks) {
  const span = (u.scales.x.max ?? 0) - (u.scales.x.min ?? 0);
  const fmt = span > 86400 ? dhm : span < 600 ? hms : hm;
  return ticks.map((t) => fmt.format(new Date(t * 1000)));
}

function axes(c, extra = {}) {
  const base = { stroke: c.fg, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid } };
  return [{ ...base, values: timeTicks, space: 90 }, { ...base, ...extra }];
}

// a uPlot chart in a div; rebuilt when `deps` change, data updated in place otherwise. `span`
// ([min, max] in unix seconds, or null) is the x range it draws when its data spans no time
// (see spanRange). The div carries the x scale drawn (data-x-min, data-x-max) for tests.
export function Chart({ label, build, data, deps, span = null }) {
  const box = useRef(null);
  const plot = useRef(null);
  const spanNow = useRef(span);
  spanNow.current = span;
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const width = Math.max(280, el.clientWidth || 600);
    const make = () => {
      const opts = build(colors(), width, () => spanNow.current);
      const shown = (u, key) => {
        if (key !== "x") return;
        el.dataset.xMin = String(u.scales.x.min);
        el.dataset.xMax = String(u.scales.x.max);
      };
      opts.hooks = { ...opts.hooks, setScale: [...((opts.hooks || {}).setScale || []), shown] };
      return new uPlot(opts, data, el);
    };
    plot.current = make();
    const media = window.matchMedia("(prefers-color-scheme: dark)");
    const rebuild = () => {
      plot.current.destroy();
      plot.current = make();
    };
    media.addEventListener("change", rebuild);
    return () => {
      media.removeEventListener("change", rebuild);
      plot.current.destroy();
      plot.current = null;
    };
  }, deps);
  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [data, span && span[0], span && span[1]]);
  return html`<div class="chart" role="img" aria-label=${label} ref=${box}></div>`;
}

// The x range of every time chart. Data spanning time keeps uPlot's own range: it fits the data.
// One point (or none) has no span of its own, and uPlot alone would stretch the axis over years
// around it; it gets `fallback()` instead (the current step's span, from the page), widened to
// hold the point, never empty.
export function spanRange(fallback) {
  return (u, min, max) => {
    const xs = (u.data && u.data[0]) || [];
    const first = xs.length ? xs[0] : null;
    const last = xs.length ? xs[xs.length - 1] : null;
    if (first !== null && last > first) return [min, max];
    const given = (fallback && fallback()) || [null, null];
    let [lo, hi] = given;
    if (first !== null) {
      lo = lo === null ? first - 30 : Math.min(lo, first);
      hi = hi === null ? first + 30 : Math.max(hi, first);
    }
    if (lo === null || hi === null) return [min, max];
    return hi > lo ? [lo, hi] : [lo, lo + 60];
  };
}

// seconds on the x axis as the viewer's local clock, ranged by spanRange
const timeAxis = (span) => ({ time: true, range: spanRange(span) });

export function weightChart(c, width, span) {
  return {
    width,
    height: 180,
    scales: { x: timeAxis(span), y: { range: [0, 100] } },
    axes: axes(c, { values: (_u, ticks) => ticks.map((t) => `${t}%`) }),
    legend: { show: true },
    series: [
      {},
      {
        label: "candidate weight",
        stroke: c.candidate,
        width: 2,
        fill: `${c.candidate}22`,
        paths: uPlot.paths.stepped({ align: 1 }),
        value: (_u, v) => (v === null ? "—" : `${v}%`),
      },
    ],
  };
}

export function checkChart(fmt, { separate, above, below }) {
  return (c, width, span) => {
    const series = [
      {},
      { label: "candidate", stroke: c.candidate, width: 2, scale: separate ? "raw" : "y",
        value: (_u, v) => fmt.raw(v) },
      { label: "stable", stroke: c.stable, width: 2, dash: [6, 4], scale: separate ? "raw" : "y",
        value: (_u, v) => fmt.raw(v) },
    ];
    if (separate) {
      series.push({ label: "compared (candidate vs stable)", stroke: c.value, width: 2,
        value: (_u, v) => fmt.value(v) });
    }
    if (above !== null && above !== undefined) {
      series.push({ label: "limit: fails above", stroke: c.limit, width: 1.5, dash: [2, 3],
        points: { show: false }, value: (_u, v) => fmt.value(v) });
    }
    if (below !== null && below !== undefined) {
      series.push({ label: "limit: fails below", stroke: c.limit, width: 1.5, dash: [2, 3],
        points: { show: false }, value: (_u, v) => fmt.value(v) });
    }
    const ax = axes(c, { values: (_u, t) => t.map((v) => fmt.value(v)), size: 70 });
    if (separate) {
      ax.push({ scale: "raw", side: 1, stroke: c.fg, grid: { show: false },
        values: (_u, t) => t.map((v) => fmt.raw(v)), size: 70 });
    }
    return { width, height: 200, scales: { x: timeAxis(span) }, axes: ax, series };
  };
}

export function evidenceChart(c, width, span) {
  return {
    width,
    height: 160,
    scales: { x: timeAxis(span) },
    axes: axes(c),
    series: [
      {},
      { label: "evidence", stroke: c.value, width: 2 },
      { label: "decision boundary", stroke: c.limit, width: 1.5, dash: [2, 3],
        points: { show: false } },
    ],
  };
}
