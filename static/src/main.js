import "./style.css";
import { createEditor } from "./editor.js";
import { OutputConsole } from "./console.js";
import { RunSession, runSocketUrl } from "./client.js";
import { EXAMPLES, findExample } from "./examples.js";
import { bytesToBase64, filesFitInLink, hashHasLink, parseHash, shareUrl, watchUrl } from "./share.js";
import {
  MEMORY_WARN_SHARE, describeClose, describeError, describeExit, describeLimits, describeResources, describeStats,
  exitTone, formatDuration, formatTimer, memoryShare,
} from "./format.js";
import {
  FALLBACK_RUNTIMES, normalizeRuntimes, pickRuntime, runtimeField, runtimeLabel, runtimeTitle,
} from "./runtimes.js";
import { filesField } from "./files.js";
import { FilesIn } from "./filesin.js";
import { DEFAULT_FILENAME, InputEcho, filenameProblem } from "./echo.js";
import { PageSession, describeSession, keepWanted, rememberKeep, withSession } from "./kept.js";

const STORAGE_KEY = "sce.code";
const RUNTIME_KEY = "sce.runtime";
const FILENAME_KEY = "sce.filename";
const WRAP_KEY = "sce.wrap";
const THEME_KEY = "sce.theme";
const NARROW = "(max-width: 800px)";
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
  shareOpen: $("share-open"),
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
  runtime: $("runtime"),
  watchLink: $("watch-link"),
  watchBadge: $("watch-badge"),
  editCopy: $("edit-copy"),
  fileInput: $("file-input"),
  addFile: $("add-file"),
  fileChips: $("file-chips"),
  filesNote: $("files-note"),
  meter: $("meter"),
  meterBar: document.querySelector("#meter .meter-bar"),
  meterFill: document.querySelector("#meter .meter-fill"),
  meterText: document.querySelector("#meter .meter-text"),
  viewer: $("viewer"),
  viewerImg: $("viewer-img"),
  viewerTitle: $("viewer-title"),
  viewerClose: $("viewer-close"),
  filename: $("filename"),
  wrap: $("wrap"),
  theme: $("theme"),
  keepState: $("keep-state"),
  restart: $("restart"),
  sessionState: $("session-state"),
};

const isMac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
for (const kbd of document.querySelectorAll("[data-kbd-run]")) kbd.textContent = isMac ? "⌘↵" : "Ctrl ↵";
ui.run.title = `Run (${isMac ? "⌘" : "Ctrl"}+Enter)`;

// --- storage ------------------------------------------------------------------------------

function loadStored(key = STORAGE_KEY) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function store(code, key = STORAGE_KEY) {
  if (watching && key === STORAGE_KEY) return; // a watcher's editor shows someone else's code: keep the user's own
  try {
    if (code === null) localStorage.removeItem(key);
    else localStorage.setItem(key, code);
  } catch {
    /* storage disabled or full: the code just won't survive a reload */
  }
}

// --- theme: light, dark, or the system's (remembered) ---------------------------------------------

function applyTheme(value) {
  const theme = value === "light" || value === "dark" ? value : "system";
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  ui.theme.value = theme;
  return theme;
}
applyTheme(loadStored(THEME_KEY));
ui.theme.addEventListener("change", () => store(applyTheme(ui.theme.value), THEME_KEY));

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
//
// A link or an example is opened once: its code goes into the editor and storage, and the
// address loses it (history.replaceState), so a reload keeps the edits made since. A watch
// link stays: a reload watches again.

const query = new URLSearchParams(location.search);
const link = await parseHash(location.hash);
const startNote = link.damaged ? "The shared link is damaged: part of it could not be read." : null;
const watching = link.watch; // {id, token}: a read-only view of someone's run
let initial = link.code;
const fromLink = hashHasLink(location.hash);
let startExample = null;
if (!fromLink && query.get("example")) {
  startExample = findExample(query.get("example")) || null;
  initial = startExample?.code;
}
if (initial === undefined) initial = watching ? "# Watching a run: its code was not shared.\n" : (loadStored() ?? EXAMPLES[0].code);
{
  const kept = new URLSearchParams(location.search);
  kept.delete("example");
  const search = kept.toString() ? `?${kept}` : "";
  if (!watching && (fromLink || query.has("example"))) history.replaceState(null, "", location.pathname + search);
  else if (query.has("example")) history.replaceState(null, "", location.pathname + search + location.hash);
}

const editor = createEditor(document.getElementById("editor"), {
  doc: initial,
  label: "Python code",
  onChange: saveSoon,
  onRun: () => startRun(),
});
if ((fromLink && link.code !== undefined) || startExample) store(initial);
addEventListener("pagehide", saveNow);
addEventListener("hashchange", async () => {
  if (!hashHasLink(location.hash)) return;
  const hash = location.hash;
  const next = await parseHash(hash);
  if (next.watch) {
    location.reload(); // a watch link: the page becomes a watcher's
    return;
  }
  if (location.hash === hash) history.replaceState(null, "", location.pathname + location.search);
  if (next.damaged) setStatus("The shared link is damaged: part of it could not be read.", "error");
  if (next.code !== undefined) {
    editor.setCode(next.code);
    saveNow();
  }
  // A link is the whole setup: its runtime (or the default) and its files (or none).
  if (next.code !== undefined || next.runtime) chooseRuntime(next.runtime);
  setFilesIn(next.files);
});

// --- word wrap (remembered) -----------------------------------------------------------------------

function applyWrap(on) {
  editor.setWrap(on);
  ui.wrap.setAttribute("aria-pressed", String(on));
}
applyWrap(loadStored(WRAP_KEY) === "1");
ui.wrap.addEventListener("click", () => {
  const on = ui.wrap.getAttribute("aria-pressed") !== "true";
  applyWrap(on);
  store(on ? "1" : "0", WRAP_KEY);
});

// --- the code's file name: what tracebacks call it (protocol v3 `filename`), remembered -----------

ui.filename.value = loadStored(FILENAME_KEY) || DEFAULT_FILENAME;
function checkFilename() {
  const problem = filenameProblem(ui.filename.value);
  ui.filename.setAttribute("aria-invalid", String(Boolean(problem)));
  ui.filename.title = problem || "The name tracebacks give your code";
  return problem;
}
ui.filename.addEventListener("input", () => {
  if (!checkFilename() && !watching) store(ui.filename.value, FILENAME_KEY);
});
ui.filename.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    event.preventDefault();
    editor.focus();
  }
});
checkFilename();

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
  loadExample(ex);
  editor.focus();
});

/** An example is the whole setup: its code, its runtime (or the default), its files (or none). */
function loadExample(ex) {
  if (ex.code !== undefined) {
    editor.setCode(ex.code);
    saveNow();
  }
  chooseRuntime(ex.runtime || null);
  setFilesIn((ex.files || []).map((f) => ({ path: f.path, bytes: new TextEncoder().encode(f.text) })));
}

// --- runtimes (GET /runtimes; a version-1 server has none: one "python" entry) ----------------

let runtimes = FALLBACK_RUNTIMES;
// A link or an example names its runtime, or means the default; otherwise the last one picked.
let wantedRuntime = (fromLink && link.code !== undefined) || startExample
  ? link.runtime || startExample?.runtime || null
  : loadStored(RUNTIME_KEY) || null;

function fillRuntimes(list) {
  runtimes = list;
  ui.runtime.replaceChildren(...list.map((r) => {
    const opt = new Option(runtimeLabel(r), r.name);
    opt.title = runtimeTitle(r);
    opt.disabled = r.available === false && !r.default;
    return opt;
  }));
  const { runtime, missing } = pickRuntime(list, wantedRuntime);
  ui.runtime.value = runtime.name;
  ui.runtime.title = runtimeTitle(runtime);
  if (missing && (link.runtime === missing || startExample?.runtime === missing)) {
    setStatus(`This server has no runtime “${missing}”: using ${runtime.name}.`, "warn");
  }
}

/** Select `name`, or the default for null (once the server's list is in, it must be in it). */
function selectRuntime(name) {
  wantedRuntime = name;
  const found = name ? runtimes.find((r) => r.name === name) : runtimes[0];
  if (found) {
    ui.runtime.value = found.name;
    ui.runtime.title = runtimeTitle(found);
  }
}

/** Select `name` (null: the default) as the user's choice, remembered for the next visit. */
function chooseRuntime(name) {
  selectRuntime(name);
  if (!watching) store(name || null, RUNTIME_KEY);
}

async function loadRuntimes() {
  let list = FALLBACK_RUNTIMES;
  try {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 4000);
    const r = await fetch("/runtimes", { headers: { Accept: "application/json" }, signal: ctl.signal });
    clearTimeout(timer);
    if (r.ok) list = normalizeRuntimes(await r.json());
  } catch {
    list = FALLBACK_RUNTIMES; // a version-1 server, or none: run the default quietly
  }
  fillRuntimes(list);
}

ui.runtime.addEventListener("change", () => {
  wantedRuntime = ui.runtime.value;
  const found = runtimes.find((r) => r.name === wantedRuntime);
  ui.runtime.title = found ? runtimeTitle(found) : "";
  store(wantedRuntime, RUNTIME_KEY);
});

if (!watching && (startExample || (fromLink && link.code !== undefined))) store(wantedRuntime, RUNTIME_KEY);

// --- files in: sent with the run, written into the program's working directory --------------

const filesIn = new FilesIn({
  button: ui.addFile,
  input: ui.fileInput,
  chips: ui.fileChips,
  note: ui.filesNote,
  dropTargets: document.querySelectorAll(".drop-target"),
});
const setFilesIn = (files) => filesIn.set(files);

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

// Full size: an overlay showing the same blob: URL in an <img> (an SVG opened as a page of its
// own would run its scripts; in an <img> they never run).
let viewerReturn = null;
out.onImageOpen = ({ url, alt }) => {
  viewerReturn = document.activeElement;
  ui.viewerImg.src = url;
  ui.viewerImg.alt = alt;
  ui.viewerTitle.textContent = alt;
  ui.viewer.hidden = false;
  ui.viewerClose.focus();
};
function closeViewer() {
  ui.viewer.hidden = true;
  ui.viewerImg.removeAttribute("src");
  if (viewerReturn && viewerReturn.isConnected) viewerReturn.focus();
}
ui.viewerClose.addEventListener("click", closeViewer);
ui.viewer.addEventListener("click", (event) => {
  if (event.target === ui.viewer || event.target.classList.contains("viewer-body")) closeViewer();
});
ui.viewer.addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeViewer();
});

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

function showStats(stats) {
  const share = memoryShare(stats);
  ui.meter.hidden = false;
  ui.meterText.textContent = describeStats(stats);
  const pct = share === null ? 0 : Math.round(share * 100);
  ui.meterFill.style.width = `${pct}%`;
  ui.meterBar.setAttribute("aria-valuenow", String(pct));
  ui.meter.dataset.level = share !== null && share >= MEMORY_WARN_SHARE ? "warn" : "ok";
}

function hideStats() {
  ui.meter.hidden = true;
  ui.meter.dataset.level = "ok";
  ui.meterFill.style.width = "0%";
  ui.meterText.textContent = "";
}

// --- a run ------------------------------------------------------------------------------------

/** @type {RunSession|null} */
let session = null;
let startingSession = false; // Keep state: POST /sessions in flight for a Run
// {limits, finished, stopRequested, stdinClosed, started, id, watchToken, dropped, code, runtime}
let run = null;

function setControls() {
  const active = Boolean(session) || startingSession;
  const running = active && run.started && !run.finished;
  ui.run.disabled = active || Boolean(watching);
  ui.stop.disabled = !session || run.stopRequested || Boolean(watching);
  const inputOn = running && !run.stdinClosed && !run.stopRequested && !watching && !run.reconnecting;
  const hadFocus = document.activeElement === ui.stdin;
  ui.stdin.disabled = !inputOn;
  ui.eof.disabled = !inputOn;
  ui.stdin.placeholder = watching
    ? "Watching: input is the driver's"
    : inputOn
      ? (matchMedia(NARROW).matches ? "Input, then Enter" : "Type input, Enter to send · Ctrl+D ends input")
      : "Input opens while a program runs";
  if (hadFocus && !inputOn && !watching) editor.focus();
  ui.watchLink.hidden = !(running && run.watchToken && !watching);
  document.body.classList.toggle("is-running", active);
  updatePrompting();
}

let prompting = false;
function updatePrompting() {
  const on = Boolean(session && run.started && !run.finished && !run.stdinClosed && !watching && out.hasOpenLine());
  ui.stdinForm.classList.toggle("prompting", on);
  // On a phone the page scrolls: bring the input line (and the prompt above it) into view.
  if (on && !prompting && matchMedia(NARROW).matches) ui.stdinForm.scrollIntoView({ block: "nearest" });
  prompting = on;
}

function timeoutValue() {
  const v = ui.timeout.valueAsNumber;
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

function newRunState() {
  return {
    limits: null, finished: false, stopRequested: false, stdinClosed: false, started: false,
    id: null, watchToken: null, dropped: false, reconnecting: false, code: editor.getCode(),
    runtime: runtimeField(runtimes, ui.runtime.value) || null, echo: new InputEcho(),
  };
}

function openSession(frame) {
  if (frame.session) {
    // a run kept in the page's session: the console keeps the earlier runs, one line apart
    const number = (kept.info && Number.isInteger(kept.info.runs) ? kept.info.runs : 0) + 1;
    if (number === 1) out.clear();
    out.separator(`In [${number}]`);
  } else {
    out.clear();
  }
  hideStats();
  ui.statusLimits.textContent = "";
  const url = frame.session ? withSession(runSocketUrl(location), frame.session) : runSocketUrl(location);
  const current = new RunSession(url, frame, {
    onOpen: () => {
      if (session === current && !run.started) setStatus(watching ? "Waiting for the run…" : "Waiting for a sandbox…", "wait");
    },
    onFrame: (f) => { if (session === current) onFrame(f); },
    onReconnecting: (attempt) => {
      if (session !== current) return;
      run.dropped = true;
      run.reconnecting = true;
      setStatus(`Connection lost: reconnecting…${attempt > 1 ? ` (try ${attempt})` : ""}`, "wait");
      setControls();
    },
    onResumed: () => {
      if (session !== current) return;
      run.reconnecting = false;
      if (!run.finished && run.stopRequested) setStatus("Stopping…", "wait");
      else if (!run.finished) setStatus(watching ? "Watching" : "Running", "running");
      setControls();
    },
    onClose: (c) => { if (session === current) onClose(c); },
  });
  session = current;
  setStatus("Connecting…", "wait");
  setControls();
}

async function startRun() {
  if (session || watching || startingSession) return;
  const badName = checkFilename();
  if (badName) {
    setStatus(badName, "error");
    ui.filename.focus();
    return;
  }
  saveNow();
  ui.sharePanel.hidden = true;
  run = newRunState();
  const frame = { type: "run", code: run.code, filename: ui.filename.value };
  const timeout = timeoutValue();
  if (timeout !== undefined) frame.timeout = timeout;
  if (run.runtime) frame.runtime = run.runtime;
  const files = filesField(filesIn.files, bytesToBase64);
  if (files) frame.files = files;
  frame.stats = true;
  editor.markException(null);
  if (ui.keepState.checked) {
    run.inSession = true;
    startingSession = true;
    setControls();
    if (!kept.made) setStatus("Starting a session…", "wait");
    try {
      const made = await kept.ensure(run.runtime);
      frame.session = made.id;
      frame.session_token = made.token;
    } catch (error) {
      startingSession = false;
      setStatus(`Could not start a session: ${error.message}`, "error", { retry: true });
      setControls();
      return;
    }
    startingSession = false;
    showSession();
  }
  openSession(frame);
  // On a phone the console is below the editor: show it.
  if (matchMedia(NARROW).matches) ui.console.scrollIntoView({ block: "nearest" });
}

function startWatch() {
  run = newRunState();
  openSession({ type: "watch", id: watching.id, token: watching.token });
}

function onFrame(f) {
  switch (f.type) {
    case "queued":
      if (!run.started && !run.stopRequested) setStatus(`Queued (position ${f.position})`, "wait");
      break;
    case "started":
      run.started = true;
      run.limits = f.limits || null;
      run.id = typeof f.id === "string" ? f.id : null;
      run.watchToken = typeof f.watch_token === "string" ? f.watch_token : null;
      ui.statusLimits.textContent = describeLimits(run.limits);
      if (!run.stopRequested) setStatus(watching ? "Watching" : "Running", "running");
      startTimer(performance.now());
      setControls();
      break;
    case "stdout":
    case "stderr":
      if (typeof f.data === "string") out.write(f.type, f.data);
      break;
    case "input":
      // What reached the program's stdin (v3): the driver's own lines are shown as typed.
      for (const line of run.echo.received(f.data)) out.echo(line);
      break;
    case "image":
      out.image(f);
      break;
    case "result":
      // a session run's last expression (v3): shown as a notebook shows it
      if (typeof f.text === "string") out.result(f.text);
      break;
    case "file":
      out.file(f);
      break;
    case "stats":
      if (!run.finished) showStats(f);
      break;
    case "exit": {
      run.finished = true;
      stopTimer();
      hideStats();
      if (f.files_truncated) out.note("[more files were written than the server sends back: the rest are not listed]");
      const words = describeExit(f, run.limits);
      const took = formatDuration(f.duration_ms);
      const text = took ? `${words} · ${took}` : words;
      const used = describeResources(f);
      let status = f.truncated && f.reason !== "output_limit" ? `${text} · output truncated` : text;
      if (used) status += ` · ${used}`;
      if (f.exception && typeof f.exception.name === "string" && !watching) {
        editor.markException(f.exception); // its line, with the exception's name and value
        status += ` · ${f.exception.name}${Number.isInteger(f.exception.line) ? ` at line ${f.exception.line}` : ""}`;
      }
      setStatus(status, exitTone(f));
      out.system(used ? `${text} · ${used}` : text, exitTone(f));
      if (run.inSession) sessionRunEnded(f.session_alive !== false);
      setControls();
      break;
    }
    case "error": {
      run.finished = true;
      stopTimer();
      hideStats();
      let text = describeError(f.code, f.message);
      if (f.code === "not_found" && run.inSession) {
        kept.forget();
        showSession();
        text = "The session has ended (idle too long, or the server restarted): Run again to start a new one.";
      } else if (f.code === "not_found") {
        text = watching
          ? "This run cannot be watched: it has ended or the link is wrong."
          : "The connection dropped and the run could not be resumed: the server no longer has it.";
      }
      setStatus(text, "error", { retry: !watching });
      out.system(text, "error");
      setControls();
      break;
    }
    default:
      break; // a newer server's frame: ignore
  }
}

function onClose({ opened, code, reason, lost }) {
  const ended = run.finished;
  const stopped = run.stopRequested;
  session = null;
  stopTimer();
  hideStats();
  run.reconnecting = false;
  if (!ended) {
    if (stopped) {
      setStatus("Stopped", "neutral");
      out.system("Stopped", "neutral");
    } else {
      const text = lost
        ? "The connection was lost and the run could not be resumed."
        : watching && !opened ? "Could not connect to the server" : describeClose(opened, code, reason);
      setStatus(text, "error", { retry: !watching });
      out.system(text, "error");
    }
  }
  run.finished = true;
  setControls();
}

function stopRun() {
  if (!session || run.stopRequested || watching) return;
  run.stopRequested = true;
  session.kill();
  if (session) setStatus("Stopping…", "wait");
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

// --- keep state: the page's session (v3) -------------------------------------------------------

const kept = new PageSession(location);

function showSession() {
  const on = ui.keepState.checked && Boolean(kept.made) && !watching;
  ui.sessionState.hidden = !on;
  ui.restart.hidden = !ui.keepState.checked || Boolean(watching);
  if (!on) return;
  const info = kept.info || { state: "idle", expires_at: kept.made.expires_at };
  ui.sessionState.textContent = describeSession(info);
  ui.sessionState.dataset.state = info.state || "idle";
  ui.sessionState.title = `Session ${kept.made.id} (${kept.made.runtime})`;
}

/** Ask the server how the session is (its runs, its expiry); it may have ended meanwhile. */
async function refreshSession() {
  if (!kept.made) return;
  try {
    await kept.refresh();
  } catch {
    /* the server is unreachable: keep showing what was known */
  }
  showSession();
}

function sessionRunEnded(alive) {
  if (!alive) {
    kept.forget();
    out.system("The session ended: its state is gone. The next run starts a new one.", "warn");
  }
  refreshSession();
}

ui.keepState.checked = keepWanted();
ui.keepState.addEventListener("change", () => {
  rememberKeep(ui.keepState.checked);
  if (!ui.keepState.checked && kept.made) kept.end(); // off: its sandbox is let go
  showSession();
});
ui.restart.addEventListener("click", async () => {
  if (session) {
    run.stopRequested = true; // the DELETE ends the run in progress (killed)
    setControls();
  }
  ui.restart.disabled = true;
  await kept.end();
  editor.markException(null);
  out.clear();
  out.system("Restarted: the next run starts with a clean interpreter.", "info");
  setStatus("Session restarted", "idle");
  ui.restart.disabled = false;
  showSession();
});
setInterval(() => {
  if (!kept.made || !ui.keepState.checked) return;
  if (!session) refreshSession(); // its expiry moves on; it may have ended on the server
}, 20_000);

// --- standard input ---------------------------------------------------------------------------

ui.stdinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!session || ui.stdin.disabled) return;
  const line = ui.stdin.value;
  if (session.stdin(`${line}\n`)) {
    out.echo(line);
    run.echo.sent(`${line}\n`);
    ui.stdin.value = "";
  }
});

function sendEof() {
  if (!session || ui.stdin.disabled) return;
  const rest = ui.stdin.value;
  if (session.eof(rest)) {
    if (rest) out.echo(rest);
    run.echo.sent(rest);
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

// --- share and watch links ----------------------------------------------------------------------

async function showLink(link, copiedNote, { openable = false } = {}) {
  ui.shareLink.value = link;
  ui.shareOpen.hidden = !openable;
  if (openable) ui.shareOpen.href = link;
  ui.sharePanel.hidden = false;
  ui.shareNote.textContent = "Copying…";
  let copied = false;
  try {
    await navigator.clipboard.writeText(link);
    copied = true;
  } catch {
    copied = false;
  }
  ui.shareNote.textContent = copied ? copiedNote : "Copy this link:";
  ui.shareLink.focus();
  ui.shareLink.select();
}

ui.share.addEventListener("click", async () => {
  const runtime = runtimeField(runtimes, ui.runtime.value) || null;
  ui.shareLink.value = ""; // never a previous link while this one is made
  const link = await shareUrl(location, editor.getCode(), { runtime, files: filesIn.files });
  let note = "Link copied to the clipboard.";
  if (filesIn.files.length && !filesFitInLink(filesIn.files)) note += " The files are too large for a link: add them again after opening it.";
  showLink(link, note);
});
ui.watchLink.addEventListener("click", async () => {
  if (!run || !run.id || !run.watchToken) return;
  ui.shareLink.value = "";
  const link = await watchUrl(location, run.id, run.watchToken, { code: run.code, runtime: run.runtime });
  showLink(link, "Watch link copied: it shows this run live, read-only.", { openable: true });
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

if (link.files.length) setFilesIn(link.files);
if (startExample?.files) loadExample({ ...startExample, code: undefined });
if (watching) {
  document.body.classList.add("is-watching");
  editor.setReadOnly(true);
  ui.watchBadge.hidden = false;
  ui.editCopy.hidden = false;
  ui.editCopy.addEventListener("click", async () => {
    // Leave the watch: the same page with this code as the user's own (a share link).
    if (session) session.close();
    history.replaceState(null, "", await shareUrl(location, editor.getCode(), { runtime: link.runtime }));
    location.reload();
  });
  for (const el of [ui.examples, ui.runtime, ui.timeout, ui.filename, ui.keepState]) el.disabled = true;
  filesIn.lock();
}
setControls();
showSession();
if (ui.keepState.checked && kept.made && !watching) refreshSession(); // a reload: is it still there?
if (startNote) setStatus(startNote, "error");
else setStatus("Ready", "idle");
loadRuntimes().finally(() => {
  if (watching && !link.damaged) startWatch();
  document.body.dataset.ready = "true";
});
