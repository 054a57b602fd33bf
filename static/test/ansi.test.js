import { test } from "node:test";
import assert from "node:assert/strict";
import { allowedLink, newParser } from "../src/ansi.js";

const link = (url, text) => `\x1b]8;;${url}\x1b\\${text}\x1b]8;;\x1b\\`;
const html = (...chunks) => {
  const p = newParser();
  return chunks.map((c) => p.ansi_to_html(c)).join("");
};

test("a refused link keeps its text, as plain text", () => {
  assert.equal(html(link("javascript:alert(1)", "click me")), "click me");
  assert.equal(html("before ", link("data:text/html,<b>x</b>", "<b>data</b>"), " after"),
    "before &lt;b&gt;data&lt;/b&gt; after");
  assert.equal(html(link("file:///etc/passwd", "file")), "file");
  assert.equal(html(link("", "no url")), "no url");
  assert.equal(html(link("/relative", "rel")), "rel");
});

test("a kept link opens in a new tab without an opener or referrer", () => {
  assert.equal(
    html(link("https://example.invalid/", "docs")),
    '<a href="https://example.invalid/" target="_blank" rel="noopener noreferrer">docs</a>',
  );
  assert.match(html(link("HTTP://Example.invalid/a", "x")), /^<a href="http:\/\/example\.invalid\/a" /);
});

test("link text is escaped and keeps the current colour; the URL cannot break out of href", () => {
  const out = html("\x1b[31m", link('https://example.invalid/?q="x"<y>', "<red>"), "\x1b[0m");
  assert.equal(
    out,
    '<a href="https://example.invalid/?q=%22x%22%3Cy%3E" target="_blank" rel="noopener noreferrer">' +
      '<span class="ansi-red-fg">&lt;red&gt;</span></a>',
  );
  assert.equal(html("\x1b[32m", link("javascript:x", "green"), " text"),
    '<span class="ansi-green-fg">green</span><span class="ansi-green-fg"> text</span>');
});

test("a link split across writes is drawn once it is complete", () => {
  const p = newParser();
  const whole = link("javascript:void(0)", "split text");
  assert.equal(p.ansi_to_html(whole.slice(0, 12)), "");
  assert.equal(p.ansi_to_html(whole.slice(12)), "split text");
});

test("only http and https links are followed", () => {
  assert.equal(allowedLink("https://example.invalid/"), "https://example.invalid/");
  assert.equal(allowedLink("http://127.0.0.1:5000/ui"), "http://127.0.0.1:5000/ui");
  for (const url of ["javascript:alert(1)", "JavaScript:alert(1)", "vbscript:x", "data:,x", "file:///", "ftp://x/", "", "x"]) {
    assert.equal(allowedLink(url), null, url);
  }
});
