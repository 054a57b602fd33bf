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
        ws, seed = lat["ws-deflate"]["first_byte"]["median"], lat["docker-run"]["first_byte"]["median"]
        out.append(
            Target(
                "first_byte",
                "hello world first byte >= 20x faster than docker run per request",
                seed / ws,
                20.0,
                True,
                f"docker run {seed * 1000:.1f} ms / WebSocket {ws * 1000:.1f} ms (medians)",
            )
        )
    if "throughput" in r and "4" in r["throughput"]:
        t = r["throughput"]["4"]
        ws, sdk = t["ws_runs_per_s"]["median"], t["sdk_runs_per_s"]["median"]
        out.append(
            Target(
                "runs_per_s_c4",
                "runs/s at concurrency 4 >= 0.9x bare SDK churn",
                ws / sdk,
                0.9,
                True,
                f"server {ws:.2f}/s / SDK create-start-wait-remove {sdk:.2f}/s (medians)",
            )
        )
    if "streaming" in r:
        s = r["streaming"]["lines_100k"]
        ws, pipe = s["ws-deflate"]["median"], s["docker-run"]["median"]
        out.append(
            Target(
                "lines_100k",
                "100k lines delivered at least as fast as docker run into a pipe",
                pipe / ws,
                1.0,
                True,
                f"docker run {pipe * 1000:.0f} ms / WebSocket {ws * 1000:.0f} ms (medians; ratio >= 1 is as fast)",
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
