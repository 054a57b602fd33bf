// "Keep state": the page's session (protocol v3), one sandbox and interpreter kept between runs.
// Made on the first run with the control on; its id and token live in sessionStorage, so a
// reload of the tab finds it again while it lives (another tab, or a closed one, does not).
// Everything here speaks to POST/GET/DELETE /sessions; main.js decides when.

const SESSION_KEY = "sce.session";
const KEEP_KEY = "sce.keep-state";

function read(key) {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

function write(key, value) {
  try {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch {
    /* storage disabled: the session is kept for this page only */
  }
}

/** Whether "Keep state" was on in this tab. */
export const keepWanted = () => read(KEEP_KEY) === "1";
export const rememberKeep = (on) => write(KEEP_KEY, on ? "1" : null);

/** `/sessions…` on this origin, with the page's ?token= passed on (as for the WebSocket). */
export function sessionsUrl(location, path = "") {
  const token = new URLSearchParams(location.search).get("token");
  return `/sessions${path}${token ? `?token=${encodeURIComponent(token)}` : ""}`;
}

/** The WebSocket URL of a run in `sessionId`: `?session=` lets a balancer pick its server. */
export function withSession(url, sessionId) {
  return `${url}${url.includes("?") ? "&" : "?"}session=${encodeURIComponent(sessionId)}`;
}

/** "expires in 9 min", "expires in 40 s", from an RFC 3339 time. */
export function describeExpiry(expiresAt, now = Date.now()) {
  const at = Date.parse(expiresAt);
  if (!Number.isFinite(at)) return "";
  const s = Math.max(0, Math.round((at - now) / 1000));
  if (s < 90) return `expires in ${s} s`;
  const min = Math.round(s / 60);
  return min < 90 ? `expires in ${min} min` : `expires in ${Math.round(min / 60)} h`;
}

/** The status bar's words for a session: "Session idle · 3 runs · expires in 9 min". */
export function describeSession(info, now = Date.now()) {
  if (!info) return "";
  const parts = [`Session ${info.state || "idle"}`];
  if (Number.isInteger(info.runs)) parts.push(`${info.runs} run${info.runs === 1 ? "" : "s"}`);
  const expiry = describeExpiry(info.expires_at, now);
  if (expiry) parts.push(expiry);
  return parts.join(" · ");
}

export class PageSession {
  constructor(location, fetcher = (...args) => fetch(...args)) {
    this.location = location;
    this.fetch = fetcher;
    this.made = null; // {id, token, runtime, expires_at}
    const stored = read(SESSION_KEY);
    if (stored) {
      try {
        this.made = JSON.parse(stored);
      } catch {
        write(SESSION_KEY, null);
      }
    }
    this.info = null; // the last GET's answer
  }

  get id() {
    return this.made ? this.made.id : null;
  }

  /** The session for a run in `runtime` (null: the default), made now if there is none. */
  async ensure(runtime) {
    if (this.made && (!runtime || this.made.runtime === runtime)) return this.made;
    if (this.made) await this.end(); // another runtime: a new interpreter
    const body = runtime ? { runtime } : {};
    const r = await this.fetch(sessionsUrl(this.location), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await r.json().catch(() => ({}));
    if (r.status !== 201) {
      const error = new Error(answer.error || `the server answered ${r.status}`);
      error.code = answer.code || "internal";
      throw error;
    }
    this.made = { id: answer.id, token: answer.token, runtime: answer.runtime, expires_at: answer.expires_at };
    this.info = { state: "idle", runs: 0, expires_at: answer.expires_at };
    write(SESSION_KEY, JSON.stringify(this.made));
    return this.made;
  }

  /** GET /sessions/{id}: its state now, or null once it has ended (forgotten then). */
  async refresh() {
    if (!this.made) return null;
    const r = await this.fetch(sessionsUrl(this.location, `/${encodeURIComponent(this.made.id)}`), {
      headers: { "X-Session-Token": this.made.token, Accept: "application/json" },
    });
    if (r.status === 404) {
      this.forget();
      return null;
    }
    if (!r.ok) return this.info;
    this.info = await r.json();
    return this.info;
  }

  /** DELETE /sessions/{id} (a run in progress ends as killed), and forget it. */
  async end() {
    const made = this.made;
    this.forget();
    if (!made) return;
    try {
      await this.fetch(sessionsUrl(this.location, `/${encodeURIComponent(made.id)}`), {
        method: "DELETE",
        headers: { "X-Session-Token": made.token },
      });
    } catch {
      /* the server is gone: so is the session */
    }
  }

  /** It ended by itself (session_alive false, or not_found): nothing to delete. */
  forget() {
    this.made = null;
    this.info = null;
    write(SESSION_KEY, null);
  }
}
