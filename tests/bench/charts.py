"""docs/images/perf-*.png from the results (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {
    "ws-deflate": "#1f77b4",
    "ws-plain": "#6baed6",
    "docker-run": "#d62728",
    "docker-run-linebuf": "#ff9896",
    "host": "#7f7f7f",
    "sdk": "#d62728",
    "http": "#2ca02c",
    "epicbox": "#9467bd",
    "attach": "#ff7f0e",
}
LABELS = {
    "ws-deflate": "service, ws (deflate)",
    "ws-plain": "service, ws (plain)",
    "docker-run": "docker run --rm -i",
    "docker-run-linebuf": "docker run, line-buffered",
    "host": "host python3",
    "http": "service, POST /run",
}


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _hbars(ax: Any, items: list[tuple[str, dict[str, Any]]], title: str, log: bool = True) -> None:
    """Horizontal bars of medians (ms) with a whisker to p90."""
    names = [LABELS.get(k, k) for k, _ in items]
    med = [s["median"] * 1000 for _, s in items]
    p90 = [s["p90"] * 1000 for _, s in items]
    y = range(len(items))
    ax.barh(y, med, color=[COLORS.get(k, "#999") for k, _ in items])
    ax.errorbar(med, y, xerr=[[0] * len(med), [max(0, b - a) for a, b in zip(med, p90, strict=True)]],
                fmt="none", ecolor="black", capsize=3, lw=1)  # fmt: skip
    for yi, v, hi in zip(y, med, p90, strict=True):
        ax.text(max(v, hi) * (1.05 if log else 1.0), yi, f" {v:.0f} ms" if v >= 10 else f" {v:.1f} ms",
                va="center", fontsize=8)  # fmt: skip
    ax.set_yticks(list(y), names, fontsize=8)
    ax.invert_yaxis()
    top = max(max(med), max(p90))
    if log:
        ax.set_xscale("log")
        ax.set_xlim(min(med) / 2, top * 3)
    else:
        ax.set_xlim(0, top * 1.25)
    ax.set_xlabel("ms (bar: median, whisker: p90)")
    ax.set_title(title, fontsize=10)


def latency(doc: dict[str, Any], path: Path) -> Path:
    lat = doc["results"]["latency"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    _hbars(axes[0], [(k, v["first_byte"]) for k, v in lat.items()], "hello world: first output byte")
    _hbars(axes[1], [(k, v["exit"]) for k, v in lat.items()], "hello world: exit")
    return _save(fig, path)


def throughput(doc: dict[str, Any], path: Path) -> Path:
    t = doc["results"]["throughput"]
    cs = [int(c) for c in t]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for key, label, color, style in (
        ("ws_runs_per_s", "service (until idle again)", COLORS["ws-deflate"], "-o"),
        ("ws_runs_per_s_client", "service (until last exit frame)", COLORS["ws-plain"], "--o"),
        ("http_runs_per_s", "service, POST /run (until idle again)", COLORS["http"], "-^"),
        ("epicbox_runs_per_s", "epicbox (create, put, start, read, remove)", COLORS["epicbox"], "-D"),
        ("attach_runs_per_s", "SDK churn that streams (stdin, attach)", COLORS["attach"], "-v"),
        ("sdk_runs_per_s", "bare SDK create/start/wait/remove", COLORS["sdk"], "-s"),
    ):
        if any(key not in t[str(c)] for c in cs):
            continue
        med = [t[str(c)][key]["median"] for c in cs]
        lo = [m - t[str(c)][key]["min"] for m, c in zip(med, cs, strict=True)]
        hi = [t[str(c)][key]["max"] - m for m, c in zip(med, cs, strict=True)]
        ax.errorbar(cs, med, yerr=[lo, hi], fmt=style, color=color, label=label, capsize=3)
    boot = [(c, t[str(c)]["sdk_bootstrap_runs_per_s"]["median"]) for c in cs if "sdk_bootstrap_runs_per_s" in t[str(c)]]
    if boot:
        ax.plot([b[0] for b in boot], [b[1] for b in boot], "x", color="black", ms=9,
                label="SDK churn of the service's own container")  # fmt: skip
    ax.set_xticks(cs)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("runs per second (median, min-max)")
    ax.set_ylim(bottom=0)
    ax.set_title("hello world throughput", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def streaming(doc: dict[str, Any], path: Path) -> Path:
    s = doc["results"]["streaming"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, (name, title) in zip(
        axes,
        (("lines_100k", "100k short lines to the client"), ("flood_10mib", "10 MiB flood to the client")),
        strict=True,
    ):
        items = [(k, v) for k, v in s[name].items() if isinstance(v, dict) and "median" in v]
        _hbars(ax, items, title, log=False)
    return _save(fig, path)


def timeouts(doc: dict[str, Any], path: Path) -> Path:
    t = doc["results"]["timeouts"]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    keys = list(t)
    parts = (
        ("kill_after_deadline", "kill event after the deadline", "#9ecae1"),
        ("die_after_kill", "container death after the kill", "#fdae6b"),
        ("exit_frame_after_die", "exit frame after the death", "#a1d99b"),
    )
    x = range(len(keys))
    bottom = [0.0] * len(keys)
    for k, label, color in parts:
        vals = [t[key].get("timeline", {}).get(k, {}).get("median", 0) * 1000 for key in keys]
        ax.bar(x, vals, bottom=bottom, color=color, label=label)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.plot(x, [t[k]["overshoot"]["median"] * 1000 for k in keys], "k_", ms=18, label="overshoot, median")
    ax.plot(x, [t[k]["overshoot"]["max"] * 1000 for k in keys], "rv", label="overshoot, worst")
    ax.axhline(500, color="red", ls=":", lw=1, label="target: 500 ms")
    ax.set_xticks(list(x), [f"{t[k]['kind']}\n{t[k]['limit_s']:g} s" for k in keys], fontsize=8)
    ax.set_ylabel("ms past the limit")
    ax.set_title("timeout: exit frame after the limit, and where it went (medians)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def server(doc: dict[str, Any], path: Path) -> Path:
    r = doc["results"]
    cpu = r.get("cpu_per_run_ms", {})
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    labels, srv, eng = [], [], []
    for workload, sides in cpu.items():
        for side in ("ws-deflate", "ws-plain", "docker-run", "docker-run-linebuf"):
            if side in sides:
                labels.append(f"{workload}\n{LABELS[side]}")
                srv.append(sides[side]["server"]["median"] if side.startswith("ws") else 0)
                eng.append(sides[side]["engine"]["median"])
    y = range(len(labels))
    axes[0].barh(y, srv, color=COLORS["ws-deflate"], label="server process")
    axes[0].barh(y, eng, left=srv, color="#bbbbbb", label="dockerd + containerd")
    axes[0].set_yticks(list(y), labels, fontsize=6)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("CPU ms per run (median)")
    axes[0].legend(fontsize=7)
    axes[0].set_title("CPU time per run", fontsize=10)
    bars: list[tuple[str, float]] = []
    if "server_rss" in r:
        bars.append(("at start", r["server_rss"]["start_kb"] / 1024))
    if "idle_sockets" in r:
        i = r["idle_sockets"]
        bars.append(("before idle ws", i["rss_before_kb"] / 1024))
        bars.append((f"{i['count']} idle ws open", i["rss_open_kb"] / 1024))
    if "server_rss" in r:
        bars.append(("at the end", r["server_rss"]["end_kb"] / 1024))
    axes[1].bar(range(len(bars)), [b[1] for b in bars], color=COLORS["ws-plain"])
    axes[1].set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=7, rotation=20)
    axes[1].set_ylabel("server RSS, MiB")
    axes[1].set_title("server memory", fontsize=10)
    return _save(fig, path)


def draw_all(doc: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    r = doc["results"]
    drawn = []
    for key, fn in (
        ("latency", latency),
        ("throughput", throughput),
        ("streaming", streaming),
        ("timeouts", timeouts),
        ("cpu_per_run_ms", server),
    ):
        if r.get(key):
            drawn.append(fn(doc, out / f"perf-{'server' if key == 'cpu_per_run_ms' else key}.png"))
    return drawn
