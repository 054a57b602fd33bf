import { test } from "node:test";
import assert from "node:assert/strict";
import {
  describeClose, describeError, describeExit, describeLimits, formatBytes, formatDuration, formatTimer,
} from "../src/format.js";

const limits = { timeout_s: 10, memory_mb: 128, output_bytes: 1_000_000, pids: 64 };
const exit = (over) => ({ type: "exit", reason: "exit", exit_code: 0, signal: null, duration_ms: 12, ...over });

test("exit codes and signals in words", () => {
  assert.equal(describeExit(exit({}), limits), "Exited with code 0");
  assert.equal(describeExit(exit({ exit_code: 1 }), limits), "Exited with code 1");
  assert.equal(describeExit(exit({ exit_code: 139, signal: "SIGSEGV" }), limits), "Exited with code 139 (SIGSEGV)");
  assert.equal(describeExit(exit({ exit_code: 137 }), limits), "Exited with code 137 (SIGKILL)");
  assert.equal(describeExit(exit({ exit_code: null }), limits), "Exited");
});

test("the other reasons use the effective limits", () => {
  assert.equal(describeExit(exit({ reason: "timeout", exit_code: null }), limits), "Timed out after 10 s");
  assert.equal(describeExit(exit({ reason: "timeout", exit_code: null }), { ...limits, timeout_s: 2.5 }), "Timed out after 2.5 s");
  assert.equal(describeExit(exit({ reason: "timeout" }), null), "Timed out");
  assert.equal(describeExit(exit({ reason: "oom", exit_code: null }), limits), "Out of memory (128 MB limit)");
  assert.equal(describeExit(exit({ reason: "output_limit" }), limits), "Output limit reached (1 MB)");
  assert.equal(describeExit(exit({ reason: "killed" }), limits), "Stopped");
  assert.equal(describeExit(exit({ reason: "martian" }), limits), "Ended (martian)");
});

test("durations, timers and sizes", () => {
  assert.equal(formatDuration(0), "0 ms");
  assert.equal(formatDuration(850.4), "850 ms");
  assert.equal(formatDuration(3456), "3.45 s");
  assert.equal(formatDuration(10_049), "10.0 s");
  assert.equal(formatDuration(125_000), "2 min 5 s");
  assert.equal(formatDuration(undefined), "");
  assert.equal(formatTimer(3210), "3.2 s");
  assert.equal(formatTimer(65_000), "1:05");
  assert.equal(formatBytes(1_000_000), "1 MB");
  assert.equal(formatBytes(65_536), "64 KiB");
  assert.equal(formatBytes(1_500_000), "1.5 MB");
  assert.equal(formatBytes(512), "512 B");
});

test("errors and closes in plain words", () => {
  assert.equal(describeError("busy", "queue full"), "The server is busy: queue full");
  assert.equal(describeError("code_too_large", ""), "The program is too large");
  assert.equal(describeError("new_code", "x"), "Error (new_code): x");
  assert.equal(describeClose(false, 1006, ""), "Could not connect to the server");
  assert.equal(describeClose(true, 1006, ""), "Connection closed before the run finished (code 1006)");
  assert.equal(describeLimits(limits), "Limits: 10 s · 128 MB · 1 MB output · 64 processes");
  assert.equal(describeLimits(null), "");
});

test("resources from exit and stats frames", async () => {
  const { describeResources, describeStats, memoryShare, formatMemory, formatCpu } = await import("../src/format.js");
  assert.equal(describeResources({ cpu_ms: 840, memory_peak_bytes: 61 * 2 ** 20 }), "0.84 s CPU · 61 MB peak");
  assert.equal(describeResources({ cpu_ms: null, memory_peak_bytes: null }), "");
  assert.equal(describeResources({ cpu_ms: 12 }), "0.01 s CPU");
  assert.equal(formatMemory(5.25 * 2 ** 20), "5.3 MB");
  assert.equal(formatMemory(300 * 1024), "300 KB");
  assert.equal(formatCpu(61_300), "61.3 s");
  const stats = { memory_bytes: 64 * 2 ** 20, memory_limit_bytes: 128 * 2 ** 20, cpu_ms: 1500, pids: 3 };
  assert.equal(memoryShare(stats), 0.5);
  assert.equal(memoryShare({ memory_bytes: 1 }), null);
  assert.equal(describeStats(stats), "64 MB / 128 MB · 1.50 s CPU");
});
