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
// - auto-scroll follows the output until the user scrolls up, and resumes at the bottom.
import { newParser } from "./ansi.js";

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
    for (const [, data] of batch) newlines += countNewlines(data);
    this.discard = Math.max(0, newlines - this.maxLines);
    for (const [stream, data] of batch) this._feed(stream, data);
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
