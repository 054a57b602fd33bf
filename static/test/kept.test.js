import { test } from "node:test";
import assert from "node:assert/strict";
import { describeExpiry, describeSession, sessionsUrl, withSession } from "../src/kept.js";

test("a session run's WebSocket URL names the session for a balancer", () => {
  assert.equal(withSession("ws://h/run", "sce1.ab"), "ws://h/run?session=sce1.ab");
  assert.equal(withSession("ws://h/run?token=t", "sce1.ab"), "ws://h/run?token=t&session=sce1.ab");
});

test("the page's token goes with the session requests", () => {
  assert.equal(sessionsUrl({ search: "" }), "/sessions");
  assert.equal(sessionsUrl({ search: "?token=a b" }, "/x.1"), "/sessions/x.1?token=a%20b");
});

test("the status bar says the session's state, runs and expiry", () => {
  const now = Date.parse("2026-12-03T10:00:00Z");
  assert.equal(describeExpiry("2026-12-03T10:00:40Z", now), "expires in 40 s");
  assert.equal(describeExpiry("2026-12-03T10:10:00Z", now), "expires in 10 min");
  assert.equal(describeExpiry("nonsense", now), "");
  assert.equal(
    describeSession({ state: "running", runs: 1, expires_at: "2026-12-03T10:10:00Z" }, now),
    "Session running · 1 run · expires in 10 min",
  );
  assert.equal(describeSession({ state: "idle", runs: 3 }, now), "Session idle · 3 runs");
});
