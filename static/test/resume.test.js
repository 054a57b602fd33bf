import { test } from "node:test";
import assert from "node:assert/strict";
import { SeqGate, reconnectFrame, shouldResume } from "../src/resume.js";

test("frames seen before a drop are dropped when the resume sends them again", () => {
  const gate = new SeqGate();
  const seen = [];
  const feed = (frames) => frames.forEach((f) => gate.accept(f) && seen.push(f.seq ?? f.type));
  feed([{ type: "started" }, { type: "stdout", seq: 1 }, { type: "stdout", seq: 2 }]);
  feed([{ type: "stdout", seq: 1 }, { type: "stdout", seq: 2 }, { type: "stdout", seq: 3 }]);
  feed([{ type: "started" }, { type: "stdout", seq: 3 }, { type: "exit", seq: 4 }]); // a watcher's rejoin
  assert.deepEqual(seen, ["started", 1, 2, 3, 4]);
  assert.equal(gate.last, 4);
});

test("frames without seq (a version-1 server) all pass", () => {
  const gate = new SeqGate();
  assert.ok(gate.accept({ type: "stdout" }));
  assert.ok(gate.accept({ type: "stdout" }));
});

test("only a drop of a live run the page can drive is resumed", () => {
  const live = { code: 1006, ended: false, userEnded: false, canResume: true };
  assert.equal(shouldResume(live), true);
  assert.equal(shouldResume({ ...live, code: 1000 }), false);
  assert.equal(shouldResume({ ...live, code: 1008 }), false);
  assert.equal(shouldResume({ ...live, ended: true }), false);
  assert.equal(shouldResume({ ...live, userEnded: true }), false);
  assert.equal(shouldResume({ ...live, canResume: false }), false);
});

test("the reconnect frame", () => {
  assert.deepEqual(reconnectFrame("run", { id: "r1", token: "t", after: 7 }), { type: "resume", id: "r1", token: "t", after: 7 });
  assert.deepEqual(reconnectFrame("watch", { id: "r1", token: "w", after: 7 }), { type: "watch", id: "r1", token: "w" });
});
