// Plain words for the status's codes: phases, events and verdicts as a person says them.

export const PHASES = {
  "": "not picked up yet",
  pending: "waiting to start",
  shadow: "shadow (mirrored traffic)",
  progressing: "progressing",
  holding: "holding",
  gated: "waiting for a gate",
  awaiting_approval: "waiting for approval",
  paused: "paused",
  throttled: "throttled",
  promoted: "promoted",
  rolled_back: "rolled back",
  invalid: "invalid spec",
};

export const phaseText = (phase) => PHASES[phase] ?? phase.replaceAll("_", " ");

// the colour family of a phase badge (CSS classes tone-*)
export function tone(phase) {
  if (phase === "promoted") return "good";
  if (phase === "rolled_back" || phase === "invalid") return "bad";
  if (["paused", "throttled", "holding", "gated", "awaiting_approval"].includes(phase)) {
    return "warn";
  }
  return "info";
}

const EVENTS = {
  StepStarted: "step started",
  Advanced: "advanced",
  Breached: "check failed",
  RolledBack: "rolled back",
  Promoted: "promoted",
  Held: "held",
  Paused: "paused",
  Throttled: "throttled",
  ShadowStarted: "shadow started",
  ShadowPassed: "shadow passed",
  Resumed: "resumed",
  Unthrottled: "no longer throttled",
  Restarted: "restarted",
  GateStarted: "gate started",
  GatePassed: "gate passed",
  GateFailed: "gate failed",
  AwaitingApproval: "waiting for approval",
};

export const eventText = (type) => EVENTS[type] ?? type;

export const VERDICTS = {
  pass: "passing",
  breach: "failing",
  inconclusive: "not enough data",
  error: "could not measure",
};

export const verdictText = (v) => VERDICTS[v] ?? v ?? "—";

export function verdictTone(v) {
  if (v === "pass") return "good";
  if (v === "breach") return "bad";
  return "warn";
}

// which verbs make sense in which phase (the server decides; this only avoids obvious refusals)
export function verbsFor(summary) {
  const phase = summary.phase;
  const done = phase === "promoted" || phase === "rolled_back";
  return {
    pause: !done && summary.paused !== "user" && phase !== "paused",
    resume: phase === "paused",
    promote: !done && phase !== "pending" && phase !== "",
    abort: !done,
    retry: phase === "rolled_back",
  };
}

export const VERB_TEXT = {
  pause: { label: "Pause", ask: "Pause the rollout? Traffic stays where it is until resumed." },
  resume: { label: "Resume", ask: "Resume the rollout from where it paused?" },
  promote: {
    label: "Promote",
    ask: "Promote: end the current step now and move to the next one?",
  },
  "promote-full": {
    label: "Promote fully",
    ask: "Promote fully: send all traffic to the candidate now, skipping the remaining steps?",
  },
  abort: {
    label: "Abort",
    ask: "Abort: roll back now and send all traffic to the stable version?",
  },
  retry: { label: "Retry", ask: "Retry: run the rolled-back candidate's rollout again?" },
};

// a number in the check's units (base units: seconds, fractions)
export function fmtValue(value, metric) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  const m = (metric || "").toLowerCase();
  if (/error|rate|ratio|fraction/.test(m) && Math.abs(value) <= 1) {
    return `${(value * 100).toPrecision(3)}%`;
  }
  if (/latency|ttft|time|seconds|duration/.test(m)) {
    if (Math.abs(value) < 1) return `${(value * 1000).toPrecision(3)} ms`;
    return `${value.toPrecision(3)} s`;
  }
  return Math.abs(value) >= 1000 || Math.abs(value) < 0.01
    ? value.toExponential(2)
    : String(Number(value.toPrecision(4)));
}
