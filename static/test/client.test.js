import { test } from "node:test";
import assert from "node:assert/strict";

// A stand-in for the browser's WebSocket: the test plays the server.
class FakeSocket extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static all = [];

  constructor(url) {
    super();
    this.url = url;
    this.readyState = FakeSocket.CONNECTING;
    this.sent = [];
    FakeSocket.all.push(this);
  }

  send(text) { this.sent.push(JSON.parse(text)); }
  close(code = 1000) { this.drop(code); }

  // server side
  open() {
    this.readyState = FakeSocket.OPEN;
    this.dispatchEvent(new Event("open"));
  }
  frame(f) {
    const e = new Event("message");
    e.data = JSON.stringify(f);
    this.dispatchEvent(e);
  }
  drop(code = 1006) {
    if (this.readyState === FakeSocket.CLOSED) return;
    this.readyState = FakeSocket.CLOSED;
    const e = new Event("close");
    e.code = code;
    e.reason = "";
    this.dispatchEvent(e);
  }
}
globalThis.WebSocket = FakeSocket;
const { RunSession } = await import("../src/client.js");

const tick = () => new Promise((r) => setTimeout(r, 5));

function session(first = { type: "run", code: "x" }) {
  FakeSocket.all = [];
  const log = { frames: [], events: [] };
  const s = new RunSession("ws://h/run", first, {
    onOpen: () => log.events.push("open"),
    onFrame: (f) => log.frames.push(f.seq ?? f.type),
    onReconnecting: (n) => log.events.push(`reconnecting ${n}`),
    onResumed: () => log.events.push("resumed"),
    onClose: (c) => log.events.push(`close ${c.code}${c.lost ? " lost" : ""}`),
  }, { delays: [0, 0, 0] });
  return { s, log };
}

const started = { type: "started", id: "r1", token: "T", watch_token: "W", limits: {} };

test("a drop mid-run is resumed after the last seq, repeats dropped", async () => {
  const { log } = session();
  const [a] = FakeSocket.all;
  a.open();
  a.frame(started);
  a.frame({ type: "stdout", data: "1\n", seq: 1 });
  a.frame({ type: "stdout", data: "2\n", seq: 2 });
  a.drop(1006);
  await tick();
  const b = FakeSocket.all[1];
  b.open();
  assert.deepEqual(b.sent[0], { type: "resume", id: "r1", token: "T", after: 2 });
  b.frame({ type: "stdout", data: "2\n", seq: 2 });
  b.frame({ type: "stdout", data: "3\n", seq: 3 });
  b.frame({ type: "exit", reason: "exit", exit_code: 0, seq: 4 });
  b.drop(1000);
  assert.deepEqual(log.frames, ["started", 1, 2, 3, 4]);
  assert.deepEqual(log.events, ["open", "reconnecting 1", "resumed", "close 1000"]);
});

test("a server that stays away: a few tries, then the run is given up", async () => {
  const { log } = session();
  const [a] = FakeSocket.all;
  a.open();
  a.frame(started);
  a.drop(1006);
  for (let i = 1; i <= 3; i++) {
    await tick();
    FakeSocket.all[i].drop(1006); // never opens
  }
  await tick();
  assert.equal(FakeSocket.all.length, 4);
  assert.deepEqual(log.events, ["open", "reconnecting 1", "reconnecting 2", "reconnecting 3", "close 1006 lost"]);
});

test("no resume before started, after exit, or after Stop", async () => {
  {
    const { log } = session();
    FakeSocket.all[0].open();
    FakeSocket.all[0].drop(1006);
    await tick();
    assert.equal(FakeSocket.all.length, 1);
    assert.deepEqual(log.events, ["open", "close 1006"]);
  }
  {
    const { s } = session();
    const [a] = FakeSocket.all;
    a.open();
    a.frame(started);
    s.kill();
    assert.deepEqual(a.sent.at(-1), { type: "kill" });
    a.drop(1006);
    await tick();
    assert.equal(FakeSocket.all.length, 1);
  }
});

test("Stop between connections is sent on the next one", async () => {
  const { s } = session();
  const [a] = FakeSocket.all;
  a.open();
  a.frame(started);
  a.drop(1006);
  s.kill(); // while reconnecting
  await tick();
  const b = FakeSocket.all[1];
  b.open();
  assert.deepEqual(b.sent.map((f) => f.type), ["resume", "kill"]);
});

test("a watcher rejoins with its watch frame and skips the replayed start", async () => {
  const { log } = session({ type: "watch", id: "r1", token: "W" });
  const [a] = FakeSocket.all;
  a.open();
  assert.deepEqual(a.sent[0], { type: "watch", id: "r1", token: "W" });
  a.frame({ ...started, token: undefined });
  a.frame({ type: "stdout", data: "1\n", seq: 1 });
  a.drop(1006);
  await tick();
  const b = FakeSocket.all[1];
  b.open();
  assert.deepEqual(b.sent[0], { type: "watch", id: "r1", token: "W" });
  b.frame({ ...started, token: undefined });
  b.frame({ type: "stdout", data: "1\n", seq: 1 });
  b.frame({ type: "stdout", data: "2\n", seq: 2 });
  assert.deepEqual(log.frames, ["started", 1, 2]);
});
