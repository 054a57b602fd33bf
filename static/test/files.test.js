import { test } from "node:test";
import assert from "node:assert/strict";
import {
  FILE_IN_MAX_BYTES, downloadName, downloadType, fileInPath, fileInProblem, filesField, formatSize, withFile,
} from "../src/files.js";
import { bytesToBase64 } from "../src/share.js";

const file = (path, n) => ({ path, bytes: new Uint8Array(n) });

test("sizes for chips", () => {
  assert.equal(formatSize(320), "320 B");
  assert.equal(formatSize(12 * 1024), "12 KB");
  assert.equal(formatSize(1.5 * 2 ** 20), "1.5 MB");
  assert.equal(formatSize(undefined), "");
});

test("a file over the server's limit is refused in plain words", () => {
  assert.equal(fileInProblem("data.csv", 1000, []), null);
  assert.equal(fileInProblem("data.csv", FILE_IN_MAX_BYTES, []), null);
  assert.match(fileInProblem("big.bin", 2 ** 20 + 1, []), /“big.bin” is 1.0 MB: a run takes files of at most 700 KB/);
  assert.match(fileInProblem("big.bin", FILE_IN_MAX_BYTES + 1, []), /is 700 KB: a run takes files of at most 700 KB/);
  assert.match(fileInProblem("", 1, []), /no usable name/);
  const many = Array.from({ length: 20 }, (_, i) => file(`f${i}`, 1));
  assert.match(fileInProblem("one-more", 1, many), /At most 20 files/);
  assert.equal(fileInProblem("f3", 1, many), null); // replacing one is fine
  // Together, too: the run frame carries them all.
  assert.match(fileInProblem("b", 400 * 1024, [file("a", 400 * 1024)]), /“b” \(400 KB\) does not fit: .* under 700 KB/);
});

test("paths, replacing, and the run frame's files", () => {
  assert.equal(fileInPath("C:\\Users\\me\\data.csv"), "data.csv");
  assert.equal(fileInPath("a/b.txt"), "b.txt");
  assert.equal(fileInPath(".."), "");
  const list = withFile(withFile([], file("a", 1)), file("b", 2));
  assert.deepEqual(withFile(list, file("a", 5)).map((f) => [f.path, f.bytes.length]), [["a", 5], ["b", 2]]);
  assert.equal(filesField([], bytesToBase64), undefined);
  assert.deepEqual(filesField([{ path: "x.csv", bytes: new TextEncoder().encode("a,b\n") }], bytesToBase64), [
    { path: "x.csv", content: "YSxiCg==", encoding: "base64" },
  ]);
});

test("downloads never get a type the browser would render as a page", () => {
  assert.equal(downloadType("text/csv"), "text/csv");
  assert.equal(downloadType("image/png"), "image/png");
  for (const t of ["text/html", "image/svg+xml", "application/xhtml+xml", "text/html; charset=utf-8", undefined]) {
    assert.equal(downloadType(t), "application/octet-stream");
  }
  assert.equal(downloadName("out/report.txt"), "report.txt");
  assert.equal(downloadName(""), "file");
});
