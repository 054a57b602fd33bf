"""Two servers (each on both engines) behind HAProxy running deploy/haproxy.cfg, on loopback.

Clients come from distinct loopback source addresses (127.0.0.10, .11, ...): HAProxy replaces any
X-Forwarded-For with the address it saw, and the servers trust HAProxy (SCE_TRUSTED_PROXIES), so
each client has its own share. HAProxy checks ``/healthz?balancer=1`` every 500 ms and takes a
server out after one failed check (``fall 1``): the drain test's timing. Which server ran a run is
read from the servers' own per-run log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from tests.cluster.conftest import (
    MAIN_SOCKET,
    Balancer,
    PinnedServer,
    all_containers,
    engines_env,
    frames_until,
    open_run,
    owner_label,
)
from tests.conftest import ServerProcess, until
from tests.wsclient import WsResult, collect, run_ws

pytestmark = [pytest.mark.docker, pytest.mark.cluster]

DRAIN_NOTICE_S = 3.0
CHECK_INTER_MS = 500


def pair_env(engine2: Any) -> dict[str, str]:
    return engines_env(
        engine2,
        SCE_TRUSTED_PROXIES="127.0.0.1",
        SCE_MAX_CONCURRENT_RUNS="8",
        SCE_ENGINE_CAPACITY="4",
        SCE_QUEUE_SIZE="16",
        SCE_DRAIN_NOTICE_S=str(DRAIN_NOTICE_S),
    )


@contextlib.asynccontextmanager
async def pair(engine2: Any) -> AsyncIterator[tuple[list[ServerProcess], Balancer]]:
    """Two servers and HAProxy; everything stopped afterwards, whatever the test did to them."""
    servers: list[ServerProcess] = []
    balancer: Balancer | None = None
    try:
        servers = [await asyncio.to_thread(ServerProcess, pair_env(engine2)) for _ in range(2)]
        balancer = Balancer(servers, inter_ms=CHECK_INTER_MS, fall=1, rise=2)
        await until(lambda: all_up(balancer), 15, "HAProxy sees both servers UP")
        yield servers, balancer
    finally:
        if balancer is not None:
            balancer.stop()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(server.stop)


async def all_up(balancer: Balancer | None) -> bool | str:
    assert balancer is not None
    states = await asyncio.to_thread(balancer.states)
    return (bool(states) and all(s == "UP" for s in states.values())) or str(states)


def runs_logged(server: ServerProcess) -> list[dict[str, Any]]:
    """The server's per-run log records (``sce.run {...}``)."""
    found = []
    for line in server.log().splitlines():
        match = re.search(r"sce\.run (\{.*\})$", line)
        if match:
            found.append(json.loads(match.group(1)))
    return found


def source(i: int) -> str:
    return f"127.0.{i // 200}.{10 + i % 200}"


def short_program(i: int, sleep_s: float = 0.0) -> str:
    return f"import time\nprint('client {i}', flush=True)\ntime.sleep({sleep_s})\nprint('done {i}')\n"


def assert_ran(result: WsResult, i: int) -> None:
    assert result.of("exit") and result.exit["exit_code"] == 0, result.frames
    assert result.text() == f"client {i}\ndone {i}\n", result.frames


# --- forty clients ------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
async def test_forty_clients_from_forty_addresses(engine2: Any) -> None:
    """40 concurrent clients, one run each: none refused as busy, both servers used, real addresses counted."""
    async with pair(engine2) as (servers, balancer):

        async def client(i: int) -> WsResult:
            return await run_ws(
                balancer.ws_url, short_program(i, 1.0), within=120, open_timeout=30, local_addr=(source(i), 0)
            )

        started = time.monotonic()
        results = await asyncio.gather(*(client(i) for i in range(40)))
        took = time.monotonic() - started
        refused = [r.frames for r in results if r.of("error")]
        assert not refused, refused
        for i, result in enumerate(results):
            assert_ran(result, i)

        # a client cannot choose its address: HAProxy replaces what it sends
        forged = await run_ws(
            balancer.ws_url,
            short_program(99),
            within=60,
            local_addr=("127.0.0.99", 0),
            additional_headers={"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=203.0.113.8"},
        )
        assert_ran(forged, 99)

        per_server = [runs_logged(s) for s in servers]
        counts = [len(r) for r in per_server]
        clients = Counter(r["client"] for runs in per_server for r in runs)
        print(f"40 clients through HAProxy in {took:.2f} s; runs per server {counts}")
        assert sum(counts) == 41 and all(c >= 5 for c in counts), counts
        assert set(clients) == {f"addr:{source(i)}" for i in range(40)} | {"addr:127.0.0.99"}, clients
        assert all(n == 1 for n in clients.values()), clients


# --- a server killed --------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
async def test_server_killed_mid_load(engine2: Any) -> None:
    """SIGKILL one server under load: its clients drop, every new run succeeds through the other, and its
    sandboxes are reaped by its restart (same port) without touching the survivor's."""
    async with pair(engine2) as (servers, balancer):
        victim, survivor = servers
        owners = [owner_label(s.proc.pid) for s in servers]
        # 8 long runs (4 a server): the survivor keeps free slots for the new runs after the kill
        clients = list(await asyncio.gather(*(open_run(balancer.ws_url, source=source(i)) for i in range(8))))
        try:
            for frames in await asyncio.gather(*(frames_until(ws, {"stdout", "error", "exit"}) for ws in clients)):
                assert frames and frames[-1]["type"] == "stdout", frames
            async with httpx.AsyncClient(timeout=10) as http:
                active = [(await http.get(s.url + "/healthz")).json()["active_runs"] for s in servers]
            assert all(a >= 1 for a in active) and sum(active) == 8, active
            survivor_before = {sock: set(all_containers(sock, owners[1])) for sock in (MAIN_SOCKET, engine2.socket)}
            victim_before = sum(len(all_containers(sock, owners[0])) for sock in (MAIN_SOCKET, engine2.socket))
            assert victim_before >= active[0], victim_before

            killed_at = time.monotonic()
            await asyncio.to_thread(victim.stop, signal.SIGKILL)
            dropped: list[float] = []

            async def watch(ws: Any) -> bool:
                """True if this client's connection dropped (the victim's), False if its run goes on."""
                try:
                    async with asyncio.timeout(5):
                        async for message in ws:
                            assert json.loads(message)["type"] in ("stdout", "stderr"), message
                except TimeoutError:
                    return False
                except websockets.ConnectionClosed:
                    pass
                dropped.append(time.monotonic() - killed_at)
                return True

            # new runs right away, while HAProxy may not have noticed yet: retry-on conn-failure + redispatch
            async def new_run(i: int) -> WsResult:
                return await run_ws(balancer.ws_url, short_program(i), within=60, local_addr=(source(i), 0))

            async def new_runs() -> list[WsResult]:
                results = []
                for wave in range(3):
                    results += await asyncio.gather(*(new_run(100 + 10 * wave + i) for i in range(10)))
                return results

            async def down() -> bool | str:
                states = await asyncio.to_thread(balancer.states)
                return states.get("server1", "").startswith("DOWN") or str(states)

            drops, fresh, down_after = await asyncio.gather(
                asyncio.gather(*(watch(ws) for ws in clients)), new_runs(), until(down, 10, "HAProxy marks it DOWN")
            )
            assert sum(drops) == active[0], (drops, active)
            for n, result in enumerate(fresh):
                assert_ran(result, 100 + n)
            print(
                f"SIGKILL: {sum(drops)} clients dropped within {max(dropped):.2f} s; HAProxy marked it DOWN after "
                f"{down_after:.2f} s; 30 new runs right after all succeeded"
            )
            assert all(r["client"] != "addr:127.0.0.1" for r in runs_logged(survivor)), "HAProxy's address counted"

            # its successor on the same port reaps its sandboxes at start; the survivor's stay
            restarted_at = time.monotonic()
            successor = await asyncio.to_thread(PinnedServer, pair_env(engine2), victim.port)
            servers[0] = successor  # stopped by pair()

            async def reaped() -> bool | str:
                left = sum(len(all_containers(sock, owners[0])) for sock in (MAIN_SOCKET, engine2.socket))
                return left == 0 or f"{left} of the killed server's containers left"

            # (the survivor would too, on its next sweep: every 60 s)
            reaped_after = await until(reaped, 30, "the killed server's sandboxes reaped", step=0.1)
            for sock, before in survivor_before.items():
                now = set(all_containers(sock, owners[1]))
                running_runs = {c for c in before if c in now}
                assert len(running_runs) >= len(before) - 2, (sock, before, now)  # less only the warm pool's turnover
            back_after = await until(lambda: all_up(balancer), 15, "the restarted server UP in HAProxy")
            print(
                f"restart: {victim_before} orphans reaped {reaped_after:.2f} s after it was ready "
                f"({time.monotonic() - restarted_at:.2f} s after the restart began); UP in HAProxy {back_after:.2f} s"
            )

            # the survivor's runs were never touched: they end only when told
            live = [ws for ws, dropped_ in zip(clients, drops, strict=True) if not dropped_]
            for ws in live:
                await ws.send(json.dumps({"type": "kill"}))
            for result in await asyncio.gather(*(asyncio.wait_for(collect(ws), 30) for ws in live)):
                assert result.of("exit") and result.exit["reason"] == "killed", result.frames
        finally:
            for ws in clients:
                await ws.close()


# --- a server drained ---------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
async def test_sigterm_drains_before_refusing(engine2: Any) -> None:
    """SIGTERM one server under steady load: HAProxy stops sending it runs before it refuses any (no client
    sees `unavailable` or a 503), and the runs it had finish."""
    async with pair(engine2) as (servers, balancer):
        victim = servers[0]
        long_runs = list(
            await asyncio.gather(
                *(open_run(balancer.ws_url, short_program(i, 4.0), source=source(i)) for i in range(6))
            )
        )
        firsts = await asyncio.gather(*(frames_until(ws, {"stdout", "error", "exit"}) for ws in long_runs))
        for frames in firsts:
            assert frames and frames[-1]["type"] == "stdout", frames
        async with httpx.AsyncClient(timeout=10) as http:
            victim_active = (await http.get(victim.url + "/healthz")).json()["active_runs"]
        assert victim_active >= 1, "no long run landed on the server to be drained: the test proves nothing"

        stop = asyncio.Event()
        outcomes: list[tuple[float, str]] = []
        sigterm_at = time.monotonic()

        async def ws_loop(n: int) -> None:
            i = 0
            while not stop.is_set():
                k = 200 + 100 * n + i
                try:
                    result = await run_ws(balancer.ws_url, short_program(k), within=60, local_addr=(source(k), 0))
                    ok = bool(result.of("exit")) and result.exit["exit_code"] == 0
                    outcomes.append((time.monotonic() - sigterm_at, "ok" if ok else json.dumps(result.frames)))
                except (OSError, websockets.InvalidStatus, websockets.ConnectionClosed) as exc:
                    outcomes.append((time.monotonic() - sigterm_at, f"ws: {exc!r}"))
                i += 1

        async def http_loop(n: int) -> None:
            transport = httpx.AsyncHTTPTransport(local_address=source(900 + n))
            async with httpx.AsyncClient(transport=transport, base_url=balancer.url, timeout=60) as http:
                i = 0
                while not stop.is_set():
                    k = 900 + 100 * n + i
                    try:
                        r = await http.post("/run", json={"code": short_program(k)})
                        ok = r.status_code == 200 and r.json()["exit_code"] == 0
                        what = "ok" if ok else f"http {r.status_code} {r.text[:120]}"
                        outcomes.append((time.monotonic() - sigterm_at, what))
                    except httpx.HTTPError as exc:
                        outcomes.append((time.monotonic() - sigterm_at, f"http: {exc!r}"))
                    i += 1

        loops = [asyncio.create_task(ws_loop(n)) for n in range(4)] + [
            asyncio.create_task(http_loop(n)) for n in range(2)
        ]
        try:
            await asyncio.sleep(1.0)  # steady load before the signal (a duration, not a synchronisation)
            sigterm_at = time.monotonic()
            os.kill(victim.proc.pid, signal.SIGTERM)

            async def down() -> bool | str:
                states = await asyncio.to_thread(balancer.states)
                return states.get("server1", "").startswith(("DOWN", "MAINT", "NOLB")) or str(states)

            down_after = await until(down, DRAIN_NOTICE_S, "HAProxy takes the draining server out", step=0.02)
            exit_code = await asyncio.to_thread(victim.proc.wait, 60)
            exited_after = time.monotonic() - sigterm_at
            await asyncio.sleep(1.0)  # load on the survivor alone for a moment after the exit
        finally:
            stop.set()
            await asyncio.gather(*loops, return_exceptions=True)
        finished = [
            await asyncio.wait_for(collect(ws, WsResult(frames=list(first))), 30)
            for ws, first in zip(long_runs, firsts, strict=True)
        ]
        failures = [(round(t, 2), what) for t, what in outcomes if what != "ok"]
        print(
            f"SIGTERM: HAProxy took the server out after {down_after:.2f} s (notice {DRAIN_NOTICE_S} s); it exited "
            f"{exited_after:.2f} s after the signal (status {exit_code}); {len(outcomes)} runs during the drain, "
            f"{len(failures)} failed; its {victim_active} long runs finished"
        )
        assert not failures, f"{len(failures)} failed: {failures[:10]}\nHAProxy's log:\n{balancer.log()}"
        assert exit_code == 0, victim.log()[-3000:]
        for i, result in enumerate(finished):
            assert_ran(result, i)
        assert len([t for t, _ in outcomes if t > down_after]) >= 5, outcomes
