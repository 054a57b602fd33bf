// Runtimes from GET /runtimes (protocol v2): pure helpers, tested with node's test runner.

/** What the page offers when the server has no GET /runtimes (a version-1 server). */
export const FALLBACK_RUNTIMES = Object.freeze([
  Object.freeze({ name: "python", default: true, python: "", description: "Python", packages: {}, available: true }),
]);

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * The server's answer as a clean list, the default first; the fallback when the answer is
 * not a list of runtimes (a 404 page, a proxy's error, nonsense).
 */
export function normalizeRuntimes(body) {
  if (!Array.isArray(body)) return FALLBACK_RUNTIMES;
  const seen = new Set();
  const list = [];
  for (const r of body) {
    if (!r || typeof r !== "object" || typeof r.name !== "string" || !NAME.test(r.name) || seen.has(r.name)) continue;
    seen.add(r.name);
    list.push({
      name: r.name,
      default: r.default === true,
      python: typeof r.python === "string" ? r.python : "",
      description: typeof r.description === "string" ? r.description : "",
      packages: r.packages && typeof r.packages === "object" && !Array.isArray(r.packages) ? r.packages : {},
      available: r.available !== false,
    });
  }
  if (list.length === 0) return FALLBACK_RUNTIMES;
  const i = list.findIndex((r) => r.default);
  const def = i === -1 ? 0 : i;
  list.forEach((r, j) => { r.default = j === def; });
  list.unshift(...list.splice(def, 1));
  return list;
}

/** "scientific" for the picker: short enough for a phone (the Python version is in the tooltip). */
export function runtimeLabel(r) {
  return r.available === false ? `${r.name} (unavailable)` : r.name;
}

/** A tooltip: the Python version, the description and the packages with their versions. */
export function runtimeTitle(r) {
  const pkgs = Object.entries(r.packages || {}).map(([k, v]) => (v ? `${k} ${v}` : k));
  const lines = [];
  if (r.python) lines.push(`Python ${r.python}`);
  if (r.description) lines.push(r.description);
  if (pkgs.length) lines.push(`Packages: ${pkgs.join(", ")}`);
  return lines.join("\n");
}

/**
 * The runtime to select: `wanted` when the list has it, else the default. A name the server does
 * not offer is reported (so a share link naming a missing runtime can say so).
 */
export function pickRuntime(list, wanted) {
  const def = list[0];
  if (!wanted) return { runtime: def, missing: null };
  const found = list.find((r) => r.name === wanted);
  return found ? { runtime: found, missing: null } : { runtime: def, missing: wanted };
}

/** The run frame's `runtime` field: omitted for the default, so version-1 servers are unaffected. */
export function runtimeField(list, name) {
  if (!name) return undefined;
  const def = list[0];
  return def && def.name === name ? undefined : name;
}
