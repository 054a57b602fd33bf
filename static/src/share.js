// Links to the editor. Everything rides in the fragment (never sent to any server), and a share
// link carries the code, the runtime and the files in, nothing of the page it was made on:
//
//   #z=<base64url of deflate-raw of the UTF-8 JSON {"c": code, "r"?: runtime, "f"?: [[path, base64url]]}>
//   #watch=<run id>:<watch token>&z=...  a read-only live view of someone's run (the code rides along)
//
// Read as well, as links made before compression (and made by browsers without CompressionStream):
//   #code=<base64url of the UTF-8 text>&runtime=<name>&file=<path>:<base64url of bytes>

/** Files in ride in share links only while all of them together are this small (bytes). */
export const SHARE_FILES_MAX_BYTES = 16 * 1024;

/** Standard base64 (with padding), as the run frame's files carry it. */
export function bytesToBase64(bytes) {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

export function bytesToBase64url(bytes) {
  return bytesToBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Bytes of base64 or base64url (padding optional), or null when it is not. */
export function base64ToBytes(value) {
  try {
    const b64 = String(value).replace(/-/g, "+").replace(/_/g, "/").replace(/\s+/g, "");
    if (b64.length % 4 === 1) return null;
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    const bin = atob(padded);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

export function encodeCode(code) {
  return bytesToBase64url(new TextEncoder().encode(code));
}

/** The text, or null when `value` is not base64url of UTF-8. */
export function decodeCode(value) {
  const bytes = base64ToBytes(value);
  if (bytes === null) return null;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

function hashParams(hash) {
  return new URLSearchParams(String(hash || "").replace(/^#/, ""));
}

/** The code in a location hash such as "#code=..." (a link made before compression), or undefined. */
export function codeFromHash(hash) {
  const params = hashParams(hash);
  if (!params.has("code")) return undefined;
  return decodeCode(params.get("code") || "");
}

async function pipe(bytes, stream) {
  const out = new Response(new Blob([bytes]).stream().pipeThrough(stream));
  return new Uint8Array(await out.arrayBuffer());
}

/** Whether this browser can make compressed links (all current ones can). */
export function canCompress() {
  return typeof CompressionStream === "function" && typeof DecompressionStream === "function";
}

/** The `z` value: {code, runtime, files} as compact JSON, deflated, base64url. */
export async function encodeShare({ code, runtime = null, files = [] }) {
  const body = { c: code };
  if (runtime) body.r = runtime;
  if (files.length) body.f = files.map((f) => [f.path, bytesToBase64url(f.bytes)]);
  const json = new TextEncoder().encode(JSON.stringify(body));
  return bytesToBase64url(await pipe(json, new CompressionStream("deflate-raw")));
}

/** {code, runtime, files} from a `z` value, or null when it cannot be read. */
export async function decodeShare(value) {
  const bytes = base64ToBytes(value);
  if (bytes === null || !canCompress()) return null;
  try {
    const json = new TextDecoder("utf-8", { fatal: true }).decode(await pipe(bytes, new DecompressionStream("deflate-raw")));
    const body = JSON.parse(json);
    if (!body || typeof body.c !== "string") return null;
    const files = [];
    for (const item of Array.isArray(body.f) ? body.f : []) {
      const data = Array.isArray(item) && typeof item[0] === "string" ? base64ToBytes(item[1]) : null;
      if (data === null) return null;
      files.push({ path: item[0], bytes: data });
    }
    return { code: body.c, runtime: typeof body.r === "string" && body.r ? body.r : null, files };
  } catch {
    return null;
  }
}

/**
 * Everything a link's fragment carries: {code, runtime, files, watch, damaged}.
 * `code` is undefined when the link names none, `files` a list of {path, bytes},
 * `watch` {id, token} or null; `damaged` is true when a part could not be read.
 */
export async function parseHash(hash) {
  const params = hashParams(hash);
  const result = { code: undefined, runtime: null, files: [], watch: null, damaged: false };
  if (params.has("z")) {
    const share = await decodeShare(params.get("z") || "");
    if (share === null) result.damaged = true;
    else Object.assign(result, share);
  }
  if (params.has("code")) {
    const code = decodeCode(params.get("code") || "");
    if (code === null) result.damaged = true;
    else result.code = code;
  }
  const runtime = params.get("runtime");
  if (runtime) result.runtime = runtime;
  for (const item of params.getAll("file")) {
    const at = item.lastIndexOf(":");
    const bytes = at > 0 ? base64ToBytes(item.slice(at + 1)) : null;
    if (bytes === null) result.damaged = true;
    else result.files.push({ path: item.slice(0, at), bytes });
  }
  const watch = params.get("watch");
  if (watch !== null) {
    const at = watch.indexOf(":");
    if (at > 0 && at < watch.length - 1) result.watch = { id: watch.slice(0, at), token: watch.slice(at + 1) };
    else result.damaged = true;
  }
  return result;
}

/** True when a link fragment holds anything this page reads. */
export function hashHasLink(hash) {
  const params = hashParams(hash);
  return ["z", "code", "file", "watch", "runtime"].some((k) => params.has(k));
}

/** The editor's own address: no query (examples, time limits and tokens are not shared). */
function base(location) {
  return `${location.origin}${location.pathname}`;
}

/** Whether these files in are small enough to ride in a share link. */
export function filesFitInLink(files) {
  const total = (files || []).reduce((n, f) => n + f.bytes.length, 0);
  return total <= SHARE_FILES_MAX_BYTES;
}

async function shareParams(params, code, runtime, files) {
  if (canCompress()) {
    params.set("z", await encodeShare({ code, runtime, files }));
    return;
  }
  params.set("code", encodeCode(code));
  if (runtime) params.set("runtime", runtime);
  for (const f of files) params.append("file", `${f.path}:${bytesToBase64url(f.bytes)}`);
}

/**
 * A link to this page that opens `code` (and `runtime` when given and not the default, and
 * `files` when they fit), and nothing else of the page.
 */
export async function shareUrl(location, code, { runtime = null, files = [] } = {}) {
  const params = new URLSearchParams();
  await shareParams(params, code, runtime, files.length && filesFitInLink(files) ? files : []);
  return `${base(location)}#${params.toString()}`;
}

/** A read-only live view of a run: its id and watch token, and the code for the viewer to read. */
export async function watchUrl(location, id, watchToken, { code = null, runtime = null } = {}) {
  const params = new URLSearchParams();
  params.set("watch", `${id}:${watchToken}`);
  if (code !== null) await shareParams(params, code, runtime, []);
  return `${base(location)}#${params.toString()}`;
}
