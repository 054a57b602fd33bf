// One run over the WebSocket protocol (see the run protocol: GET /run, one run a connection).

/** ws: or wss: URL of /run on this origin; a ?token= of the page is passed on. */
export function runSocketUrl(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const token = new URLSearchParams(location.search).get("token");
  return `${scheme}//${location.host}/run${token ? `?token=${encodeURIComponent(token)}` : ""}`;
}

/**
 * Start a run. Handlers: onOpen(), onFrame(frame), onClose({opened, code, reason}).
 * Frames that are not JSON objects with a string `type` are ignored.
 */
export class RunSession {
  constructor(url, runFrame, { onOpen, onFrame, onClose }) {
    this.opened = false;
    this.closed = false;
    this.ws = new WebSocket(url);
    this.ws.addEventListener("open", () => {
      this.opened = true;
      this._send(runFrame);
      if (onOpen) onOpen();
    });
    this.ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame === "object" && typeof frame.type === "string") onFrame(frame);
    });
    this.ws.addEventListener("close", (event) => {
      this.closed = true;
      onClose({ opened: this.opened, code: event.code, reason: event.reason });
    });
  }

  _send(frame) {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
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
    if (this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(); // nothing started yet
      return true;
    }
    return this._send({ type: "kill" });
  }

  /** Drop the connection (the server then kills the program). */
  close() {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.close(1000);
    }
  }
}
