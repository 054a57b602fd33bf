// One run over the WebSocket protocol (GET /run, one run a connection), across connections:
// a network drop mid-run is resumed (protocol v2) with the run's token, and frames already seen
// are dropped by their `seq`, so the console gets every frame once and in order.
import { RESUME_DELAYS_MS, SeqGate, reconnectFrame, shouldResume } from "./resume.js";

/** ws: or wss: URL of /run on this origin; a ?token= of the page is passed on. */
export function runSocketUrl(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const token = new URLSearchParams(location.search).get("token");
  return `${scheme}//${location.host}/run${token ? `?token=${encodeURIComponent(token)}` : ""}`;
}

/**
 * Start a run (`firstFrame` a run frame) or watch one (a watch frame). Handlers: onOpen(),
 * onFrame(frame), onReconnecting(attempt), onResumed(), onClose({opened, code, reason, lost}).
 * Frames that are not JSON objects with a string `type` are ignored. `lost` is true when the
 * connection dropped and could not be resumed.
 */
export class RunSession {
  constructor(url, firstFrame, handlers, { delays = RESUME_DELAYS_MS } = {}) {
    this.url = url;
    this.handlers = handlers;
    this.delays = delays;
    this.mode = firstFrame.type === "watch" ? "watch" : "run";
    this.gate = new SeqGate();
    this.opened = false; // any connection of this session opened
    this.ended = false; // exit or error received
    this.userEnded = false; // Stop or close()
    this.killPending = false; // Stop pressed between connections: sent once one opens
    this.closed = false; // for good
    this.reconnecting = false;
    this.attempt = 0;
    this.timer = 0;
    this.id = firstFrame.type === "watch" ? firstFrame.id : null;
    this.token = firstFrame.type === "watch" ? firstFrame.token : null;
    this._connect(firstFrame);
  }

  _connect(firstFrame) {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    let opened = false;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      opened = true;
      this.opened = true;
      this._send(firstFrame);
      if (this.killPending) {
        this.killPending = false;
        this.userEnded = true;
        this._send({ type: "kill" });
      }
      if (this.reconnecting) {
        this.reconnecting = false;
        this.attempt = 0;
        if (this.handlers.onResumed) this.handlers.onResumed();
      } else if (this.handlers.onOpen) {
        this.handlers.onOpen();
      }
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws || typeof event.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!frame || typeof frame !== "object" || typeof frame.type !== "string") return;
      if (!this.gate.accept(frame)) return;
      if (frame.type === "started") {
        if (typeof frame.id === "string") this.id = frame.id;
        if (this.mode === "run" && typeof frame.token === "string") this.token = frame.token;
      } else if (frame.type === "exit" || frame.type === "error") {
        this.ended = true;
      }
      this.handlers.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      const canResume = Boolean(this.id && this.token && this.gate.sawStarted);
      const dropped = { code: opened ? event.code : 1006, ended: this.ended, userEnded: this.userEnded, canResume };
      if (shouldResume(dropped) && (opened || this.reconnecting)) {
        if (this.attempt < this.delays.length) {
          this._retry();
          return;
        }
        this._finish({ opened: true, code: event.code, reason: event.reason, lost: true });
        return;
      }
      this._finish({
        opened: this.opened,
        code: event.code,
        reason: event.reason,
        lost: this.reconnecting,
      });
    });
  }

  _retry() {
    const delay = this.delays[this.attempt];
    this.attempt += 1;
    this.reconnecting = true;
    if (this.handlers.onReconnecting) this.handlers.onReconnecting(this.attempt);
    this.timer = setTimeout(() => {
      this.timer = 0;
      if (this.closed) return;
      this._connect(reconnectFrame(this.mode, { id: this.id, token: this.token, after: this.gate.last }));
    }, delay);
  }

  _finish(info) {
    if (this.closed) return;
    this.closed = true;
    this.reconnecting = false;
    clearTimeout(this.timer);
    this.handlers.onClose(info);
  }

  _send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  stdin(data) {
    return this._send({ type: "stdin", data });
  }

  /** Close the program's standard input, after `data` if there is any. */
  eof(data) {
    return this._send(data ? { type: "stdin", data, eof: true } : { type: "stdin", eof: true });
  }

  kill() {
    if (this.reconnecting) {
      // Between connections: the kill goes out on the next one (if none opens, the server's
      // resume grace ends the program).
      this.killPending = true;
      return true;
    }
    this.userEnded = true;
    if (this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(); // nothing started yet
      return true;
    }
    return this._send({ type: "kill" });
  }

  /** Drop the connection for good (the server then kills a run this page drives). */
  close() {
    this.userEnded = true;
    if (this.reconnecting) {
      this._finish({ opened: true, code: 1000, reason: "", lost: false });
      return;
    }
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.close(1000);
    }
  }
}
