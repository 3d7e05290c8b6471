// Times as people read them: in the viewer's own time zone (Intl), ages in words, and for a
// simulated canary (canaryctl up), the spec's clock as time since the rollout began.

// RFC 3339 (the status, metadata, Events) or unix seconds (an older controller's status) ->
// milliseconds, or null.
export function ms(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number") return Number.isFinite(value) ? value * 1000 : null;
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : t;
}

const full = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "medium",
});
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;

export const timeZone = () => zone;

export function clock(value) {
  const t = ms(value);
  return t === null ? "—" : full.format(new Date(t));
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60 ? ` ${s % 60}s` : ""}`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${m % 60 ? ` ${m % 60}m` : ""}`;
  const d = Math.floor(h / 24);
  return `${d}d${h % 24 ? ` ${h % 24}h` : ""}`;
}

export function age(value, now = Date.now()) {
  const t = ms(value);
  return t === null ? "—" : duration((now - t) / 1000);
}

// "spec time 1h 30m" for a simulated canary (canaryctl up --time-scale N): its times are
// wall-clock, and the spec's clock runs N times faster from the rollout's start.
export function specTime(value, start, scale = 1) {
  const t = ms(value);
  const s = ms(start);
  if (t === null || s === null) return null;
  return `spec time ${duration(Math.max(0, ((t - s) / 1000) * (scale || 1)))}`;
}

const UNITS = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

// a spec's duration ("30s", "1h30m", "500ms", "0"; a number is seconds) in seconds, or null
export function seconds(value) {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value !== "string") return null;
  const text = value.trim();
  if (text === "0") return 0;
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d|w))+$/.test(text)) return null;
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)) {
    total += Number(n) * UNITS[unit];
  }
  return total;
}
