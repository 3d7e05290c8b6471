// The dashboard's only door to the server: the controller's HTTP API (/api/v1), with the bearer
// token the page was given (URL fragment #token=..., once, or the sign-in form). Owns the token's
// storage, JSON requests, the verbs, and the live stream of /api/v1/watch/canaries (read with
// fetch, since EventSource cannot send the Authorization header), reconnecting with backoff, or
// polling the list when the server has no watch route.

const KEY = "canary-dashboard-token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function takeTokenFromUrl() {
  const hash = window.location.hash || "";
  const m = hash.match(/(?:^#|&)token=([^&]*)/);
  if (!m) return;
  sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
  // the token leaves the address bar (and the history) at once
  history.replaceState(null, "", window.location.pathname + window.location.search + "#/");
}

export const token = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const t = token.get();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function reason(res) {
  try {
    const body = await res.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
    return JSON.stringify(body);
  } catch {
    return res.statusText || `HTTP ${res.status}`;
  }
}

export async function getJson(path) {
  const res = await fetch(path, { headers: headers() });
  if (!res.ok) throw new ApiError(res.status, await reason(res));
  return res.json();
}

const enc = encodeURIComponent;
export const canaryPath = (ns, name) => `/api/v1/namespaces/${enc(ns)}/canaries/${enc(name)}`;

export const api = {
  whoami: () => getJson("/api/v1/whoami"),
  list: () => getJson("/api/v1/canaries"),
  get: (ns, name) => getJson(canaryPath(ns, name)),
  events: (ns, name) => getJson(`${canaryPath(ns, name)}/events`),
  objects: (ns, name) => getJson(`${canaryPath(ns, name)}/objects`),
  access: (ns, name) => getJson(`${canaryPath(ns, name)}/access`),
  async act(ns, name, verb, body) {
    const res = await fetch(`${canaryPath(ns, name)}/${verb}`, {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(body || {}),
    });
    if (!res.ok) throw new ApiError(res.status, await reason(res));
    return res.json();
  },
};

// Parse a text/event-stream body: yields {event, data} for each message (comments skipped).
async function* events(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "event") event = val;
        else if (field === "data") data.push(val);
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}

// Follow every canary (of one namespace when `namespace` is given): onMessage(kind, payload) with
// kind snapshot | upsert | delete; onState(text) tells the page whether it is live. Returns stop().
export function watch(onMessage, onState, namespace) {
  const query = namespace ? `?namespace=${enc(namespace)}` : "";
  let stopped = false;
  let controller = null;
  let delay = 500;
  let pollTimer = null;

  async function poll() {
    try {
      const list = await (namespace ? getJson(`/api/v1/namespaces/${enc(namespace)}/canaries`) : api.list());
      onMessage("snapshot", list);
      onState("polling");
    } catch (err) {
      onState("error", err);
    }
    if (!stopped) pollTimer = setTimeout(poll, 2000);
  }

  async function connect() {
    controller = new AbortController();
    try {
      const res = await fetch(`/api/v1/watch/canaries${query}`, {
        headers: headers({ Accept: "text/event-stream" }),
        signal: controller.signal,
      });
      if (res.status === 404 || res.status === 405) return poll(); // a server without the watch
      if (!res.ok) throw new ApiError(res.status, await reason(res));
      onState("live");
      delay = 500;
      for await (const msg of events(res.body)) {
        onMessage(msg.event, JSON.parse(msg.data));
      }
      throw new ApiError(0, "the server closed the stream");
    } catch (err) {
      if (stopped) return;
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        onState("error", err);
        return;
      }
      onState("reconnecting", err);
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    }
  }

  connect();
  return () => {
    stopped = true;
    if (controller) controller.abort();
    if (pollTimer) clearTimeout(pollTimer);
  };
}
