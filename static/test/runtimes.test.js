import { test } from "node:test";
import assert from "node:assert/strict";
import {
  FALLBACK_RUNTIMES, normalizeRuntimes, pickRuntime, runtimeField, runtimeLabel, runtimeTitle,
} from "../src/runtimes.js";

const SERVER = [
  { name: "python", default: true, python: "3.11.2", description: "Standard library only", packages: {} },
  { name: "scientific", default: false, python: "3.11.2", description: "numpy, pandas, matplotlib",
    packages: { numpy: "1.24.2", pandas: "1.5.3" } },
];

test("the server's list is kept, the default first", () => {
  const list = normalizeRuntimes(SERVER);
  assert.deepEqual(list.map((r) => r.name), ["python", "scientific"]);
  const swapped = normalizeRuntimes([{ ...SERVER[1], default: true }, { ...SERVER[0], default: false }].reverse());
  assert.equal(swapped[0].name, "scientific");
  assert.equal(swapped.filter((r) => r.default).length, 1);
});

test("anything but a list of runtimes falls back to python alone", () => {
  for (const body of [null, {}, "nope", [], [{ name: 3 }], [{ name: "<b>" }], { error: "not found" }]) {
    assert.deepEqual(normalizeRuntimes(body), FALLBACK_RUNTIMES);
  }
  const noDefault = normalizeRuntimes([{ name: "a" }, { name: "b" }, { name: "a" }]);
  assert.deepEqual(noDefault.map((r) => [r.name, r.default]), [["a", true], ["b", false]]);
});

test("labels, tooltips, the picked runtime and the run frame's field", () => {
  const list = normalizeRuntimes(SERVER);
  assert.equal(runtimeLabel(list[1]), "scientific");
  assert.equal(runtimeLabel(FALLBACK_RUNTIMES[0]), "python");
  assert.equal(runtimeLabel({ ...list[1], available: false }), "scientific (unavailable)");
  assert.equal(normalizeRuntimes([{ name: "x", available: false }])[0].available, false);
  assert.equal(runtimeTitle(list[1]), "Python 3.11.2\nnumpy, pandas, matplotlib\nPackages: numpy 1.24.2, pandas 1.5.3");
  assert.equal(pickRuntime(list, "scientific").runtime.name, "scientific");
  assert.deepEqual(pickRuntime(list, "gpu"), { runtime: list[0], missing: "gpu" });
  assert.equal(pickRuntime(list, null).runtime.name, "python");
  assert.equal(runtimeField(list, "python"), undefined); // the default is never named: v1 servers
  assert.equal(runtimeField(list, "scientific"), "scientific");
  assert.equal(runtimeField(FALLBACK_RUNTIMES, "python"), undefined);
});
