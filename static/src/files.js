// Files in (sent with the run frame) and files out (`file` frames): pure helpers.

/**
 * The server's defaults (SCE_FILES_IN_MAX_BYTES, SCE_FILES_IN_TOTAL_BYTES, SCE_FILES_IN_MAX_COUNT),
 * checked here first so a refusal comes before any upload; the server checks them itself too.
 * 700 KiB, because the run frame must fit the server's 1 MiB message limit with the files as
 * base64 (a third larger) and room for the code.
 */
export const FILE_IN_MAX_BYTES = 700 * 1024;
export const FILES_IN_TOTAL_BYTES = 700 * 1024;
export const FILES_IN_MAX_COUNT = 20;

const kb = (n) => (n < 1024 * 1024 ? `${Math.max(1, Math.round(n / 1024))} KB` : `${(n / 2 ** 20).toFixed(1)} MB`);

/** "12 KB", "1.4 MB", "320 B" for a chip. */
export function formatSize(n) {
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) return "";
  if (n < 1024) return `${n} B`;
  return kb(n);
}

/** A file's name as a path the server accepts (its last part; the browser gives no folders). */
export function fileInPath(name) {
  const last = String(name || "").split(/[\\/]/).pop() || "";
  return last === "." || last === ".." ? "" : last;
}

/**
 * Why a file cannot be added next to `current` ([{path, bytes}]), or null. `size` in bytes.
 */
export function fileInProblem(path, size, current) {
  if (!path) return "This file has no usable name.";
  if (size > FILE_IN_MAX_BYTES) {
    return `“${path}” is ${formatSize(size)}: a run takes files of at most ${formatSize(FILE_IN_MAX_BYTES)}.`;
  }
  const others = current.filter((f) => f.path !== path);
  if (others.length >= FILES_IN_MAX_COUNT) return `At most ${FILES_IN_MAX_COUNT} files can be sent with a run.`;
  const total = others.reduce((n, f) => n + f.bytes.length, 0) + size;
  if (total > FILES_IN_TOTAL_BYTES) {
    return `“${path}” (${formatSize(size)}) does not fit: a run's files together must stay under ${formatSize(FILES_IN_TOTAL_BYTES)}.`;
  }
  return null;
}

/** The list with `file` added, replacing a file of the same path. */
export function withFile(current, file) {
  const i = current.findIndex((f) => f.path === file.path);
  if (i === -1) return [...current, file];
  const next = current.slice();
  next[i] = file;
  return next;
}

/** The run frame's `files`, or undefined when there are none. */
export function filesField(files, toBase64) {
  if (!files.length) return undefined;
  return files.map((f) => ({ path: f.path, content: toBase64(f.bytes), encoding: "base64" }));
}

const SAFE_TYPES = /^(image\/(png|jpeg|gif|webp)|text\/plain|text\/csv|application\/json|application\/pdf)$/;

/**
 * The type a downloaded file gets: what the server says when it is harmless, else a plain
 * byte stream (a program chooses the name and bytes: it must not make the page render HTML).
 */
export function downloadType(mime) {
  return typeof mime === "string" && SAFE_TYPES.test(mime) ? mime : "application/octet-stream";
}

/** The name a download is saved under: the path's last part. */
export function downloadName(path) {
  return fileInPath(path) || "file";
}
