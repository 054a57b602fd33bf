"""Each measurement as one phase; sides are interleaved per iteration so drift hits all of them alike.

Sides: ``ws-deflate`` is the service over a WebSocket whose client offers permessage-deflate (as
every browser does, and hypercorn accepts it); ``ws-plain`` refuses compression; ``docker-run``
is the seed's design (``docker run --rm -i`` per request, the engine's own flags);
``docker-run-linebuf`` is the same with the program's stdout line-buffered, as the service's
bootstrap makes it (a diagnostic: it separates the cost of line buffering from the server's);
``host`` is Debian's ``python3 -c`` on the host, the floor. Before every sample the server is
settled (pool full, used sandboxes removed), and after it too, so that the CPU time charged to
a run includes its sandbox's removal and replacement.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.bench import programs as P
from tests.bench.baseline import BENCH_OWNER, SdkChurn, docker_run_args, host_python, kill_anatomy, run_process
from tests.bench.client import WsRun, open_idle, ws_run
from tests.bench.common import cpu_of, engine_pids, now, summary
from tests.bench.server import BenchServer

TARGET_CONCURRENCY = 4
LINEBUF = "import sys; sys.stdout.reconfigure(line_buffering=True)\n"


@dataclass
class Plan:
    """How much of each phase to run: ``full()`` for ``make bench``, ``quick()`` for a smoke run."""

    warmup: int
    latency_iters: int
    levels: Sequence[int]
    runs_per_level: dict[int, int]
    throughput_rounds: dict[int, int]
    stream_iters: int
    timeout_limits: Sequence[float]
    timeout_reps: int
    oom_iters: int
    idle_sockets: int

    @classmethod
    def full(cls) -> Plan:
        return cls(2, 25, (1, 4, 8), {1: 6, 4: 12, 8: 16}, {1: 2, 4: 3, 8: 2}, 4, (1.0, 2.0, 5.0), 3, 4, 100)

    @classmethod
    def quick(cls) -> Plan:
        return cls(1, 4, (1, 4, 8), {1: 4, 4: 8, 8: 8}, {1: 1, 4: 1, 8: 1}, 1, (1.0,), 1, 2, 20)


def rotated(sides: Sequence[str], i: int) -> list[str]:
    """A, B, C then B, C, A...: every side goes first as often as any other."""
    k = i % len(sides)
    return [*sides[k:], *sides[:k]]


@dataclass
class Bench:
    server: BenchServer
    config: dict[str, Any]
    churn_api: Any
    plan: Plan
    log: Callable[[str], None]
    results: dict[str, Any] = field(default_factory=dict)
    # workload -> side -> {"server": [cpu s...], "engine": [cpu s...]}
    cpu: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    engine: list[int] = field(default_factory=engine_pids)
    failures: list[dict[str, Any]] = field(default_factory=list)  # samples whose output or outcome was wrong
    ws_runs: int = 0  # runs the server has served, for memory growth per run

    # -- helpers ----------------------------------------------------------------------------------
    def command(self, side: str, code: str) -> list[str]:
        if side == "docker-run":
            return docker_run_args(self.config, ["python3", "-c", code])
        if side == "docker-run-linebuf":
            return docker_run_args(self.config, ["python3", "-c", LINEBUF + code])
        if side == "host":
            return [host_python(), "-c", code]
        raise ValueError(side)

    async def side(
        self, side: str, code: str, check: Callable[[Any], None] | None = None, workload: str | None = None, **kw: Any
    ) -> Any:
        """One sample of one side, from a settled server; with ``workload``, its CPU time is recorded."""
        self.server.settle()
        cpu0, eng0 = self.server.cpu_s(), cpu_of(self.engine)
        if side.startswith("ws-"):
            self.ws_runs += 1
            r: Any = await ws_run(self.server.ws_url, code, mode=side.removeprefix("ws-"), **kw)
        else:
            r = await run_process(self.command(side, code))
        if workload:
            acc = self.cpu.setdefault(workload, {}).setdefault(side, {"server": [], "engine": []})

            def charge() -> None:
                acc["server"].append(self.server.cpu_s() - cpu0)
                acc["engine"].append(cpu_of(self.engine) - eng0)

            self.server.settle(on_idle=charge)
        if check:
            try:
                check(r)
            except AssertionError as exc:  # a wrong answer is a finding, not a reason to stop measuring
                detail = exc.args[0] if exc.args else repr(r)
                self.failures.append({"workload": workload or code[:40], "side": side, "detail": repr(detail)[:500]})
                self.log(f"  WRONG RESULT ({side}, {workload or code[:40]!r}): {detail!r:.300}")
                return None
        return r

    # -- phases ----------------------------------------------------------------------------------
    async def latency(self) -> None:
        """Hello world: run frame -> first stdout frame / exit frame, against spawn -> first byte / exit."""
        sides = ["ws-deflate", "ws-plain", "docker-run", "host"]
        samples: dict[str, dict[str, list[float]]] = {s: {"first_byte": [], "exit": [], "connect": []} for s in sides}
        timeline: list[dict[str, float]] = []

        def check(r: Any) -> None:
            if isinstance(r, WsRun):
                assert r.first_text == P.HELLO_OUT and r.exit["exit_code"] == 0, (r.first_text, r.exit)
            else:
                assert r.returncode == 0 and r.stdout_bytes == len(P.HELLO_OUT), r

        for _ in range(self.plan.warmup):
            for s in sides:
                await self.side(s, P.HELLO, check)
        fo = "sce_first_output_seconds"
        fo_sum, fo_count = self.server.metric(f"{fo}_sum"), self.server.metric(f"{fo}_count")
        for i in range(self.plan.latency_iters):
            for s in rotated(sides, i):
                r = await self.side(s, P.HELLO, check, workload="hello")
                if r is None:
                    continue
                samples[s]["first_byte"].append(r.first_byte_s)
                samples[s]["exit"].append(r.exit_s)
                if isinstance(r, WsRun):
                    samples[s]["connect"].append(r.connect_s)
                    if s == "ws-deflate":
                        timeline.append(self.exit_timeline(r))
        self.results["latency"] = {s: {k: summary(v) for k, v in m.items() if v} for s, m in samples.items()}
        self.results["latency_timeline"] = {
            k: summary([t[k] for t in timeline if k in t]) for k in ("die_after_first_byte", "exit_frame_after_die")
        }
        # the server's own histogram: from writing the program into the sandbox to reading its first output
        n = self.server.metric(f"{fo}_count") - fo_count
        self.results["latency_timeline"]["server_program_to_first_output_mean"] = (
            (self.server.metric(f"{fo}_sum") - fo_sum) / n if n else float("nan")
        )

    async def idle_sockets(self) -> None:
        """Server RSS with N connected WebSockets that have not sent their run frame."""
        self.server.settle()
        await asyncio.sleep(0.5)
        rss0 = self.server.rss_kb()
        t0 = now()
        conns = await open_idle(self.server.ws_url, self.plan.idle_sockets)
        opened_s = now() - t0
        await asyncio.sleep(1.0)
        rss1 = self.server.rss_kb()
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
        await asyncio.sleep(0.5)
        rss2 = self.server.rss_kb()
        n = self.plan.idle_sockets
        self.results["idle_sockets"] = {
            "count": n,
            "rss_before_kb": rss0,
            "rss_open_kb": rss1,
            "rss_after_close_kb": rss2,
            "per_socket_kb": (rss1 - rss0) / n,
            "open_all_s": opened_s,
        }

    async def ws_batch(self, total: int, concurrency: int) -> dict[str, Any]:
        """``total`` hello-world runs, ``concurrency`` clients at a time, each on its own connection."""
        self.server.settle()
        cpu0, eng0, rss0 = self.server.cpu_s(), cpu_of(self.engine), self.server.rss_kb()
        counter = itertools.count()
        failures: list[str] = []

        async def worker() -> None:
            while next(counter) < total:
                self.ws_runs += 1
                try:
                    r = await ws_run(self.server.ws_url, P.HELLO)
                    if r.first_text != P.HELLO_OUT:
                        failures.append(repr(r.exit))
                except Exception as exc:  # counted, not fatal: the rate is of successful runs
                    failures.append(f"{type(exc).__name__}: {exc}")

        t0 = now()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        t_exit = now() - t0
        self.server.settle()
        t_idle = now() - t0
        ok = total - len(failures)
        return {
            "runs": total,
            "ok": ok,
            "failures": failures[:5],
            "runs_per_s": ok / t_idle,
            "runs_per_s_client": ok / t_exit,
            "server_cpu_ms_per_run": (self.server.cpu_s() - cpu0) * 1000 / total,
            "engine_cpu_ms_per_run": (cpu_of(self.engine) - eng0) * 1000 / total,
            "server_rss_kb_before": rss0,
            "server_rss_kb_after": self.server.rss_kb(),
        }

    async def throughput(self) -> None:
        """N hello-world runs at concurrency c through the server, against bare SDK churn at c.

        The server's rate counts until it is idle again (every used sandbox removed, the pool
        refilled), so both sides have done the same engine work: N creates, starts and removals.
        At the target's concurrency a third side churns the service's own container (its
        bootstrap, which imports what a run needs before it waits on stdin, here finding EOF):
        a diagnostic that separates what the sandbox costs from what the server costs.
        """
        churns = {
            "sdk": SdkChurn(self.churn_api, self.config, ["python3", "-c", P.PASS]),
            "sdk-bootstrap": SdkChurn(self.churn_api, self.config, list(self.config["command"])),
        }
        out: dict[str, Any] = {}
        for c in self.plan.levels:
            n = self.plan.runs_per_level[c]
            sides = ["ws", "sdk", "sdk-bootstrap"] if c == TARGET_CONCURRENCY else ["ws", "sdk"]
            ws_batches: list[dict[str, Any]] = []
            rates: dict[str, list[float]] = {s: [] for s in sides[1:]}
            engine_ms: dict[str, list[float]] = {s: [] for s in sides[1:]}
            for rnd in range(self.plan.throughput_rounds[c]):
                for s in rotated(sides, rnd):
                    if s == "ws":
                        ws_batches.append(await self.ws_batch(n, c))
                        continue
                    self.server.settle()
                    eng0 = cpu_of(self.engine)
                    stop = threading.Event()
                    try:
                        rates[s].append(n / await asyncio.to_thread(churns[s].run, n, c, stop))
                    finally:
                        stop.set()  # if interrupted, the workers stop (removing what they made)
                    engine_ms[s].append((cpu_of(self.engine) - eng0) * 1000 / n)
            res = out[str(c)] = {
                "runs": n,
                "ws_runs_per_s": summary([b["runs_per_s"] for b in ws_batches]),
                "ws_runs_per_s_client": summary([b["runs_per_s_client"] for b in ws_batches]),
                "server_cpu_ms_per_run": summary([b["server_cpu_ms_per_run"] for b in ws_batches]),
                "engine_cpu_ms_per_run_ws": summary([b["engine_cpu_ms_per_run"] for b in ws_batches]),
                "failures": sum(b["runs"] - b["ok"] for b in ws_batches),
                "failure_examples": [f for b in ws_batches for f in b["failures"]][:5],
                "server_rss_kb_after": ws_batches[-1]["server_rss_kb_after"],
            }
            for s in sides[1:]:
                key = s.replace("-", "_")
                res[f"{key}_runs_per_s"] = summary(rates[s])
                res[f"engine_cpu_ms_per_run_{key}"] = summary(engine_ms[s])
            self.log(f"  c={c}: ws {res['ws_runs_per_s']['median']:.2f}/s, sdk {res['sdk_runs_per_s']['median']:.2f}/s")
        self.results["throughput"] = out

    async def streaming(self) -> None:
        """100k short lines and a 10 MiB flood, all bytes to the client, against docker run into a pipe."""
        sides = ["ws-deflate", "ws-plain", "docker-run", "docker-run-linebuf", "host"]
        out: dict[str, Any] = {}
        for name, code, expected in (("lines_100k", P.LINES, P.LINES_BYTES), ("flood_10mib", P.FLOOD, P.FLOOD_BYTES)):

            def check(r: Any, expected: int = expected) -> None:
                if isinstance(r, WsRun):
                    assert r.stdout_chars == expected and r.exit["stdout_bytes"] == expected, (
                        r.stdout_chars,
                        f"exit frame at {r.exit_s:.3f} s",
                        r.exit,
                    )
                    assert not r.exit["truncated"] and r.exit["exit_code"] == 0, r.exit
                else:
                    assert r.returncode == 0 and r.stdout_bytes == expected, r

            samples: dict[str, list[float]] = {s: [] for s in sides}
            frames: list[int] = []
            for i in range(self.plan.stream_iters):
                for s in rotated(sides, i):
                    r = await self.side(s, code, check, workload=name)
                    if r is None:
                        continue
                    samples[s].append(r.exit_s)
                    if s == "ws-deflate":
                        frames.append(r.frames)
            out[name] = {s: summary(v) for s, v in samples.items()}
            out[name]["bytes"] = expected
            out[name]["ws_frames_median"] = sorted(frames)[len(frames) // 2] if frames else 0
        self.results["streaming"] = out

    async def timeouts(self) -> None:
        """Wall-clock limit accuracy: exit frame time (from the run frame) minus the requested limit.

        Interleaved with the engine's own share of it: a container running the same program,
        killed through the SDK, timed from the kill call.
        """
        out: dict[str, Any] = {}
        kinds = {"busy": P.BUSY, "fork": P.FORK_BUSY}
        samples: dict[tuple[str, float], list[tuple[float, float]]] = {}
        runs: dict[tuple[str, float], list[dict[str, float]]] = {}

        def check(r: Any) -> None:
            assert r.exit["reason"] == "timeout", r.exit

        anatomy: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
        timeline: dict[tuple[str, float], list[dict[str, float]]] = {}
        i = 0
        for _ in range(self.plan.timeout_reps):
            for limit in self.plan.timeout_limits:
                for kind in rotated(list(kinds), i):
                    i += 1
                    r = await self.side("ws-deflate", kinds[kind], check, run_timeout=limit)
                    if r is None:
                        continue
                    over = (r.exit_s - limit, r.exit["duration_ms"] / 1000 - limit)
                    samples.setdefault((kind, limit), []).append(over)
                    timeline.setdefault((kind, limit), []).append(tl := self.kill_timeline(r, limit))
                    runs.setdefault((kind, limit), []).append({"overshoot": over[0], "server": over[1], **tl})
                    if limit == self.plan.timeout_limits[0]:
                        self.server.settle()
                        anatomy[kind].append(await self.kill_anatomy(kinds[kind], limit))
        for (kind, limit), pairs in samples.items():
            out[f"{kind}_{limit:g}s"] = {
                "kind": kind,
                "limit_s": limit,
                "overshoot": summary([p[0] for p in pairs]),
                "overshoot_server": summary([p[1] for p in pairs]),
                "timeline": {
                    k: summary([t[k] for t in timeline[(kind, limit)] if k in t])
                    for k in ("kill_after_deadline", "die_after_kill", "exit_frame_after_die")
                },
                "worst_run": max(runs[(kind, limit)], key=lambda x: x["overshoot"]),
            }
        self.results["timeouts"] = out
        keys = ("kill_event", "kill_call", "wait_returns", "die_event", "inspect_done")
        self.results["kill_anatomy"] = {
            kind: {k: summary([x[k] for x in xs if k in x]) for k in keys} for kind, xs in anatomy.items()
        }

    async def kill_anatomy(self, code: str, after_s: float) -> dict[str, float]:
        """The engine alone, at a deadline: SDK kill of a container running ``code`` (see baseline)."""
        self.server.settle()
        a = await asyncio.to_thread(kill_anatomy, self.churn_api, self.config, code, after_s)
        self.server.settle()  # its events have arrived
        events = self.server.watch.events(BENCH_OWNER, a["called_at"] - 1, a["called_at"] + 30)
        out = {k: a[k] for k in ("kill_call", "wait_returns", "inspect_done")}
        for action in ("kill", "die"):
            times = [t for cid, act, t in events if cid == a["id"] and act == action]
            if times:
                out[f"{action}_event"] = times[0] - a["called_at"]
        return out

    def exit_timeline(self, r: WsRun) -> dict[str, float]:
        """A run that ends by itself: its container's die event after the first byte, the exit frame after that."""
        end = r.sent_at + r.exit_s
        dies = [t for _, a, t in self.server.watch.events(self.server.owner, r.sent_at, end + 1.0) if a == "die"]
        if not dies or r.first_byte_s is None:
            return {}
        return {"die_after_first_byte": dies[0] - (r.sent_at + r.first_byte_s), "exit_frame_after_die": end - dies[0]}

    def kill_timeline(self, r: WsRun, limit: float) -> dict[str, float]:
        """Where a timed-out run's overshoot went, from the engine's kill and die events for it."""
        self.server.settle()  # the events have arrived
        end = r.sent_at + r.exit_s
        events = self.server.watch.events(self.server.owner, r.sent_at, end + 1.0)
        kills = [t for _, a, t in events if a == "kill"]
        dies = [t for _, a, t in events if a == "die"]
        out: dict[str, float] = {}
        if kills:
            out["kill_after_deadline"] = kills[0] - (r.sent_at + limit)
            if dies:
                out["die_after_kill"] = dies[0] - kills[0]
                out["exit_frame_after_die"] = end - dies[0]
        return out

    async def oom(self) -> None:
        """Time to report an out-of-memory kill: run frame -> exit frame, against docker run spawn -> exit."""
        samples: dict[str, list[float]] = {"ws-deflate": [], "docker-run": []}

        def check(r: Any) -> None:
            if isinstance(r, WsRun):
                assert r.exit["reason"] == "oom", r.exit
            else:
                assert r.returncode == 137, r

        for i in range(self.plan.oom_iters):
            for s in rotated(list(samples), i):
                r = await self.side(s, P.OOM, check)
                if r is not None:
                    samples[s].append(r.exit_s)
        self.results["oom"] = {s: summary(v) for s, v in samples.items()}


PHASES: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "latency": Bench.latency,
    "idle_sockets": Bench.idle_sockets,
    "throughput": Bench.throughput,
    "streaming": Bench.streaming,
    "timeouts": Bench.timeouts,
    "oom": Bench.oom,
}
