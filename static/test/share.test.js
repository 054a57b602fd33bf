import { test } from "node:test";
import assert from "node:assert/strict";
import { codeFromHash, decodeCode, encodeCode, shareUrl } from "../src/share.js";

test("code round-trips through base64url of UTF-8", () => {
  for (const code of ["", "print(2 + 2)\n", "s = 'héllo ✓ 𝔘'\n", "x" .repeat(100_000), "a?b&c=d#e/f+g"]) {
    const enc = encodeCode(code);
    assert.match(enc, /^[A-Za-z0-9_-]*$/);
    assert.equal(decodeCode(enc), code);
  }
  assert.equal(encodeCode("print(2 + 2)\n"), Buffer.from("print(2 + 2)\n").toString("base64url"));
});

test("bad links decode to null, absent ones to undefined", () => {
  assert.equal(decodeCode("!!!"), null);
  assert.equal(decodeCode(Buffer.from([0xff, 0xfe]).toString("base64url")), null);
  assert.equal(codeFromHash(""), undefined);
  assert.equal(codeFromHash("#other=1"), undefined);
  assert.equal(codeFromHash(`#code=${encodeCode("print(1)")}`), "print(1)");
});

test("share links keep the page's query but never its token", () => {
  const loc = { origin: "http://127.0.0.1:5000", pathname: "/ui", search: "?timeout=5&token=secret" };
  assert.equal(shareUrl(loc, "print(1)"), `http://127.0.0.1:5000/ui?timeout=5#code=${encodeCode("print(1)")}`);
  assert.equal(shareUrl({ ...loc, search: "" }, "x"), `http://127.0.0.1:5000/ui#code=${encodeCode("x")}`);
});

test("runtime and small files ride in share links; large files do not", async () => {
  const { parseHash, SHARE_FILES_MAX_BYTES, watchUrl } = await import("../src/share.js");
  const loc = { origin: "http://h", pathname: "/ui", search: "?token=x" };
  const small = [{ path: "data.csv", bytes: new TextEncoder().encode("a,b\n1,2\n") }];
  const url = shareUrl(loc, "print(1)", { runtime: "scientific", files: small });
  assert.ok(url.startsWith("http://h/ui#code="));
  const parsed = parseHash(url.slice(url.indexOf("#")));
  assert.equal(parsed.code, "print(1)");
  assert.equal(parsed.runtime, "scientific");
  assert.equal(parsed.files.length, 1);
  assert.equal(parsed.files[0].path, "data.csv");
  assert.equal(new TextDecoder().decode(parsed.files[0].bytes), "a,b\n1,2\n");
  assert.equal(parsed.damaged, false);
  const big = [{ path: "big.bin", bytes: new Uint8Array(SHARE_FILES_MAX_BYTES + 1) }];
  assert.equal(parseHash(new URL(shareUrl(loc, "x", { files: big })).hash).files.length, 0);
  const watch = watchUrl(loc, "run-1", "w:tok", { code: "print(2)" });
  assert.deepEqual(parseHash(new URL(watch).hash).watch, { id: "run-1", token: "w:tok" });
  assert.equal(parseHash(new URL(watch).hash).code, "print(2)");
  assert.equal(parseHash("#watch=nocolon").damaged, true);
  assert.equal(parseHash("#file=x:!!!").damaged, true);
});
