// What was typed, shown where it was typed (protocol v3 "input" frames), and the code's file name.
//
// The driver's page shows a line the moment Enter sends it (a version-2 server echoes nothing);
// a version-3 server then sends the same text back as an `input` frame, which is recognised and
// not shown twice. Input the page did not show itself (a watcher's view, the run frame's stdin)
// is shown from the frames.

/** Texts this page sent and showed, waiting for the server's echo of them. */
export class InputEcho {
  constructor() {
    this.pending = [];
    this.serverEchoes = false; // an input frame came: the server is version 3
  }

  /** The page sent `data` and showed it already. */
  sent(data) {
    if (data) this.pending.push(data);
  }

  /** The lines to show for an `input` frame's `data`: none when it is this page's own, already shown. */
  received(data) {
    this.serverEchoes = true;
    if (typeof data !== "string" || data === "") return [];
    if (this.pending.length && this.pending[0] === data) {
      this.pending.shift();
      return [];
    }
    return inputLines(data);
  }
}

/** "a\nb\n" -> ["a", "b"]; a last part without "\n" is a line too ("abc" then EOF). */
export function inputLines(data) {
  const parts = String(data).split("\n");
  if (parts[parts.length - 1] === "") parts.pop();
  return parts.map((p) => p.replace(/\r$/, ""));
}

/** The default name tracebacks give the code. */
export const DEFAULT_FILENAME = "main.py";

/** Why `name` cannot be the code's file name (a plain name, as the server wants), or null. */
export function filenameProblem(name) {
  const n = String(name ?? "");
  if (n.trim() === "" || n === "." || n === "..") return "The file name is empty: use a name such as main.py.";
  if (/[\\/]/.test(n)) return "The file name must be a plain name, without folders (e.g. main.py).";
  if (n.includes("\0")) return "The file name contains a NUL character.";
  if (new TextEncoder().encode(n).length > 255) return "The file name is longer than 255 bytes.";
  return null;
}
