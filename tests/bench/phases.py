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
import math
import os
import random
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from app.settings import Settings
from tests.bench import programs as P
from tests.bench.baseline import (
    BENCH_OWNER,
    AttachChurn,
    SdkChurn,
    docker_run_args,
    host_python,
    kill_anatomy,
    run_process,
)
from tests.bench.client import HttpRun, WsRun, http_run, open_idle, ws_cut, ws_run
from tests.bench.common import (
    balanced_order,
    cpu_of,
    design_period,
    engine_pids,
    machine_cpu_s,
    now,
    percentile,
    summary,
)
from tests.bench.peers import Epicbox
from tests.bench.server import BenchServer

TARGET_CONCURRENCY = 4
# the throughput phase's sides, in the order its balanced design rotates them
THROUGHPUT_SIDES = ("ws", "http", "epicbox", "attach", "sdk")
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
    mixed_warmup: int = 200
    mixed_runs: int = 1500
    scale_clients: int = 200
    session_runs: int = 300  # sequential hello runs in one session, per transport
    steady_rate: float = 10.0  # runs/s started on a clock, below the engine's churn rate
    steady_runs: int = 100
    bursts: int = 5
    burst_clients: int = 8
    burst_quiet_s: float = 20.0  # idle before each burst (a pool sized by recent demand has shrunk)

    @classmethod
    def full(cls) -> Plan:
        rounds = design_period(len(THROUGHPUT_SIDES))  # one whole balanced design a level
        return cls(2, 25, (4, 16), {4: 60, 16: 80}, {4: rounds, 16: rounds}, 4, (1.0, 2.0, 5.0), 3, 4, 100)

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            1, 4, (4, 16), {4: 8, 16: 16}, {4: 1, 16: 1}, 1, (1.0,), 1, 2, 20, 20, 100, 40, 50, 5.0, 20, 2, 8, 3.0
        )


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
        elif side == "http":
            self.ws_runs += 1
            r = await http_run(self.server.url, code, **kw)
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
        sides = ["ws-deflate", "ws-plain", "http", "docker-run", "host"]
        samples: dict[str, dict[str, list[float]]] = {
            s: {"first_byte": [], "exit": [], "connect": [], "first_byte_open": [], "exit_open": []} for s in sides
        }
        timeline: list[dict[str, float]] = []

        def check(r: Any) -> None:
            if isinstance(r, WsRun | HttpRun):
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
                    samples[s]["first_byte_open"].append(r.connect_s + (r.first_byte_s or math.nan))
                    samples[s]["exit_open"].append(r.connect_s + r.exit_s)
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

    async def timeline(self) -> None:
        """One run's timeline as a client lives it (from opening the WebSocket: connected, started,
        first stdout byte, exit), at a steady rate started on a clock (open loop, below the engine's
        churn rate) and in bursts after a quiet period (``burst_clients`` runs at the same moment:
        how many found a warm sandbox, by the server's pool counters), against the seed's
        ``docker run`` measured in the same phase, between the bursts."""
        marks = ("connect", "started", "first_byte", "exit")

        def stamps(r: WsRun) -> dict[str, float]:
            return {
                "connect": r.connect_s,
                "started": r.connect_s + (r.started_s if r.started_s is not None else math.nan),
                "first_byte": r.connect_s + (r.first_byte_s if r.first_byte_s is not None else math.nan),
                "exit": r.connect_s + r.exit_s,
            }

        def ok(r: Any) -> bool:
            return isinstance(r, WsRun) and r.first_text == P.HELLO_OUT and r.exit.get("exit_code") == 0

        def pool() -> dict[str, Any]:
            return dict(self.server.http.get("/healthz").json()["pool"])

        # steady: a run started every 1/rate s whatever the others are doing
        self.server.settle()
        rate, n = self.plan.steady_rate, self.plan.steady_runs
        t0 = now()

        async def at(i: int) -> Any:
            await asyncio.sleep(max(0.0, t0 + i / rate - now()))
            return await ws_run(self.server.ws_url, P.HELLO)

        before = pool()
        steady = await asyncio.gather(*(at(i) for i in range(n)), return_exceptions=True)
        took = now() - t0
        after = pool()
        good = [stamps(r) for r in steady if isinstance(r, WsRun) and ok(r)]
        steady_out: dict[str, Any] = {
            "rate": rate,
            "runs": n,
            "ok": len(good),
            "seconds": took,
            "warm": after["handed_out"] - before["handed_out"],
            "cold": after["cold_starts"] - before["cold_starts"],
            **{k: summary([g[k] for g in good]) for k in marks},
        }
        # bursts after a quiet period, with docker run (the seed) sampled between them
        seed: list[float] = []
        bursts: list[dict[str, Any]] = []
        burst_marks: dict[str, list[float]] = {k: [] for k in marks}
        for _ in range(self.plan.bursts):
            self.server.settle()
            for _ in range(2):
                d = await run_process(self.command("docker-run", P.HELLO))
                if d.returncode == 0 and d.first_byte_s is not None:
                    seed.append(d.first_byte_s)
            self.server.settle()
            await asyncio.sleep(self.plan.burst_quiet_s)
            before = pool()
            rs = await asyncio.gather(
                *(ws_run(self.server.ws_url, P.HELLO) for _ in range(self.plan.burst_clients)), return_exceptions=True
            )
            after = pool()
            good = [stamps(r) for r in rs if isinstance(r, WsRun) and ok(r)]
            for g in good:
                for k in marks:
                    burst_marks[k].append(g[k])
            bursts.append(
                {
                    "ok": len(good),
                    "warm": after["handed_out"] - before["handed_out"],
                    "cold": after["cold_starts"] - before["cold_starts"],
                    "ready_before": before["ready"],
                    "first_byte": sorted(g["first_byte"] for g in good),
                }
            )
        self.results["timeline"] = {
            "steady": steady_out,
            "bursts": bursts,
            "burst": {k: summary(v) for k, v in burst_marks.items()},
            "burst_quiet_s": self.plan.burst_quiet_s,
            "burst_clients": self.plan.burst_clients,
            "seed_first_byte": summary(seed),
        }
        self.log(
            f"  steady {rate:g}/s: first byte from open median {steady_out['first_byte']['median'] * 1000:.1f} ms, "
            f"p90 {steady_out['first_byte']['p90'] * 1000:.1f} ms; bursts: warm "
            f"{[b['warm'] for b in bursts]} of {self.plan.burst_clients}; docker run first byte "
            f"{summary(seed)['median'] * 1000:.0f} ms"
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

    async def ws_batch(self, total: int, concurrency: int, via: str = "ws") -> dict[str, Any]:
        """``total`` hello-world runs, ``concurrency`` clients at a time: each run on its own WebSocket
        (``ws``), or a ``POST /run`` each on one keep-alive HTTP client (``http``)."""
        self.server.settle()
        cpu0, eng0, rss0 = self.server.cpu_s(), cpu_of(self.engine), self.server.rss_kb()
        mach0 = machine_cpu_s()
        counter = itertools.count()
        failures: list[str] = []
        latencies: list[float] = []
        http = httpx.AsyncClient(base_url=self.server.url, timeout=120, limits=httpx.Limits(max_connections=64))

        async def one() -> None:
            t0 = now()
            if via == "ws":
                r = await ws_run(self.server.ws_url, P.HELLO)
                ok = r.first_text == P.HELLO_OUT and r.exit["exit_code"] == 0
                detail: Any = r.exit
            else:
                resp = await http.post("/run", json={"code": P.HELLO})
                body = resp.json()
                ok = resp.status_code == 200 and body.get("stdout") == P.HELLO_OUT and body.get("exit_code") == 0
                detail = body
            if ok:
                latencies.append(now() - t0)
            else:
                failures.append(repr(detail)[:300])

        async def worker() -> None:
            while next(counter) < total:
                self.ws_runs += 1
                try:
                    await one()
                except Exception as exc:  # counted, not fatal: the rate is of successful runs
                    failures.append(f"{type(exc).__name__}: {exc}")

        try:
            t0 = now()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            t_exit = now() - t0
            self.server.settle()
            t_idle = now() - t0
        finally:
            await http.aclose()
        ok = total - len(failures)
        return {
            "runs": total,
            "ok": ok,
            "failures": failures[:5],
            "runs_per_s": ok / t_idle,
            "runs_per_s_client": ok / t_exit,
            "latencies": latencies,
            "server_cpu_ms_per_run": (self.server.cpu_s() - cpu0) * 1000 / total,
            "engine_cpu_ms_per_run": (cpu_of(self.engine) - eng0) * 1000 / total,
            "machine_cpu_ms_per_run": (machine_cpu_s() - mach0) * 1000 / total,
            "server_rss_kb_before": rss0,
            "server_rss_kb_after": self.server.rss_kb(),
        }

    async def throughput(self) -> None:
        """N hello-world runs at concurrency c: the service over WebSockets and over POST /run, the
        peer epicbox, SDK churn that streams (stdin and attach: the floor for any design that streams
        from a fresh container per run) and bare SDK churn, interleaved round by round in a balanced
        order (each side first as often as any other, and after every other side as often as any
        other).

        The server's rate counts until it is idle again (every used sandbox removed, the pool
        refilled), so every side has done the same engine work: N creates, starts and removals.
        epicbox's runs end when its own removal returns. Each side's engine CPU per run is read
        around its batch (dockerd + containerd, system-wide), and each run's whole latency kept
        (connect or request to the exit frame or answer; epicbox: its ``run`` call).
        """
        churns = {
            "sdk": SdkChurn(self.churn_api, self.config, ["python3", "-c", P.PASS]),
            "attach": AttachChurn(self.churn_api, self.config, P.HELLO, P.HELLO_OUT.encode()),
        }
        hc = self.config["host_config"]
        epic = Epicbox(self.config["image"], self.config["user"], hc["Memory"] // (1024 * 1024), hc["PidsLimit"])
        out: dict[str, Any] = {}
        sides = list(THROUGHPUT_SIDES)
        for c in self.plan.levels:
            n = self.plan.runs_per_level[c]
            rates: dict[str, list[float]] = {s: [] for s in sides}
            client_rates: dict[str, list[float]] = {s: [] for s in sides}
            engine_ms: dict[str, list[float]] = {s: [] for s in sides}
            server_ms: dict[str, list[float]] = {s: [] for s in sides}
            machine_ms: dict[str, list[float]] = {s: [] for s in sides}
            latencies: dict[str, list[float]] = {s: [] for s in sides}
            failures: list[str] = []
            for rnd in range(self.plan.throughput_rounds[c]):
                for s in balanced_order(sides, rnd):
                    if s in ("ws", "http"):
                        b = await self.ws_batch(n, c, s)
                        rates[s].append(b["runs_per_s"])
                        client_rates[s].append(b["runs_per_s_client"])
                        engine_ms[s].append(b["engine_cpu_ms_per_run"])
                        server_ms[s].append(b["server_cpu_ms_per_run"])
                        machine_ms[s].append(b["machine_cpu_ms_per_run"])
                        latencies[s] += b["latencies"]
                        failures += [f"{s}: {f}" for f in b["failures"]]
                        continue
                    self.server.settle()
                    eng0, srv0, mach0 = cpu_of(self.engine), self.server.cpu_s(), machine_cpu_s()
                    if s == "epicbox":
                        e = await asyncio.to_thread(epic.batch, P.HELLO, n, c, P.HELLO_OUT.encode())
                        ok = len(e["latencies"])
                        rates[s].append(ok / e["seconds"])
                        latencies[s] += e["latencies"]
                        failures += [f"epicbox: {f}" for f in e["failures"][:3]]
                    else:
                        stop = threading.Event()
                        try:
                            rates[s].append(n / await asyncio.to_thread(churns[s].run, n, c, stop))
                        finally:
                            stop.set()  # if interrupted, the workers stop (removing what they made)
                    client_rates[s].append(rates[s][-1])
                    engine_ms[s].append((cpu_of(self.engine) - eng0) * 1000 / n)
                    server_ms[s].append((self.server.cpu_s() - srv0) * 1000 / n)
                    machine_ms[s].append((machine_cpu_s() - mach0) * 1000 / n)
            res: dict[str, Any] = {"runs": n, "failures": len(failures), "failure_examples": failures[:5]}
            for s in sides:
                res[f"{s}_runs_per_s"] = summary(rates[s])
                res[f"{s}_runs_per_s_client"] = summary(client_rates[s])
                res[f"engine_cpu_ms_per_run_{s}"] = summary(engine_ms[s])
                res[f"server_cpu_ms_per_run_{s}"] = summary(server_ms[s])
                res[f"machine_cpu_ms_per_run_{s}"] = summary(machine_ms[s])
                res[f"{s}_latency"] = summary(latencies[s])
            # the keys earlier reports used
            res["server_cpu_ms_per_run"] = res["server_cpu_ms_per_run_ws"]
            out[str(c)] = res
            self.log(
                f"  c={c}: ws {res['ws_runs_per_s']['median']:.2f}/s, http {res['http_runs_per_s']['median']:.2f}/s, "
                f"epicbox {res['epicbox_runs_per_s']['median']:.2f}/s, sdk {res['sdk_runs_per_s']['median']:.2f}/s"
            )
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

    async def mixed(self, count: int, concurrency: int = 8) -> dict[str, int]:
        """``count`` runs of a mixed workload, ``concurrency`` at a time, in a fixed shuffled order:
        hello world over WebSockets and POST /run, 100k lines, timeouts, kills, clients that leave."""
        kinds = ["hello"] * 5 + ["http"] + ["lines"] + ["timeout"] + ["kill"] + ["leave"]
        rng = random.Random(count)
        plan = [rng.choice(kinds) for _ in range(count)]
        counter = itertools.count()
        done: dict[str, int] = {}
        failures: list[str] = []
        url, http_url = self.server.ws_url, self.server.url
        sleeper = "import time\nprint('up', flush=True)\ntime.sleep(60)"

        async def one(kind: str) -> None:
            if kind == "hello":
                await ws_run(url, P.HELLO)
            elif kind == "http":
                await http_run(http_url, P.HELLO)
            elif kind == "lines":
                await ws_run(url, P.LINES)
            elif kind == "timeout":
                r = await ws_run(url, P.BUSY, run_timeout=0.3)
                assert r.exit["reason"] == "timeout", r.exit
            else:
                await ws_cut(url, sleeper, kill=kind == "kill")

        async def worker() -> None:
            while (i := next(counter)) < count:
                self.ws_runs += 1
                try:
                    await one(plan[i])
                    done[plan[i]] = done.get(plan[i], 0) + 1
                except Exception as exc:
                    failures.append(f"{plan[i]}: {type(exc).__name__}: {exc}"[:300])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if failures:
            self.failures.append({"workload": "mixed", "side": "ws", "detail": "; ".join(failures[:3])})
        return done

    async def memory(self) -> None:
        """Server RSS over a mixed workload: a warm-up, then the counted runs; read when idle again."""
        let_go = Settings().resume_grace_s + 2.5  # finished runs let go, then the heap trimmed after them
        await self.mixed(self.plan.mixed_warmup)
        self.server.settle()
        await asyncio.sleep(let_go)
        rss0, cpu0 = self.server.rss_kb(), self.server.cpu_s()
        t0 = now()
        done = await self.mixed(self.plan.mixed_runs)
        took = now() - t0
        self.server.settle()
        await asyncio.sleep(let_go)
        rss1 = self.server.rss_kb()
        self.results["memory"] = {
            "warmup_runs": self.plan.mixed_warmup,
            "runs": self.plan.mixed_runs,
            "by_kind": done,
            "rss_before_kb": rss0,
            "rss_after_kb": rss1,
            "growth_kb": rss1 - rss0,
            "seconds": took,
            "server_cpu_ms_per_run": (self.server.cpu_s() - cpu0) * 1000 / self.plan.mixed_runs,
        }

    async def scale(self) -> None:
        """200 WebSocket clients at once (most of them queued), and the event loop's lag while
        output streams: an idle WebSocket's ping round trip during four 100k-line runs, against
        the same with nothing running."""
        n = self.plan.scale_clients
        code = "import time\ntime.sleep(0.2)\nprint('done')"
        self.server.settle()
        cpu0, eng0 = self.server.cpu_s(), cpu_of(self.engine)
        t0 = now()
        results = await asyncio.gather(*(ws_run(self.server.ws_url, code) for _ in range(n)), return_exceptions=True)
        took = now() - t0
        self.server.settle()
        ok = [r for r in results if isinstance(r, WsRun) and r.first_text == "done\n"]
        errors = [repr(r)[:200] for r in results if not isinstance(r, WsRun)]
        scale = {
            "clients": n,
            "ok": len(ok),
            "errors": errors[:5],
            "seconds": took,
            "runs_per_s": len(ok) / took,
            "exit_s": summary([r.connect_s + r.exit_s for r in ok]),
            "server_cpu_ms_per_run": (self.server.cpu_s() - cpu0) * 1000 / n,
            "engine_cpu_ms_per_run": (cpu_of(self.engine) - eng0) * 1000 / n,
        }

        async def pings(stop: asyncio.Event) -> list[float]:
            rtts: list[float] = []
            async with websockets.connect(self.server.ws_url, open_timeout=30) as ws:
                while not stop.is_set():
                    t = now()
                    await (await ws.ping())
                    rtts.append(now() - t)
                    await asyncio.sleep(0.01)
            return rtts

        self.server.settle()
        stop = asyncio.Event()
        idle_task = asyncio.ensure_future(pings(stop))
        await asyncio.sleep(2.0)
        stop.set()
        idle = await idle_task
        self.server.settle()
        stop = asyncio.Event()
        busy_task = asyncio.ensure_future(pings(stop))
        cpu0 = self.server.cpu_s()
        streams = await asyncio.gather(*(ws_run(self.server.ws_url, P.LINES) for _ in range(4)))
        stop.set()
        busy = await busy_task
        scale["lag_idle"] = summary(idle)
        scale["lag_streaming"] = summary(busy)
        scale["lag_streaming_p99"] = percentile(busy, 99)
        scale["streams_ok"] = sum(r.stdout_chars == P.LINES_BYTES for r in streams)
        scale["streaming_server_cpu_ms_per_run"] = (self.server.cpu_s() - cpu0) * 1000 / 4
        self.results["scale"] = scale

    async def sessions(self) -> None:
        """A run in a live session (protocol v3) costs no container: hello world over the WebSocket
        (connect to exit) against the seed's ``docker run``, interleaved; then sequential hello
        runs in one session, as fast as one client sends them, over the WebSocket (a connection
        each, as any client) and ``POST /run`` (one kept-alive HTTP connection)."""
        load_start = list(os.getloadavg())
        async with httpx.AsyncClient(base_url=self.server.url, timeout=60) as http:
            made = (await http.post("/sessions", json={})).json()
            self.server.sessions += 1
            fields = {"session": made["id"], "session_token": made["token"]}
            url = f"{self.server.ws_url}?session={made['id']}"

            def check(r: Any) -> None:
                if isinstance(r, WsRun):
                    assert r.first_text == P.HELLO_OUT and r.exit["exit_code"] == 0, (r.first_text, r.exit)
                    assert r.exit.get("session_alive") is True, r.exit
                else:
                    assert r.returncode == 0 and r.stdout_bytes == len(P.HELLO_OUT), r

            async def in_session() -> WsRun:
                self.ws_runs += 1
                return await ws_run(url, P.HELLO, fields=fields)

            samples: dict[str, list[float]] = {"session_exit_open": [], "session_first_byte_open": [], "seed_exit": []}
            for _ in range(self.plan.warmup):
                await in_session()
            for i in range(self.plan.latency_iters):
                for s in rotated(["session", "docker-run"], i):
                    if s == "session":
                        self.server.settle()
                        r = await in_session()
                        try:
                            check(r)
                        except AssertionError as exc:
                            self.failures.append({"workload": "session hello", "side": s, "detail": repr(exc)[:500]})
                            continue
                        samples["session_exit_open"].append(r.connect_s + r.exit_s)
                        samples["session_first_byte_open"].append(r.connect_s + (r.first_byte_s or math.nan))
                    else:
                        d = await self.side("docker-run", P.HELLO, check)
                        if d is not None:
                            samples["seed_exit"].append(d.exit_s)
            self.server.settle()
            sequential: dict[str, dict[str, float]] = {}
            count = self.plan.session_runs
            t0 = now()
            for _ in range(count):
                r = await in_session()
                assert r.exit["exit_code"] == 0 and r.first_text == P.HELLO_OUT, r.exit
            took = now() - t0
            sequential["ws"] = {"runs": count, "seconds": took, "runs_per_s": count / took}
            t0 = now()
            for _ in range(count):
                answer = (await http.post("/run", json={"code": P.HELLO, **fields})).json()
                assert answer["stdout"] == P.HELLO_OUT and answer["session_alive"] is True, answer
            took = now() - t0
            sequential["http"] = {"runs": count, "seconds": took, "runs_per_s": count / took}
            self.ws_runs += count
            await http.delete(f"/sessions/{made['id']}", headers={"X-Session-Token": made["token"]})
            self.server.sessions -= 1
        self.results["sessions"] = {
            "hello": {k: summary(v) for k, v in samples.items()},
            "sequential": sequential,
            "loadavg": {"start": load_start, "end": list(os.getloadavg())},
        }


PHASES: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "latency": Bench.latency,
    "timeline": Bench.timeline,
    "idle_sockets": Bench.idle_sockets,
    "throughput": Bench.throughput,
    "streaming": Bench.streaming,
    "timeouts": Bench.timeouts,
    "oom": Bench.oom,
    "scale": Bench.scale,
    "memory": Bench.memory,
    "sessions": Bench.sessions,
}
