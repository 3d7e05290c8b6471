// The dashboard's entry: takes the token from the URL fragment, keeps every canary in one store fed
// by the live stream (api.watch), and routes between the list (#/) and one canary
// (#/canary/NAMESPACE/NAME) with the URL fragment, so the back button and links work.
import { render } from "preact";
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import { api, takeTokenFromUrl, token, watch } from "./api.js";
import { ListPage } from "./list.js";
import { DetailPage } from "./detail.js";

takeTokenFromUrl();

function route() {
  const m = window.location.hash.match(/^#\/canary\/([^/]+)\/([^/]+)$/);
  if (m) return { page: "detail", ns: decodeURIComponent(m[1]), name: decodeURIComponent(m[2]) };
  const one = window.location.hash.match(/^#\/ns\/([^/]+)$/);
  if (one) return { page: "list", scope: decodeURIComponent(one[1]) };
  return { page: "list", scope: "" };
}

// A user who may not list every namespace names one: its list (#/ns/NAME) is watched instead.
function NamespaceForm() {
  const [value, setValue] = useState("");
  const submit = (e) => {
    e.preventDefault();
    if (value.trim()) window.location.hash = `#/ns/${encodeURIComponent(value.trim())}`;
  };
  return html`<form class="namespace-form" onSubmit=${submit} data-testid="namespace-form">
    <label for="scope">Show the canaries of one namespace</label>
    <input id="scope" autocomplete="off" value=${value}
      onInput=${(e) => setValue(e.currentTarget.value)} />
    <button type="submit">Show</button>
  </form>`;
}

function SignIn({ problem, onToken }) {
  const [value, setValue] = useState("");
  const submit = (e) => {
    e.preventDefault();
    if (value.trim()) onToken(value.trim());
  };
  return html`<main id="main" class="signin">
    <h1>Canaries</h1>
    ${problem && html`<p class="alert" role="alert">${problem}</p>`}
    <form onSubmit=${submit}>
      <label for="token">Access token</label>
      <p class="hint" id="token-hint">
        The bearer token of the controller's API. The command that started this dashboard printed a
        link that signs you in.
      </p>
      <input id="token" type="password" autocomplete="off" aria-describedby="token-hint"
        value=${value} onInput=${(e) => setValue(e.currentTarget.value)} />
      <button type="submit">Sign in</button>
    </form>
  </main>`;
}

const LIVE_TEXT = {
  connecting: "connecting…",
  live: "live",
  polling: "updating every 2 s",
  reconnecting: "connection lost, reconnecting…",
  error: "not connected",
};

function App() {
  const [where, setWhere] = useState(route());
  // the namespace watched ("" every one the caller may list); a canary's page keeps the list's
  const [scope, setScope] = useState(where.scope || "");
  const [signedIn, setSignedIn] = useState(Boolean(token.get()));
  const [problem, setProblem] = useState(null);
  const [who, setWho] = useState(null);
  const [items, setItems] = useState(null); // Map key -> summary or detail
  const [live, setLive] = useState("connecting");
  const [version, setVersion] = useState(0);

  useEffect(() => {
    const onHash = () => {
      const next = route();
      setWhere(next);
      if (next.page === "list") setScope(next.scope);
    };
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  useEffect(() => {
    if (!signedIn) return undefined;
    let store = new Map();
    setProblem(null);
    setItems(null);
    api.whoami().then(setWho, () => setWho(null));
    const stop = watch(
      (kind, data) => {
        if (kind === "snapshot") {
          // the load benchmark (bench/dashboard_load.py) splits the server's time from ours
          if (!performance.getEntriesByName("canaries-received").length) {
            performance.mark("canaries-received");
          }
          store = new Map(data.items.map((c) => [`${c.namespace}/${c.name}`, c]));
        } else if (kind === "upsert") {
          store = new Map(store);
          store.set(`${data.namespace}/${data.name}`, data);
        } else if (kind === "delete") {
          store = new Map(store);
          store.delete(`${data.namespace}/${data.name}`);
        } else {
          return;
        }
        setItems(store);
        setVersion((v) => v + 1);
      },
      (state, err) => {
        setLive(state);
        if (err && (err.status === 401 || err.status === 403) && state === "error") {
          if (err.status === 401) {
            token.clear();
            setSignedIn(false);
          }
          setProblem(
            err.status === 401
              ? "The token was not accepted: sign in again."
              : scope
                ? `You may not list the canaries of namespace ${scope}: ${err.message}`
                : `You may not list canaries in every namespace: ${err.message}`,
          );
        }
      },
      scope,
    );
    return stop;
  }, [signedIn, scope]);

  useEffect(() => {
    document.title =
      where.page === "detail" ? `${where.name} · Canaries` : "Canaries";
  }, [where]);

  if (!signedIn) {
    return html`<${SignIn} problem=${problem} onToken=${(t) => {
      token.set(t);
      setProblem(null);
      setSignedIn(true);
    }} />`;
  }

  return html`
    <a class="skip" href="#main" onClick=${(e) => {
      e.preventDefault();
      document.getElementById("main")?.focus();
    }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/">Canaries</a>
      <span class=${`live live-${live}`} role="status" aria-live="polite">
        <span class="dot" aria-hidden="true"></span>${LIVE_TEXT[live] || live}
      </span>
      <span class="who">${who ? `signed in as ${who.user}` : ""}</span>
      <button type="button" class="link" onClick=${() => {
        token.clear();
        setSignedIn(false);
      }}>Sign out</button>
    </header>
    ${problem && html`<p class="alert" role="alert">${problem}</p>`}
    ${problem && where.page === "list" ? html`<${NamespaceForm} />` : null}
    ${scope && where.page === "list"
      ? html`<p class="muted" data-testid="scope">Namespace ${scope} only ·
          <a href="#/">every namespace</a></p>`
      : null}
    ${where.page === "detail"
      ? html`<${DetailPage} key=${`${where.ns}/${where.name}`} ns=${where.ns} name=${where.name}
          fromStream=${items && items.get(`${where.ns}/${where.name}`)} version=${version} />`
      : problem
        ? null
        : html`<${ListPage} items=${items} />`}
  `;
}

render(html`<${App} />`, document.getElementById("app"));
