import { test } from "node:test";
import assert from "node:assert/strict";
import { InputEcho, filenameProblem, inputLines } from "../src/echo.js";

test("the server's echo of what this page typed is not shown twice; other input is", () => {
  const echo = new InputEcho();
  echo.sent("yes\n");
  assert.deepEqual(echo.received("yes\n"), []); // shown when typed
  assert.deepEqual(echo.received("from the run frame\n"), ["from the run frame"]);
  assert.equal(echo.serverEchoes, true);
  echo.sent("a\n");
  echo.sent("b\n");
  assert.deepEqual(echo.received("a\n"), []);
  assert.deepEqual(echo.received("b\n"), []);
  assert.deepEqual(echo.received(""), []); // a bare EOF shows nothing
});

test("a watcher shows every line typed", () => {
  const echo = new InputEcho();
  assert.deepEqual(echo.received("one\ntwo\n"), ["one", "two"]);
  assert.deepEqual(echo.received("tail"), ["tail"]);
  assert.deepEqual(inputLines("x\r\n"), ["x"]);
});

test("file names are plain names", () => {
  assert.equal(filenameProblem("main.py"), null);
  assert.equal(filenameProblem("hottest.py"), null);
  assert.match(filenameProblem("a/b.py"), /without folders/);
  assert.match(filenameProblem(""), /empty/);
  assert.match(filenameProblem(".."), /empty/);
  assert.match(filenameProblem("x".repeat(256)), /255/);
});
