"""The issue's targets, each a ratio taken within one run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Target:
    key: str
    goal: str
    value: float
    threshold: float
    higher_is_better: bool
    detail: str

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def evaluate(r: dict[str, Any]) -> list[Target]:
    out: list[Target] = []
    if "latency" in r:
        lat = r["latency"]
        seed_fb, seed_exit = lat["docker-run"]["first_byte"]["median"], lat["docker-run"]["exit"]["median"]
        host = lat["host"]["first_byte"]["median"]
        ws_fb = lat["ws-deflate"]["first_byte_open"]["median"]
        ws_exit = lat["ws-deflate"]["exit_open"]["median"]
        out.append(
            Target(
                "first_byte",
                "hello world first byte, WebSocket open included, >= 25x faster than docker run",
                seed_fb / ws_fb,
                25.0,
                True,
                f"docker run {seed_fb * 1000:.1f} ms / WebSocket {ws_fb * 1000:.1f} ms from opening it (medians)",
            )
        )
        out.append(
            Target(
                "first_byte_host",
                "hello world first byte no slower than 0.25x host python3 -c 'print(4)'",
                host / ws_fb,
                0.25,
                True,
                f"host {host * 1000:.1f} ms / WebSocket {ws_fb * 1000:.1f} ms (medians)",
            )
        )
        out.append(
            Target(
                "exit_ws",
                "hello world exit frame, WebSocket open included, >= 12x faster than the whole docker run",
                seed_exit / ws_exit,
                12.0,
                True,
                f"docker run {seed_exit * 1000:.0f} ms / WebSocket {ws_exit * 1000:.1f} ms (medians)",
            )
        )
        if "http" in lat and lat["http"].get("exit"):
            http = lat["http"]["exit"]["median"]
            out.append(
                Target(
                    "exit_http",
                    "hello world POST /run answered >= 12x faster than the whole docker run",
                    seed_exit / http,
                    12.0,
                    True,
                    f"docker run {seed_exit * 1000:.0f} ms / POST /run {http * 1000:.1f} ms (medians)",
                )
            )
    if "timeline" in r:
        tl = r["timeline"]
        seed = tl["seed_first_byte"]["median"]
        st = tl["steady"]["first_byte"]
        out.append(
            Target(
                "first_byte_steady",
                f"hello world first byte from opening the WebSocket, at a steady {tl['steady']['rate']:g} runs/s, "
                ">= 40x faster than docker run",
                seed / st["median"],
                40.0,
                True,
                f"docker run {seed * 1000:.0f} ms / WebSocket {st['median'] * 1000:.1f} ms (medians, same phase)",
            )
        )
        out.append(
            Target(
                "first_byte_steady_p90",
                f"at a steady {tl['steady']['rate']:g} runs/s, first byte p90 within 2x of its median",
                st["p90"] / st["median"],
                2.0,
                False,
                f"p90 {st['p90'] * 1000:.1f} ms / median {st['median'] * 1000:.1f} ms",
            )
        )
    for c, t in r.get("throughput", {}).items():
        sdk = t["sdk_runs_per_s"]["median"]
        ws = t["ws_runs_per_s"]["median"]
        out.append(
            Target(
                f"runs_per_s_c{c}",
                f"runs/s at concurrency {c} >= 1.0x bare SDK churn",
                ws / sdk,
                1.0,
                True,
                f"WebSocket {ws:.2f}/s / SDK create-start-wait-remove {sdk:.2f}/s (medians)",
            )
        )
        if "epicbox_runs_per_s" in t:
            epic = t["epicbox_runs_per_s"]["median"]
            for side, name in (("ws", "WebSocket"), ("http", "POST /run")):
                ours = t[f"{side}_runs_per_s"]["median"]
                out.append(
                    Target(
                        f"epicbox_{side}_c{c}",
                        f"{name} runs/s at concurrency {c} >= 1.1x epicbox's",
                        ours / epic,
                        1.1,
                        True,
                        f"{name} {ours:.2f}/s / epicbox {epic:.2f}/s (medians)",
                    )
                )
    if "streaming" in r:
        s = r["streaming"]["lines_100k"]
        ws, pipe = s["ws-deflate"]["median"], s["docker-run"]["median"]
        out.append(
            Target(
                "lines_100k",
                "100k lines >= 1.5x as fast as a block-buffered docker run into a pipe",
                pipe / ws,
                1.5,
                True,
                f"docker run {pipe * 1000:.0f} ms / WebSocket {ws * 1000:.0f} ms (medians)",
            )
        )
    if "memory" in r:
        m = r["memory"]
        out.append(
            Target(
                "memory",
                f"server RSS growth over {m['runs']} mixed runs after {m['warmup_runs']} <= 6 MiB",
                m["growth_kb"] / 1024,
                6.0,
                False,
                f"{m['rss_before_kb'] / 1024:.1f} MiB -> {m['rss_after_kb'] / 1024:.1f} MiB",
            )
        )
    if "sessions" in r:
        ses = r["sessions"]
        seed, live = ses["hello"]["seed_exit"]["median"], ses["hello"]["session_exit_open"]["median"]
        out.append(
            Target(
                "session_exit",
                "hello world in a live session, WebSocket connect to exit, >= 40x faster than docker run",
                seed / live,
                40.0,
                True,
                f"docker run {seed * 1000:.0f} ms / session run {live * 1000:.1f} ms (medians)",
            )
        )
        ws = ses["sequential"]["ws"]
        out.append(
            Target(
                "session_runs_per_s",
                "sequential hello-world runs in one session (a WebSocket each) >= 100 a second",
                ws["runs_per_s"],
                100.0,
                True,
                f"{ws['runs']} runs in {ws['seconds']:.2f} s; POST /run on one connection: "
                f"{ses['sequential']['http']['runs_per_s']:.0f}/s",
            )
        )
    if "timeouts" in r:
        worst = max(r["timeouts"].values(), key=lambda t: t["overshoot"]["max"])
        out.append(
            Target(
                "timeout",
                "a timed-out run's exit frame within 0.5 s of its limit (worst sample)",
                worst["overshoot"]["max"],
                0.5,
                False,
                f"worst overshoot {worst['overshoot']['max'] * 1000:.0f} ms "
                f"({worst['kind']}, {worst['limit_s']:g} s limit)",
            )
        )
    return out
