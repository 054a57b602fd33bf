// Resume after a dropped connection (protocol v2, "Resume and watch"): pure pieces.

/** Waits before each resume attempt; after the last one fails the run is given up. */
export const RESUME_DELAYS_MS = Object.freeze([200, 500, 1000, 2000, 4000]);

/** Close code of a connection that ended without a close frame (a network drop). */
export const ABNORMAL_CLOSE = 1006;

/**
 * Keeps frames in order across connections: every frame after `started` carries `seq` (1, 2, …
 * without gaps); a frame at or below the last one seen is a repeat and is dropped, and so is a
 * second `started` (a watcher that reconnects gets the run again from its start).
 */
export class SeqGate {
  constructor() {
    this.last = 0;
    this.sawStarted = false;
  }

  /** True when `frame` is new and should be handled. */
  accept(frame) {
    if (frame.type === "started") {
      if (this.sawStarted) return false;
      this.sawStarted = true;
      return true;
    }
    if (typeof frame.seq !== "number" || !Number.isFinite(frame.seq)) return true; // a v1 server
    if (frame.seq <= this.last) return false;
    this.last = frame.seq;
    return true;
  }
}

/**
 * Whether a closed connection should be resumed: it dropped (no close frame), the run had
 * started and not ended, the page holds what a resume needs, and the user did not stop it.
 */
export function shouldResume({ code, ended, userEnded, canResume }) {
  return code === ABNORMAL_CLOSE && !ended && !userEnded && canResume;
}

/** The first frame of a new connection to the same run. */
export function reconnectFrame(mode, { id, token, after }) {
  return mode === "watch" ? { type: "watch", id, token } : { type: "resume", id, token, after };
}
