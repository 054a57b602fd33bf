// Code in a link: #code=<base64url of the UTF-8 text>, no padding.

export function encodeCode(code) {
  const bytes = new TextEncoder().encode(code);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The text, or null when `value` is not base64url of UTF-8. */
export function decodeCode(value) {
  try {
    const b64 = value.replace(/-/g, "+").replace(/_/g, "/").replace(/\s+/g, "");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    const bin = atob(padded);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** The code in a location hash such as "#code=...", or undefined when it names none. */
export function codeFromHash(hash) {
  const params = new URLSearchParams(String(hash || "").replace(/^#/, ""));
  if (!params.has("code")) return undefined;
  return decodeCode(params.get("code") || "");
}

/** A link to this page that opens `code`; the page's own query is kept, except a token. */
export function shareUrl(location, code) {
  const params = new URLSearchParams(location.search);
  params.delete("token");
  const query = params.toString();
  return `${location.origin}${location.pathname}${query ? `?${query}` : ""}#code=${encodeCode(code)}`;
}
