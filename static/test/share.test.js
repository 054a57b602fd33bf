import { test } from "node:test";
import assert from "node:assert/strict";
import {
  SHARE_FILES_MAX_BYTES, codeFromHash, decodeCode, encodeCode, parseHash, shareUrl, watchUrl,
} from "../src/share.js";

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

test("share links carry the code, runtime and files only: never the page's query or token", async () => {
  const loc = { origin: "http://127.0.0.1:5000", pathname: "/ui", search: "?example=memory&timeout=5&token=secret" };
  const url = await shareUrl(loc, "print(1)");
  assert.match(url, /^http:\/\/127\.0\.0\.1:5000\/ui#z=[A-Za-z0-9_-]+$/);
  assert.equal((await parseHash(new URL(url).hash)).code, "print(1)");
});

test("share links are compressed: a typical program's link is much shorter than its base64", async () => {
  const code = "import time\n" + Array.from({ length: 40 }, (_, i) => `print("line ${i}", flush=True)\ntime.sleep(0.1)\n`).join("");
  const url = await shareUrl({ origin: "http://h", pathname: "/ui" }, code);
  const old = `http://h/ui#code=${encodeCode(code)}`;
  assert.ok(url.length * 3 < old.length, `${url.length} vs ${old.length}`);
  assert.equal((await parseHash(new URL(url).hash)).code, code);
});

test("links made before compression still open", async () => {
  const old = `#code=${encodeCode("print('shared')\n")}&runtime=scientific&file=a.txt:${Buffer.from("hi").toString("base64url")}`;
  const parsed = await parseHash(old);
  assert.equal(parsed.code, "print('shared')\n");
  assert.equal(parsed.runtime, "scientific");
  assert.equal(new TextDecoder().decode(parsed.files[0].bytes), "hi");
  assert.equal(parsed.damaged, false);
  assert.equal((await parseHash("#z=AAAA")).damaged, true);
});

test("runtime and small files ride in share links; large files do not", async () => {
  const loc = { origin: "http://h", pathname: "/ui", search: "?token=x" };
  const small = [{ path: "data.csv", bytes: new TextEncoder().encode("a,b\n1,2\n") }];
  const url = await shareUrl(loc, "print(1)", { runtime: "scientific", files: small });
  assert.ok(url.startsWith("http://h/ui#z="));
  const parsed = await parseHash(url.slice(url.indexOf("#")));
  assert.equal(parsed.code, "print(1)");
  assert.equal(parsed.runtime, "scientific");
  assert.equal(parsed.files.length, 1);
  assert.equal(parsed.files[0].path, "data.csv");
  assert.equal(new TextDecoder().decode(parsed.files[0].bytes), "a,b\n1,2\n");
  assert.equal(parsed.damaged, false);
  const big = [{ path: "big.bin", bytes: new Uint8Array(SHARE_FILES_MAX_BYTES + 1) }];
  assert.equal((await parseHash(new URL(await shareUrl(loc, "x", { files: big })).hash)).files.length, 0);
  const watch = await watchUrl(loc, "run-1", "w:tok", { code: "print(2)" });
  assert.match(watch, /^http:\/\/h\/ui#watch=run-1%3Aw%3Atok&z=/);
  assert.deepEqual((await parseHash(new URL(watch).hash)).watch, { id: "run-1", token: "w:tok" });
  assert.equal((await parseHash(new URL(watch).hash)).code, "print(2)");
  assert.equal((await parseHash("#watch=nocolon")).damaged, true);
  assert.equal((await parseHash("#file=x:!!!")).damaged, true);
});
