"""Two Docker engines under one server (SCE_DOCKER_HOSTS): spread, an engine lost mid-load, its return.

The second engine is a real dockerd of the tests' own (tests/cluster/conftest.py); it is stopped
by its pid with SIGTERM, as an operator or a crash would, and started again with the same data
root. The host's engine is never touched. Containers are counted on each engine by the server's
owner label, with the warm pool off so that every container is a live run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

import httpx
import pytest
import websockets

from tests.cluster.conftest import (
    MAIN_SOCKET,
    engines_env,
    frames_until,
    open_run,
    owner_label,
    running_containers,
    sce_cluster,
)
from tests.conftest import ServerProcess, until
from tests.wsclient import collect, run_ws

pytestmark = [pytest.mark.docker, pytest.mark.cluster]

LIVE = 8
PER_ENGINE = 4

# Known: a graceful dockerd stop sends the containers SIGTERM first; when the wait returns 143 before
# the API goes away, the run is reported as the program's own exit (tests/security/test_faults.py,
# ENGINE_STOP_AS_EXIT). Recognised here and reported, not hidden.
ENGINE_STOP_AS_EXIT = "engine 2 stopped mid-run: some of its runs ended `exit` 143 (SIGTERM) instead of `unavailable`"


def engine_state(health: dict[str, Any], url: str) -> dict[str, Any]:
    for engine in health.get("engines", []):
        if engine.get("name") == url:
            return dict(engine)
    raise AssertionError(f"no engine {url} in /healthz: {health}")


@pytest.mark.timeout(300)
async def test_two_engines_spread_lose_one_and_take_it_back(engine2: Any) -> None:
    env = engines_env(
        engine2,
        SCE_MAX_CONCURRENT_RUNS=str(LIVE),
        SCE_ENGINE_CAPACITY=str(PER_ENGINE),
        SCE_PER_CLIENT_RUNS="64",
        SCE_QUEUE_SIZE="32",
        SCE_POOL_SIZE="0",
    )
    server = ServerProcess(env)
    engine2_pid = engine2.pid()
    assert engine2_pid is not None
    stopped = False
    clients: list[Any] = []
    try:
        owner = owner_label(server.proc.pid)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            # 1. eight live runs spread over both engines
            clients = list(await asyncio.gather(*(open_run(server.ws_url) for _ in range(LIVE))))
            for frames in await asyncio.gather(*(frames_until(ws, {"stdout", "error", "exit"}) for ws in clients)):
                assert frames and frames[-1]["type"] == "stdout", frames
            on1 = await asyncio.to_thread(running_containers, MAIN_SOCKET, owner)
            on2 = await asyncio.to_thread(running_containers, engine2.socket, owner)
            health = (await http.get("/healthz")).json()
            print(f"8 live runs: {len(on1)} containers on engine 1, {len(on2)} on engine 2")
            assert len(on1) == PER_ENGINE and len(on2) == PER_ENGINE, (on1, on2, health)
            assert engine_state(health, engine2.url)["active"] == PER_ENGINE, health

            # 2. engine 2 stops (SIGTERM to its pid) while its four runs are live
            stopped_at = time.monotonic()
            os.kill(engine2_pid, signal.SIGTERM)
            stopped = True
            ends = await asyncio.gather(*(asyncio.wait_for(first_end(ws), 60) for ws in clients))
            ended = [(i, e) for i, e in enumerate(ends) if e is not None]
            took = max((e.get("at", stopped_at) for _, e in ended), default=stopped_at) - stopped_at
            print(f"engine 2's runs all ended {took:.2f} s after its SIGTERM: {[e for _, e in ended]}")
            assert len(ended) == PER_ENGINE, ends  # exactly engine 2's runs ended; engine 1's go on
            as_exit = [e for _, e in ended if e["type"] == "exit"]
            for _, e in ended:
                if e["type"] == "error":
                    assert e["code"] == "unavailable", e
                else:
                    assert e["exit_code"] == 143, e

            async def engine2_out() -> bool | str:
                state = engine_state((await http.get("/healthz")).json(), engine2.url)
                return state["ok"] is False or str(state)

            out_after = await until(engine2_out, 30, "/healthz shows engine 2 not ok")
            health = await http.get("/healthz")
            assert health.status_code == 200, health.text  # one engine still answers: the server is healthy

            # 3. new runs all succeed, on engine 1
            results = await asyncio.gather(*(run_ws(server.ws_url, f"print({i})", within=60) for i in range(LIVE)))
            for i, result in enumerate(results):
                assert result.of("exit") and result.exit["exit_code"] == 0, result.frames
                assert result.text() == f"{i}\n", result.frames
            await asyncio.to_thread(sce_cluster.wait_gone, engine2_pid, 60)
            for left in engine2.leftovers():  # shims or runsc processes the stopped engine left
                sce_cluster.stop_pid(left, 5, signal.SIGKILL)

            # 4. engine 2 again: back in use by itself
            restarted_at = time.monotonic()
            await asyncio.to_thread(engine2.start)
            stopped = False
            answered = time.monotonic() - restarted_at

            async def engine2_back() -> bool | str:
                state = engine_state((await http.get("/healthz")).json(), engine2.url)
                return state["ok"] is True or str(state)

            back_after = await until(engine2_back, 60, "/healthz shows engine 2 ok again", step=0.1)
            for ws in clients:
                await ws.close()
            await until(lambda: _no_runs(http), 30, "the server idle")
            clients = list(await asyncio.gather(*(open_run(server.ws_url) for _ in range(LIVE))))
            for frames in await asyncio.gather(*(frames_until(ws, {"stdout", "error", "exit"}) for ws in clients)):
                assert frames and frames[-1]["type"] == "stdout", frames
            on2 = await asyncio.to_thread(running_containers, engine2.socket, owner)
            assert len(on2) == PER_ENGINE, on2
            print(
                f"engine 2 out of /healthz {out_after:.2f} s after the runs ended; restarted engine answered in "
                f"{answered:.2f} s, in service {back_after:.2f} s later; 8 new runs: {len(on2)} on engine 2"
            )
            for ws in clients:
                await ws.send(json.dumps({"type": "kill"}))
            for result in await asyncio.gather(*(asyncio.wait_for(collect(ws), 30) for ws in clients)):
                assert result.of("exit") and result.exit["reason"] == "killed", result.frames
            if as_exit:
                pytest.xfail(ENGINE_STOP_AS_EXIT)
    finally:
        for ws in clients:
            await ws.close()
        server.stop()
        if stopped:
            await asyncio.to_thread(sce_cluster.wait_gone, engine2_pid, 60)
            await asyncio.to_thread(engine2.start)


async def _no_runs(http: httpx.AsyncClient) -> bool | str:
    health = (await http.get("/healthz")).json()
    return health["active_runs"] == 0 or f"active_runs={health['active_runs']}"


async def first_end(ws: Any) -> dict[str, Any] | None:
    """The run's end (``exit`` or ``error``) if it ends within 15 s of the engine stop, else None."""
    try:
        async with asyncio.timeout(15):
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] in ("exit", "error"):
                    return dict(frame) | {"at": time.monotonic()}
    except TimeoutError:
        return None
    except websockets.ConnectionClosed as exc:
        return {"type": "closed", "code": exc.rcvd.code if exc.rcvd else None, "at": time.monotonic()}
