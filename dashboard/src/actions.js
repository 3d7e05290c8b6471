// The verbs on one canary (pause, resume, promote, abort, retry): each asks for confirmation in a
// modal <dialog> (the browser keeps focus inside it; Escape cancels), then shows what the server
// answered: the recorded intent, or its refusal in its own words (403, 404, 409). The verbs are
// offered only once the API says the caller may act (GET .../access: a SubjectAccessReview, or a
// SelfSubjectAccessReview under `kubectl canary dashboard`); a caller who may not sees no verb,
// only the authorizer's reason. When the API cannot tell, the verbs are offered and their own
// answer says.
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { VERB_TEXT, verbsFor } from "./words.js";

export function Actions({ canary, onDone }) {
  const dialog = useRef(null);
  const [verb, setVerb] = useState(null);
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState(null); // {ok, text}
  // {act, reason}: may the caller act at all; undefined: not answered yet; null: not told
  const [access, setAccess] = useState(undefined);
  const allowed = verbsFor(canary);
  const offered = access === null || (access !== undefined && access.act);
  const opener = useRef(null);

  useEffect(() => {
    let live = true;
    api.access(canary.namespace, canary.name).then(
      (a) => live && setAccess(a),
      () => live && setAccess(null), // not told: the verb's own answer will say
    );
    return () => {
      live = false;
    };
  }, [canary.namespace, canary.name]);

  const ask = (v) => (e) => {
    opener.current = e.currentTarget;
    setVerb(v);
    setOutcome(null);
    dialog.current.showModal();
  };
  const close = () => {
    dialog.current.close();
  };
  const confirm = async () => {
    setBusy(true);
    const [path, body] = verb === "promote-full" ? ["promote", { full: true }] : [verb, {}];
    try {
      const result = await api.act(canary.namespace, canary.name, path, body);
      setOutcome({
        ok: true,
        text: `${VERB_TEXT[verb].label}: asked by ${result.intent.user || "you"}; the controller acts on it now.`,
      });
      onDone?.();
    } catch (err) {
      const what = err.status === 403 ? "Not allowed" : err.status === 409 ? "Refused" : "Failed";
      setOutcome({ ok: false, text: `${what} (HTTP ${err.status}): ${err.message}` });
    } finally {
      setBusy(false);
      close();
    }
  };

  // Tab and Shift+Tab wrap around inside the dialog (a modal <dialog> alone lets the focus
  // leave the page after its last button)
  const trap = (e) => {
    if (e.key !== "Tab") return;
    const items = [...dialog.current.querySelectorAll("button:not([disabled])")];
    if (!items.length) return;
    const first = items[0];
    const last = items[items.length - 1];
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  };

  const button = (v, primary) => html`<button type="button" class=${primary ? "" : "secondary"}
    data-verb=${v} disabled=${!allowed[v === "promote-full" ? "promote" : v]} onClick=${ask(v)}>
    ${VERB_TEXT[v].label}</button>`;

  return html`<section class="actions" aria-label="Actions">
    ${offered
      ? html`<div class="buttons">
          ${button("pause")} ${button("resume")} ${button("promote")} ${button("promote-full")}
          ${button("abort")} ${button("retry")}
        </div>`
      : null}
    ${access && !access.act
      ? html`<p class="muted" data-testid="no-access">${`You may not act on this canary: ${access.reason}`}</p>`
      : null}
    ${outcome &&
    html`<p class=${outcome.ok ? "notice" : "alert"} role=${outcome.ok ? "status" : "alert"}
      data-testid="action-outcome">${outcome.text}</p>`}
    <dialog ref=${dialog} aria-labelledby="confirm-title" aria-describedby="confirm-text"
      onKeyDown=${trap} onClose=${() => opener.current?.focus()}>
      <h2 id="confirm-title">${verb ? VERB_TEXT[verb].label : ""} ${canary.name}?</h2>
      <p id="confirm-text">${verb ? VERB_TEXT[verb].ask : ""}</p>
      <p class="muted">${canary.namespace}/${canary.name}, now ${canary.phase || "not started"}.</p>
      <div class="buttons">
        <button type="button" class="secondary" onClick=${close} autofocus>Cancel</button>
        <button type="button" class=${verb === "abort" ? "danger" : ""} data-confirm
          disabled=${busy} onClick=${confirm}>${verb ? VERB_TEXT[verb].label : "OK"}</button>
      </div>
    </dialog>
  </section>`;
}
