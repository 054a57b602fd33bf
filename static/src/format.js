// Words for the status bar: pure functions, tested with node's test runner.

const SIGNALS = {
  1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
  8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
  14: "SIGALRM", 15: "SIGTERM", 24: "SIGXCPU", 25: "SIGXFSZ", 31: "SIGSYS",
};

/** "850 ms", "3.4 s", "12 s", "2 min 5 s". */
export function formatDuration(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${(Math.floor(s * 100) / 100).toFixed(2)} s`;
  if (s < 60) return `${(Math.floor(s * 10) / 10).toFixed(1)} s`;
  const whole = Math.floor(s);
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

/** A running timer: "0.0 s", "12.3 s", "1:05". */
export function formatTimer(ms) {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${(Math.floor(s * 10) / 10).toFixed(1)} s`;
  const whole = Math.floor(s);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

/** Seconds as people write them: 10 → "10", 2.5 → "2.5". */
export function formatSeconds(s) {
  if (typeof s !== "number" || !Number.isFinite(s)) return "?";
  return String(Math.round(s * 100) / 100);
}

/** 1000000 → "1 MB", 65536 → "64 KiB", 1500000 → "1.5 MB", 512 → "512 B". */
export function formatBytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "?";
  const dec = [[1e9, "GB"], [1e6, "MB"], [1e3, "KB"]].find(([size]) => n >= size);
  if (!dec) return `${n} B`;
  if (n % dec[0] === 0) return `${n / dec[0]} ${dec[1]}`;
  const bin = [[2 ** 30, "GiB"], [2 ** 20, "MiB"], [2 ** 10, "KiB"]].find(([size]) => n >= size);
  if (bin && n % bin[0] === 0) return `${n / bin[0]} ${bin[1]}`;
  return `${Number((n / dec[0]).toFixed(1))} ${dec[1]}`;
}

/**
 * The outcome of an `exit` frame in words, without the duration.
 * @param {object} exit the exit frame
 * @param {object|null} limits `started.limits`, if a started frame came
 */
export function describeExit(exit, limits) {
  const lim = limits || {};
  switch (exit.reason) {
    case "exit": {
      if (typeof exit.exit_code !== "number") return "Exited";
      let signal = exit.signal;
      if (!signal && exit.exit_code > 128 && SIGNALS[exit.exit_code - 128]) signal = SIGNALS[exit.exit_code - 128];
      return signal ? `Exited with code ${exit.exit_code} (${signal})` : `Exited with code ${exit.exit_code}`;
    }
    case "timeout":
      return typeof lim.timeout_s === "number" ? `Timed out after ${formatSeconds(lim.timeout_s)} s` : "Timed out";
    case "oom":
      return typeof lim.memory_mb === "number" ? `Out of memory (${lim.memory_mb} MB limit)` : "Out of memory";
    case "output_limit":
      return typeof lim.output_bytes === "number"
        ? `Output limit reached (${formatBytes(lim.output_bytes)})`
        : "Output limit reached";
    case "killed":
      return "Stopped";
    default:
      return `Ended (${String(exit.reason)})`;
  }
}

/** "ok" for a clean exit, "warn" for the other outcomes. */
export function exitTone(exit) {
  if (exit.reason === "exit") return exit.exit_code === 0 ? "ok" : "warn";
  if (exit.reason === "killed") return "neutral";
  return "warn";
}

const ERROR_TITLES = {
  busy: "The server is busy",
  unavailable: "The sandbox is unavailable",
  internal: "Internal server error",
  bad_message: "The server rejected the request",
  code_too_large: "The program is too large",
  message_too_large: "The message is too large",
};

/** An `error` frame in plain words. */
export function describeError(code, message) {
  const title = ERROR_TITLES[code] || `Error (${code || "unknown"})`;
  const detail = typeof message === "string" ? message.trim() : "";
  if (!detail) return title;
  return `${title}: ${detail}`;
}

/** A connection that ended without `exit` or `error`. */
export function describeClose(opened, code, reason) {
  if (!opened) return "Could not connect to the server";
  const why = reason ? `: ${reason}` : "";
  return `Connection closed before the run finished (code ${code}${why})`;
}

/** "Limits: 10 s · 128 MB · 1 MB output · 64 processes" */
export function describeLimits(limits) {
  if (!limits) return "";
  const parts = [];
  if (typeof limits.timeout_s === "number") parts.push(`${formatSeconds(limits.timeout_s)} s`);
  if (typeof limits.memory_mb === "number") parts.push(`${limits.memory_mb} MB`);
  if (typeof limits.output_bytes === "number") parts.push(`${formatBytes(limits.output_bytes)} output`);
  if (typeof limits.pids === "number") parts.push(`${limits.pids} processes`);
  return parts.length ? `Limits: ${parts.join(" · ")}` : "";
}

/** Bytes of memory as the page shows them: MiB labelled "MB", as the limits are (128 MB). */
export function formatMemory(bytes) {
  if (typeof bytes !== "number" || !Number.isFinite(bytes) || bytes < 0) return "";
  const mib = bytes / 2 ** 20;
  if (mib < 1) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  if (mib < 10) return `${(Math.round(mib * 10) / 10).toString()} MB`;
  return `${Math.round(mib)} MB`;
}

/** CPU time: 840 → "0.84 s", 12 → "0.01 s", 61_300 → "61.3 s". */
export function formatCpu(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return "";
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 100) return `${s.toFixed(1)} s`;
  return `${Math.round(s)} s`;
}

/** The resources an `exit` frame reports: "0.84 s CPU · 61 MB peak"; "" when it reports none. */
export function describeResources(exit) {
  const parts = [];
  const cpu = formatCpu(exit && exit.cpu_ms);
  if (cpu) parts.push(`${cpu} CPU`);
  const peak = formatMemory(exit && exit.memory_peak_bytes);
  if (peak) parts.push(`${peak} peak`);
  return parts.join(" · ");
}

/** Share of the memory limit a `stats` frame reports, 0..1, or null when it cannot tell. */
export function memoryShare(stats) {
  const used = stats && stats.memory_bytes;
  const limit = stats && stats.memory_limit_bytes;
  if (typeof used !== "number" || typeof limit !== "number" || !(limit > 0) || used < 0) return null;
  return Math.min(1, used / limit);
}

/** Memory past this share of the limit looks like a warning. */
export const MEMORY_WARN_SHARE = 0.8;

/** The meter's words for a `stats` frame: "61 MB / 128 MB · 0.84 s CPU". */
export function describeStats(stats) {
  if (!stats) return "";
  const parts = [];
  const used = formatMemory(stats.memory_bytes);
  const limit = formatMemory(stats.memory_limit_bytes);
  if (used) parts.push(limit ? `${used} / ${limit}` : used);
  const cpu = formatCpu(stats.cpu_ms);
  if (cpu) parts.push(`${cpu} CPU`);
  return parts.join(" · ");
}
