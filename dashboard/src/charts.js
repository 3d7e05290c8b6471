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

// a uPlot chart in a div; rebuilt when `key` changes, data updated in place otherwise
export function Chart({ label, build, data, deps }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const width = Math.max(280, el.clientWidth || 600);
    plot.current = new uPlot(build(colors(), width), data, el);
    const media = window.matchMedia("(prefers-color-scheme: dark)");
    const rebuild = () => {
      plot.current.destroy();
      plot.current = new uPlot(build(colors(), width), data, el);
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
  }, [data]);
  return html`<div class="chart" role="img" aria-label=${label} ref=${box}></div>`;
}

// seconds on the x axis as the viewer's local clock
const timeAxis = { time: true };

export function weightChart(c, width) {
  return {
    width,
    height: 180,
    scales: { x: timeAxis, y: { range: [0, 100] } },
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
  return (c, width) => {
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
    return { width, height: 200, scales: { x: timeAxis }, axes: ax, series };
  };
}

export function evidenceChart(c, width) {
  return {
    width,
    height: 160,
    scales: { x: timeAxis },
    axes: axes(c),
    series: [
      {},
      { label: "evidence", stroke: c.value, width: 2 },
      { label: "decision boundary", stroke: c.limit, width: 1.5, dash: [2, 3],
        points: { show: false } },
    ],
  };
}
