import "./style.css";
import { createEditor } from "./editor.js";
import { OutputConsole } from "./console.js";
import { RunSession, runSocketUrl } from "./client.js";
import { EXAMPLES, findExample } from "./examples.js";
import { codeFromHash, shareUrl } from "./share.js";
import {
  describeClose, describeError, describeExit, describeLimits, exitTone, formatDuration, formatTimer,
} from "./format.js";

const STORAGE_KEY = "sce.code";
const $ = (id) => document.getElementById(id);

const ui = {
  run: $("run"),
  stop: $("stop"),
  examples: $("examples"),
  timeout: $("timeout"),
  share: $("share"),
  sharePanel: $("share-panel"),
  shareLink: $("share-link"),
  shareNote: $("share-note"),
  shareCopy: $("share-copy"),
  shareClose: $("share-close"),
  clear: $("clear"),
  console: $("console"),
  jump: $("jump"),
  stdinForm: $("stdin-form"),
  stdin: $("stdin"),
  eof: $("eof"),
  statusbar: $("statusbar"),
  statusText: $("status-text"),
  statusTimer: $("status-timer"),
  statusLimits: $("status-limits"),
  retry: $("retry"),
};

const isMac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
for (const kbd of document.querySelectorAll("[data-kbd-run]")) kbd.textContent = isMac ? "⌘↵" : "Ctrl ↵";
ui.run.title = `Run (${isMac ? "⌘" : "Ctrl"}+Enter)`;

// --- storage ------------------------------------------------------------------------------

function loadStored() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

function store(code) {
  try {
    localStorage.setItem(STORAGE_KEY, code);
  } catch {
    /* storage disabled or full: the code just won't survive a reload */
  }
}

let saveTimer = 0;
function saveSoon() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => store(editor.getCode()), 250);
}
function saveNow() {
  clearTimeout(saveTimer);
  store(editor.getCode());
}

// --- the starting code: a shared link, ?example=, the last session, or hello --------------

const query = new URLSearchParams(location.search);
let startNote = null;
let initial = codeFromHash(location.hash);
if (initial === null) {
  startNote = "The shared link is damaged: its code could not be read.";
  initial = undefined;
}
const fromLink = initial !== undefined;
if (!fromLink && query.get("example")) initial = findExample(query.get("example"))?.code;
if (initial === undefined) initial = loadStored() ?? EXAMPLES[0].code;
if (fromLink) {
  // The code now lives in the editor (and storage): a reload keeps later edits.
  history.replaceState(null, "", location.pathname + location.search);
}

const editor = createEditor(document.getElementById("editor"), {
  doc: initial,
  label: "Python code",
  onChange: saveSoon,
  onRun: () => startRun(),
});
if (fromLink) store(initial);
addEventListener("pagehide", saveNow);
addEventListener("hashchange", () => {
  const code = codeFromHash(location.hash);
  if (code === undefined) return;
  history.replaceState(null, "", location.pathname + location.search);
  if (code === null) {
    setStatus("The shared link is damaged: its code could not be read.", "error");
    return;
  }
  editor.setCode(code);
  saveNow();
});

const timeoutParam = Number(query.get("timeout"));
if (query.has("timeout") && Number.isFinite(timeoutParam) && timeoutParam > 0) ui.timeout.value = String(timeoutParam);

// --- examples -------------------------------------------------------------------------------

{
  const groups = new Map();
  for (const ex of EXAMPLES) {
    if (!groups.has(ex.group)) {
      const og = document.createElement("optgroup");
      og.label = ex.group;
      groups.set(ex.group, og);
      ui.examples.append(og);
    }
    groups.get(ex.group).append(new Option(ex.title, ex.id));
  }
}
ui.examples.addEventListener("change", () => {
  const ex = findExample(ui.examples.value);
  ui.examples.value = "";
  if (!ex) return;
  editor.setCode(ex.code);
  saveNow();
  editor.focus();
});

// --- console --------------------------------------------------------------------------------

const out = new OutputConsole(ui.console, {
  onStickChange: (stick) => { ui.jump.hidden = stick; },
  onFlush: () => updatePrompting(),
});
ui.jump.addEventListener("click", () => {
  out.scrollToEnd();
  ui.console.focus();
});
ui.clear.addEventListener("click", () => out.clear(Boolean(session)));

// --- status bar -----------------------------------------------------------------------------

let timerId = 0;

function setStatus(text, tone = "idle", { retry = false } = {}) {
  ui.statusText.textContent = text;
  ui.statusbar.dataset.tone = tone;
  ui.retry.hidden = !retry;
}

function startTimer(from) {
  stopTimer();
  const tick = () => { ui.statusTimer.textContent = formatTimer(performance.now() - from); };
  tick();
  timerId = setInterval(tick, 100);
}

function stopTimer() {
  clearInterval(timerId);
  timerId = 0;
  ui.statusTimer.textContent = "";
}

// --- a run ------------------------------------------------------------------------------------

/** @type {RunSession|null} */
let session = null;
let run = null; // {limits, finished, stopRequested, stdinClosed, started}

function setControls() {
  const active = Boolean(session);
  const running = active && run.started && !run.finished;
  ui.run.disabled = active;
  ui.stop.disabled = !active || run.stopRequested;
  const inputOn = running && !run.stdinClosed && !run.stopRequested;
  const hadFocus = document.activeElement === ui.stdin;
  ui.stdin.disabled = !inputOn;
  ui.eof.disabled = !inputOn;
  ui.stdin.placeholder = inputOn
    ? "Type input, Enter to send · Ctrl+D ends input"
    : "Input opens while a program runs";
  if (hadFocus && !inputOn) editor.focus();
  document.body.classList.toggle("is-running", active);
  updatePrompting();
}

function updatePrompting() {
  const on = Boolean(session && run.started && !run.finished && !run.stdinClosed && out.hasOpenLine());
  ui.stdinForm.classList.toggle("prompting", on);
}

function timeoutValue() {
  const v = ui.timeout.valueAsNumber;
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

function startRun() {
  if (session) return;
  saveNow();
  ui.sharePanel.hidden = true;
  const frame = { type: "run", code: editor.getCode() };
  const timeout = timeoutValue();
  if (timeout !== undefined) frame.timeout = timeout;
  out.clear();
  ui.statusLimits.textContent = "";
  run = { limits: null, finished: false, stopRequested: false, stdinClosed: false, started: false };
  const current = new RunSession(runSocketUrl(location), frame, {
    onOpen: () => {
      if (session === current && !run.started) setStatus("Waiting for a sandbox…", "wait");
    },
    onFrame: (f) => { if (session === current) onFrame(f); },
    onClose: (c) => { if (session === current) onClose(c); },
  });
  session = current;
  setStatus("Connecting…", "wait");
  setControls();
}

function onFrame(f) {
  switch (f.type) {
    case "queued":
      if (!run.started && !run.stopRequested) setStatus(`Queued (position ${f.position})`, "wait");
      break;
    case "started":
      run.started = true;
      run.limits = f.limits || null;
      ui.statusLimits.textContent = describeLimits(run.limits);
      if (!run.stopRequested) setStatus("Running", "running");
      startTimer(performance.now());
      setControls();
      break;
    case "stdout":
    case "stderr":
      if (typeof f.data === "string") out.write(f.type, f.data);
      break;
    case "exit": {
      run.finished = true;
      stopTimer();
      const words = describeExit(f, run.limits);
      const took = formatDuration(f.duration_ms);
      const text = took ? `${words} · ${took}` : words;
      setStatus(f.truncated && f.reason !== "output_limit" ? `${text} · output truncated` : text, exitTone(f));
      out.system(text, exitTone(f));
      setControls();
      break;
    }
    case "error": {
      run.finished = true;
      stopTimer();
      const text = describeError(f.code, f.message);
      setStatus(text, "error", { retry: true });
      out.system(text, "error");
      setControls();
      break;
    }
    default:
      break; // a newer server's frame: ignore
  }
}

function onClose({ opened, code, reason }) {
  const ended = run.finished;
  const stopped = run.stopRequested;
  session = null;
  stopTimer();
  if (!ended) {
    if (stopped) {
      setStatus("Stopped", "neutral");
      out.system("Stopped", "neutral");
    } else {
      const text = describeClose(opened, code, reason);
      setStatus(text, "error", { retry: true });
      out.system(text, "error");
    }
  }
  run.finished = true;
  setControls();
}

function stopRun() {
  if (!session || run.stopRequested) return;
  run.stopRequested = true;
  session.kill();
  setStatus("Stopping…", "wait");
  setControls();
}

ui.run.addEventListener("click", () => startRun());
ui.stop.addEventListener("click", () => stopRun());
ui.retry.addEventListener("click", () => startRun());
document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented) return;
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    startRun();
  }
});

// --- standard input ---------------------------------------------------------------------------

ui.stdinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!session || ui.stdin.disabled) return;
  const line = ui.stdin.value;
  if (session.stdin(`${line}\n`)) {
    out.echo(line);
    ui.stdin.value = "";
  }
});

function sendEof() {
  if (!session || ui.stdin.disabled) return;
  const rest = ui.stdin.value;
  if (session.eof(rest)) {
    if (rest) out.echo(rest);
    ui.stdin.value = "";
    run.stdinClosed = true;
    setControls();
  }
}

ui.stdin.addEventListener("keydown", (event) => {
  if (event.key.toLowerCase() === "d" && event.ctrlKey && !event.altKey && !event.shiftKey) {
    event.preventDefault();
    sendEof();
  }
});
ui.eof.addEventListener("click", () => sendEof());

// --- share ------------------------------------------------------------------------------------

ui.share.addEventListener("click", async () => {
  const link = shareUrl(location, editor.getCode());
  ui.shareLink.value = link;
  ui.sharePanel.hidden = false;
  ui.shareNote.textContent = "Copying…";
  let copied = false;
  try {
    await navigator.clipboard.writeText(link);
    copied = true;
  } catch {
    copied = false;
  }
  ui.shareNote.textContent = copied ? "Link copied to the clipboard." : "Copy this link:";
  ui.shareLink.focus();
  ui.shareLink.select();
});
ui.shareCopy.addEventListener("click", async () => {
  ui.shareLink.select();
  try {
    await navigator.clipboard.writeText(ui.shareLink.value);
    ui.shareNote.textContent = "Link copied to the clipboard.";
  } catch {
    ui.shareNote.textContent = "Press Ctrl+C to copy the selected link.";
  }
});
function closeShare() {
  ui.sharePanel.hidden = true;
  ui.share.focus();
}
ui.shareClose.addEventListener("click", closeShare);
ui.sharePanel.addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeShare();
});

// --- ready ----------------------------------------------------------------------------------

setControls();
if (startNote) setStatus(startNote, "error");
else setStatus("Ready", "idle");
document.body.dataset.ready = "true";
