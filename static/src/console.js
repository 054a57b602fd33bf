// The live console: renders stdout/stderr frames as they arrive.
//
// - one ANSI parser per stream (colour state and half-received escape sequences never mix);
//   ansi_up escapes HTML, so program output can never inject markup (see ansi.js: OSC 8 links
//   are kept for http/https only, open in a new tab, and a refused one still shows its text);
// - "\r" returns to the start of the current line: the next text on that line replaces it,
//   so a progress bar redraws in place and ends as one line ("\r\n" is a plain newline);
// - a partial line (a prompt without "\n") shows at once, and later output continues it;
// - frames are batched per animation frame, and the output is capped (lines, characters,
//   characters per line) with a notice, so a flood of output keeps the page responsive;
// - auto-scroll follows the output until the user scrolls up, and resumes at the bottom;
// - images (`image` frames) and files out (`file` frames) take their place in the same queue,
//   so they show in order with the text. Their bytes become blob: URLs shown through <img>
//   (an SVG is never inlined as markup: in an <img> its scripts never run) and <a download>.
import { newParser } from "./ansi.js";
import { base64ToBytes } from "./share.js";
import { downloadName, downloadType, formatSize } from "./files.js";

// The protocol's two, and raster types a newer server might add (all shown only through <img>).
const IMAGE_TYPES = new Set(["image/png", "image/svg+xml", "image/jpeg", "image/gif", "image/webp"]);

const BREAK = /[\r\n]/g;

function countNewlines(s) {
  let n = 0;
  for (let i = s.indexOf("\n"); i !== -1; i = s.indexOf("\n", i + 1)) n++;
  return n;
}

export class OutputConsole {
  /**
   * @param {HTMLElement} el the scrolling role="log" element
   * @param {{maxLines?: number, maxChars?: number, maxLineChars?: number,
   *          onStickChange?: (stick: boolean) => void, onFlush?: () => void}} options
   */
  constructor(el, { maxLines = 5000, maxChars = 1_000_000, maxLineChars = 20_000, onStickChange, onFlush } = {}) {
    this.el = el;
    this.maxLines = maxLines;
    this.maxChars = maxChars;
    this.maxLineChars = maxLineChars;
    this.onStickChange = onStickChange || (() => {});
    this.onFlush = onFlush || (() => {});
    this.trimEl = document.createElement("div");
    this.trimEl.className = "trim-notice";
    this.trimEl.hidden = true;
    this.linesEl = document.createElement("div");
    this.linesEl.className = "lines";
    el.append(this.trimEl, this.linesEl);
    this.stick = true;
    this.scheduled = false;
    this.urls = [];
    this.imageCount = 0;
    this.onImageOpen = () => {};
    el.addEventListener("scroll", () => {
      const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
      if (atBottom !== this.stick) {
        this.stick = atBottom;
        this.onStickChange(atBottom);
      }
    });
    this.clear();
  }

  /**
   * Remove all lines. A new run also starts with fresh parser state; clearing during a run
   * (`keepState`) keeps the colour state and what is still queued.
   */
  clear(keepState = false) {
    if (!keepState || !this.parsers) {
      this.queue = [];
      this.parsers = { stdout: newParser(), stderr: newParser() };
    }
    this.cur = null; // the open (unterminated) line element, if any
    this.lineCount = 0;
    this.totalChars = 0;
    this.trimmedLines = 0;
    this.discard = 0;
    this.linesEl.replaceChildren();
    if (!keepState) {
      for (const url of this.urls) URL.revokeObjectURL(url);
      this.urls = [];
      this.imageCount = 0;
    }
    this.filesEl = null;
    this.trimEl.hidden = true;
    this.trimEl.textContent = "";
    this.scrollToEnd();
  }

  /** Queue output of one stream; it is drawn on the next animation frame. */
  write(stream, data) {
    if (!data) return;
    this.queue.push([stream === "stderr" ? "stderr" : "stdout", data]);
    this._schedule();
  }

  /** Queue an `image` frame: drawn in order with the text around it. */
  image(frame) {
    this.queue.push(["image", frame]);
    this._schedule();
  }

  /** Queue a `file` frame: a chip that downloads the file (files of a run share one row). */
  file(frame) {
    this.queue.push(["file", frame]);
    this._schedule();
  }

  /** Queue a note of the console's own, in order with the output (e.g. files not all listed). */
  note(text) {
    this.queue.push(["note", text]);
    this._schedule();
  }

  /** A session run's final value (protocol v3 `result`), as the line `Out: REPR`. */
  result(text) {
    this.queue.push(["result", text]);
    this._schedule();
  }

  /** A line between runs kept in one session (its console is not cleared between them). */
  separator(text) {
    this.queue.push(["separator", text]);
    this._schedule();
  }

  /** Show what the user typed, on the line it answers, and end that line. */
  echo(text) {
    this.flush();
    const line = this.cur || this._newLine("stdin");
    const span = document.createElement("span");
    span.className = "echo";
    span.textContent = text;
    line.append(span);
    this._addChars(line, text.length);
    this.cur = null;
    this._finish();
  }

  /** A line of the console's own (run summary, connection notes): never program output. */
  system(text, kind = "info") {
    this.flush();
    this.cur = null;
    const line = this._newLine("system");
    line.classList.add("sys", `sys-${kind}`);
    line.textContent = text;
    this._addChars(line, text.length);
    this.cur = null;
    this._finish();
  }

  /** True when the last line is unfinished and has text: a prompt may be waiting. */
  hasOpenLine() {
    return Boolean(this.cur && this.cur.sceChars > 0 && !this.cur.sceCr);
  }

  /** The console's text, one string per line (used for tests and copying). */
  text() {
    this.flush();
    return Array.from(this.linesEl.children, (l) => l.textContent);
  }

  scrollToEnd() {
    this.el.scrollTop = this.el.scrollHeight;
    if (!this.stick) {
      this.stick = true;
      this.onStickChange(true);
    }
  }

  /** Draw everything queued now. */
  flush() {
    this.scheduled = false;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    // When one batch alone holds more lines than the cap, the earliest would be drawn only to
    // be removed: parse them for their colour state, but never build their elements.
    let newlines = 0;
    for (const [stream, data] of batch) if (stream === "stdout" || stream === "stderr") newlines += countNewlines(data);
    this.discard = Math.max(0, newlines - this.maxLines);
    for (const [stream, data] of batch) {
      if (stream === "image") this._image(data);
      else if (stream === "file") this._file(data);
      else if (stream === "note") this._mediaLine("note").textContent = data;
      else if (stream === "result" || stream === "separator") this._ownLine(stream, data);
      else this._feed(stream, data);
    }
    this.discard = 0;
    this._finish();
  }

  // ---------------------------------------------------------------------------------------

  _schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      if (this.scheduled) this.flush();
    };
    requestAnimationFrame(run);
    setTimeout(run, 150); // background tabs get no animation frames
  }

  _finish() {
    this._trim();
    if (this.stick) this.el.scrollTop = this.el.scrollHeight;
    this.onFlush();
  }

  _blobUrl(data, type) {
    const bytes = base64ToBytes(data);
    if (!bytes) return null;
    const url = URL.createObjectURL(new Blob([bytes], { type }));
    this.urls.push(url);
    return url;
  }

  _ownLine(kind, text) {
    this.cur = null;
    this.filesEl = null;
    const line = this._newLine(kind);
    line.classList.add(kind === "result" ? "out-line" : "run-sep");
    line.textContent = kind === "result" ? `Out: ${text}` : text;
    this._addChars(line, line.textContent.length);
    this.cur = null;
    return line;
  }

  _mediaLine(kind) {
    this.cur = null;
    this.filesEl = null;
    const line = this._newLine(kind);
    line.classList.add("media");
    this.cur = null;
    return line;
  }

  _image(frame) {
    const mime = IMAGE_TYPES.has(frame.mime) ? frame.mime : null;
    const url = mime && typeof frame.data === "string" ? this._blobUrl(frame.data, mime) : null;
    if (!url) {
      const note = this._mediaLine("note");
      note.classList.add("media-note");
      note.textContent = frame.omitted === "too_large"
        ? "[image not shown: larger than the server sends]"
        : "[image not shown: it could not be read]";
      return;
    }
    this.imageCount += 1;
    const line = this._mediaLine("image");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "image-open";
    const size = Number.isInteger(frame.width) && Number.isInteger(frame.height) ? ` (${frame.width}×${frame.height})` : "";
    button.title = "Open full size";
    const img = document.createElement("img");
    img.src = url;
    img.alt = `Image ${this.imageCount}${size}`;
    img.decoding = "async";
    if (Number.isInteger(frame.width) && Number.isInteger(frame.height) && frame.width > 0 && frame.height > 0) {
      img.width = frame.width;
      img.height = frame.height;
    }
    // Without a known size the image grows once decoded: keep following the output.
    img.addEventListener("load", () => { if (this.stick) this.el.scrollTop = this.el.scrollHeight; });
    button.setAttribute("aria-label", `${img.alt}: open full size`);
    button.append(img);
    button.addEventListener("click", () => this.onImageOpen({ url, alt: img.alt, width: frame.width, height: frame.height }));
    line.append(button);
  }

  _file(frame) {
    if (!this.filesEl || !this.filesEl.isConnected) {
      const line = this._mediaLine("files");
      const label = document.createElement("span");
      label.className = "files-label";
      label.textContent = "Files:";
      line.append(label);
      this.filesEl = line;
    }
    const path = typeof frame.path === "string" ? frame.path : "file";
    const url = typeof frame.data === "string" ? this._blobUrl(frame.data, downloadType(frame.mime)) : null;
    const chip = document.createElement(url ? "a" : "span");
    chip.className = "chip file-chip";
    chip.dataset.path = path;
    const name = document.createElement("span");
    name.className = "chip-name";
    name.textContent = path;
    const meta = document.createElement("span");
    meta.className = "chip-meta";
    meta.textContent = url ? formatSize(frame.size) : "too large to send back";
    chip.append(name, meta);
    if (url) {
      chip.href = url;
      chip.download = downloadName(path);
      chip.title = `Download ${path}`;
    } else {
      chip.classList.add("chip-omitted");
      chip.title = `${path} was ${formatSize(frame.size)}: over the server's limit for files sent back`;
    }
    this.filesEl.append(chip);
  }

  _feed(stream, data) {
    let i = 0;
    BREAK.lastIndex = 0;
    for (;;) {
      const m = BREAK.exec(data);
      const j = m ? m.index : data.length;
      if (j > i) this._text(stream, data.slice(i, j));
      if (!m) break;
      if (data[j] === "\n") {
        this._newline(stream);
        i = j + 1;
      } else if (data[j + 1] === "\n") {
        this._newline(stream); // "\r\n" is a plain line end
        i = j + 2;
      } else {
        this._carriageReturn(stream);
        i = j + 1;
      }
      BREAK.lastIndex = i;
    }
  }

  _newLine(stream) {
    this.filesEl = null;
    const line = document.createElement("div");
    line.className = "line";
    line.dataset.stream = stream;
    line.sceChars = 0;
    line.sceCr = false;
    line.sceClipped = false;
    this.linesEl.append(line);
    this.lineCount++;
    this.cur = line;
    return line;
  }

  /** The open line of `stream`; output of the other stream starts a line of its own. */
  _lineFor(stream) {
    if (this.cur && this.cur.dataset.stream === stream) return this.cur;
    return this._newLine(stream);
  }

  _addChars(line, n) {
    line.sceChars += n;
    this.totalChars += n;
  }

  _text(stream, text) {
    const parser = this.parsers[stream];
    if (this.discard > 0) {
      parser.ansi_to_html(text); // keep the colour state, draw nothing
      return;
    }
    const line = this._lineFor(stream);
    if (line.sceCr) {
      // "\r" then text: the line is redrawn from its start.
      this.totalChars -= line.sceChars;
      line.sceChars = 0;
      line.sceClipped = false;
      line.sceCr = false;
      line.textContent = "";
    }
    const room = this.maxLineChars - line.sceChars;
    const shown = text.length > room ? text.slice(0, Math.max(0, room)) : text;
    if (shown) {
      const html = parser.ansi_to_html(shown);
      if (html) line.insertAdjacentHTML("beforeend", html);
      this._addChars(line, shown.length);
    }
    if (shown.length < text.length) {
      parser.ansi_to_html(text.slice(shown.length));
      if (!line.sceClipped) {
        line.sceClipped = true;
        const cut = document.createElement("span");
        cut.className = "clip";
        cut.textContent = " … (rest of this long line not shown)";
        line.append(cut);
      }
    }
  }

  _newline(stream) {
    if (this.discard > 0) {
      this.discard--;
      if (this.cur && this.cur.dataset.stream === stream) {
        this._removeLine(this.cur);
      }
      this.cur = null;
      this.trimmedLines++;
      return;
    }
    this._lineFor(stream); // an empty line still gets its element
    this.cur = null;
  }

  _carriageReturn(stream) {
    if (this.discard > 0) return;
    if (this.cur && this.cur.dataset.stream === stream) this.cur.sceCr = true;
  }

  _removeLine(line) {
    this.totalChars -= line.sceChars;
    this.lineCount--;
    line.remove();
    if (this.cur === line) this.cur = null;
  }

  _trim() {
    while (this.lineCount > this.maxLines || this.totalChars > this.maxChars) {
      const first = this.linesEl.firstElementChild;
      if (!first || first === this.cur) break;
      this._removeLine(first);
      this.trimmedLines++;
    }
    if (this.trimmedLines > 0) {
      const n = this.trimmedLines.toLocaleString("en-US");
      this.trimEl.textContent = `… earlier output trimmed (${n} line${this.trimmedLines === 1 ? "" : "s"})`;
      this.trimEl.hidden = false;
    }
  }
}
