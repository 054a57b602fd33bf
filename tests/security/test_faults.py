"""Faults around the sandbox: vanishing clients, a killed server, a crowd, the engine going away.

Every test runs real servers (``python -m app serve``) against the real engine and counts the
engine's own containers by the server's owner label (``sce.owner = host:pid:start-time``), so
other servers on the same engine never disturb the counts.

``test_engine_stop_and_restart`` stops and restarts the Docker engine itself: it only ever
signals the dockerd whose pid is in /var/run/docker.pid (the one this project started with
``.ci/engine-up``), and brings it back with ``.ci/engine-up`` whatever happens. It is marked
``engine_restart`` so it can be selected or left out (``-m "not engine_restart"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from app.sandbox.docker.engine import LABEL_POOL, owner_id
from tests.conftest import ROOT, ServerFactory, ServerProcess, project_containers, until
from tests.wsclient import collect, run_ws

pytestmark = [pytest.mark.docker, pytest.mark.security]

LONG_PROGRAM = "import time\nprint('go', flush=True)\ntime.sleep(60)\n"
GONE_WITHIN_S = 2.0
DOCKER_PID_FILE = Path("/var/run/docker.pid")


# --- helpers ---------------------------------------------------------------------------------------


async def census(server: ServerProcess, owner: str, http: httpx.AsyncClient) -> tuple[int, int, int, int]:
    """(cold containers, pooled containers, active runs, pool ready) for one server."""
    found = await asyncio.to_thread(project_containers, owner)
    cold = sum(1 for c in found if c["Labels"].get(LABEL_POOL) == "false")
    pooled = len(found) - cold
    health = (await http.get("/healthz")).json()
    return cold, pooled, health["active_runs"], health["pool"]["ready"]


async def open_run(ws_url: str, code: str = LONG_PROGRAM, **kw: Any) -> websockets.ClientConnection:
    ws = await websockets.connect(ws_url, max_size=None, open_timeout=30, **kw)
    await ws.send(json.dumps({"type": "run", "code": code}))
    return ws


async def wait_for(ws: websockets.ClientConnection, kind: str, within: float = 30) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame
            assert frame["type"] in ("queued", "started", "stdout", "stderr"), frame


async def hello(server: ServerProcess) -> None:
    result = await run_ws(server.ws_url, "print('hello world')", within=60)
    assert result.text() == "hello world\n", result.frames
    assert result.exit["exit_code"] == 0


# --- clients that vanish -------------------------------------------------------------------------------


VANISH_MODES = ("abort_after_output", "close_after_output", "abort_after_started", "abort_before_started")


async def vanish(ws_url: str, mode: str) -> None:
    ws = await open_run(ws_url)
    if mode == "abort_after_output":
        await wait_for(ws, "stdout")
    elif mode == "close_after_output":
        await wait_for(ws, "stdout")
        await ws.close()
        return
    elif mode == "abort_after_started":
        await wait_for(ws, "started")
    ws.transport.abort()  # no close frame: the TCP connection just goes away


VANISHED_RUN_LIVES_ON = (
    "app/server/ws.py: a client that vanishes right after `started` can leave its program running until the "
    "wall-clock timeout (logged as reason timeout). WebSocketSession.send() wraps websocket.send in "
    "asyncio.wait_for, which on Python 3.11 swallows a cancellation that arrives as the send completes (and a "
    "send to a closed hypercorn stream completes at once); serve() only cancels self._main and never awaits "
    "it, so nothing cancels it again"
)
TIMEOUT_S = 10.0  # the default wall clock: a vanished run that was not killed lives this long


def timed_out_runs(server: ServerProcess) -> int:
    return sum(1 for line in server.log().splitlines() if "sce.run" in line and '"reason": "timeout"' in line)


@pytest.mark.timeout(600)
async def test_vanishing_clients_leave_no_container(server_factory: ServerFactory) -> None:
    """200 clients that go away mid-run: each sandbox is gone within 2 s, none leaks (warm pool on).

    Known server bug (see VANISHED_RUN_LIVES_ON): a round where a vanished client's program was not
    killed but lived on to its timeout is recognised by the server's own log (no program here may
    ever time out) and reported as xfail at the end; every other assertion still holds for it.
    """
    pool_size = 2
    server = server_factory(
        SCE_MAX_CONCURRENT_RUNS="4",
        SCE_PER_CLIENT_RUNS="16",
        SCE_QUEUE_SIZE="16",
        SCE_POOL_SIZE=str(pool_size),
        SCE_TIMEOUT_S=str(TIMEOUT_S),
        # protocol v2 keeps a dropped run for its resume grace (tests/integration/test_resume.py);
        # without a grace a vanished client's run must end at once, as in version 1
        SCE_RESUME_GRACE_S="0",
    )
    owner = owner_id(server.proc.pid)
    tries, width = 200, 4
    slowest = 0.0
    lived_on: list[int] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:

        async def gone() -> bool | str:
            cold, pooled, active, ready = await census(server, owner, http)
            # cold sandboxes are never reused; warm ones are replaced by the pool, never beyond its size
            ok = cold == 0 and active == 0 and pooled <= pool_size
            return ok or f"cold={cold} pooled={pooled} active={active} ready={ready}"

        for first in range(0, tries, width):
            modes = [VANISH_MODES[i % len(VANISH_MODES)] for i in range(first, first + width)]
            before = timed_out_runs(server)
            await asyncio.gather(*(vanish(server.ws_url, mode) for mode in modes))
            try:
                slowest = max(slowest, await until(gone, GONE_WITHIN_S, f"round at try {first} ({modes})"))
            except AssertionError:
                # the known bug keeps a run until its wall clock: wait that out, then recognise it in the log
                await until(gone, TIMEOUT_S + 10, f"round at try {first} ({modes}), even after the timeout")
                if timed_out_runs(server) == before:
                    raise
                lived_on.append(first)

        # at rest: exactly the full warm pool, nothing else (a leaked warm sandbox would make it pool + 1)
        async def at_rest() -> bool | str:
            cold, pooled, active, ready = await census(server, owner, http)
            ok = cold == 0 and active == 0 and ready == pool_size and pooled == pool_size
            return ok or f"cold={cold} pooled={pooled} active={active} ready={ready}"

        await until(at_rest, 30, "the server at rest with only its warm pool")
    print(f"slowest removal after a vanishing client: {slowest:.2f} s over {tries} tries; lived on: {lived_on}")
    await hello(server)
    assert not lived_on, f"{len(lived_on)} of {tries // width} rounds: {VANISHED_RUN_LIVES_ON}"


# --- the server killed mid-run ---------------------------------------------------------------------------


@pytest.mark.timeout(240)
async def test_killed_server_orphans_are_reaped(server_factory: ServerFactory) -> None:
    """SIGKILL a server during 10 runs: its containers stay; the next server reaps every one at start."""
    dead = server_factory(SCE_MAX_CONCURRENT_RUNS="10", SCE_PER_CLIENT_RUNS="10", SCE_POOL_SIZE="2")
    dead_owner = owner_id(dead.proc.pid)
    clients = await asyncio.gather(*(open_run(dead.ws_url) for _ in range(10)))
    await asyncio.gather(*(wait_for(ws, "stdout") for ws in clients))
    running = project_containers(dead_owner)
    assert len(running) >= 10, running

    dead.stop(signal.SIGKILL)
    for ws in clients:  # the clients see the connection drop, without a protocol frame
        result = await asyncio.wait_for(collect(ws), 30)
        assert not result.of("exit"), result.frames
    orphans = project_containers(dead_owner)
    assert len(orphans) >= 10, "the orphans vanished before any server reaped them: the test proves nothing"

    successor = server_factory()  # ready means started: reaping happens before serving
    async with httpx.AsyncClient(base_url=successor.url, timeout=10) as http:

        async def reaped() -> bool | str:
            left = await asyncio.to_thread(project_containers, dead_owner)
            return not left or f"{len(left)} orphans left"

        took = await until(reaped, 15, f"orphans of {dead_owner} reaped", step=0.1)
        assert (await http.get("/healthz")).status_code == 200
    print(f"{len(orphans)} orphans reaped, the last {took:.2f} s after the successor was ready")
    await hello(successor)


# --- a crowd -------------------------------------------------------------------------------------------------


@pytest.mark.timeout(240)
async def test_two_hundred_clients_at_once(server_factory: ServerFactory) -> None:
    """200 simultaneous clients: every one gets a run to its end or `busy`, nothing else."""
    server = server_factory(
        SCE_MAX_CONCURRENT_RUNS="4", SCE_QUEUE_SIZE="16", SCE_PER_CLIENT_RUNS="200", SCE_POOL_SIZE="4"
    )

    async def client(i: int) -> str:
        result = await run_ws(server.ws_url, f"print('client {i}')", within=180, open_timeout=60)
        if result.of("exit"):
            assert result.exit["reason"] == "exit" and result.exit["exit_code"] == 0, result.frames
            assert result.text() == f"client {i}\n", result.frames
            assert result.close_code == 1000
            return "exit"
        assert result.error["code"] == "busy" and result.close_code == 1013, result.frames
        assert not result.of("started"), result.frames
        return "busy"

    outcomes = Counter(await asyncio.gather(*(client(i) for i in range(200))))
    assert sum(outcomes.values()) == 200 and set(outcomes) <= {"exit", "busy"}, outcomes
    assert outcomes["exit"] >= 4 + 16, outcomes  # every slot and every queue place was used
    print(f"200 clients at once: {dict(outcomes)}")
    await hello(server)


# --- the engine going away -----------------------------------------------------------------------------------


ENGINE_STOP_AS_EXIT = (
    "engine stopped mid-run reported as the program's own exit: a graceful dockerd stop first sends the "
    "container SIGTERM, the wait returns 143 before the API goes away, and app/sandbox/run.py reports "
    "`exit` 143 SIGTERM instead of `error` `unavailable` (racy: when the API connection drops first the run "
    "does end with `unavailable`). The server never sends SIGTERM itself, so a 143 it did not ask for while "
    "the engine stops (a `kill` event with signal 15, or a failing ping right after) means the sandbox failed"
)


def _dockerd_pid() -> int | None:
    try:
        pid = int(DOCKER_PID_FILE.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == "dockerd" else None


def _engine_up() -> None:
    done = subprocess.run([str(ROOT / ".ci" / "engine-up")], timeout=240, capture_output=True, text=True)
    assert done.returncode == 0, f".ci/engine-up failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"


def _restore_engine(pid: int) -> None:
    """Never start a second engine while the stopped one is still shutting down; then start it again."""
    _wait_gone(pid, 120)
    _engine_up()


@pytest.mark.engine_restart
@pytest.mark.timeout(300)
async def test_engine_stop_and_restart(server_factory: ServerFactory) -> None:
    """Engine stopped mid-run: the run ends with `unavailable`, /healthz is 503; service resumes after."""
    pid = _dockerd_pid()
    if pid is None or os.geteuid() != 0:
        pytest.skip("needs root and the dockerd this project started (pid in /var/run/docker.pid)")
    server = server_factory(SCE_POOL_SIZE="1")
    ws = await open_run(server.ws_url)
    stopped = False
    try:
        await wait_for(ws, "stdout")
        stopped_at = time.monotonic()
        os.kill(pid, signal.SIGTERM)  # only this dockerd, by the pid it wrote itself
        stopped = True
        result = await asyncio.wait_for(collect(ws), 60)
        ended_after = time.monotonic() - stopped_at
        await asyncio.to_thread(_wait_gone, pid, 120)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            down = await http.get("/healthz")
            refused = await run_ws(server.ws_url, "print(1)", within=60)
    finally:
        if stopped:
            await asyncio.to_thread(_restore_engine, pid)
    print(f"frames of the run when the engine stopped: {result.frames}, close {result.close_code}")
    last = result.frames[-1] if result.frames else {}
    engine_killed_it = last.get("type") == "exit" and last.get("exit_code") == 143
    if not engine_killed_it:
        assert last.get("type") == "error", result.frames
        assert result.error["code"] == "unavailable", result.frames
        assert result.close_code == 1011
    assert down.status_code == 503 and down.json()["status"] == "unavailable", down.text
    assert refused.error["code"] == "unavailable" and refused.close_code == 1011, refused.frames
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

        async def healthy() -> bool | str:
            health = await http.get("/healthz")
            return health.status_code == 200 or health.text

        back_after = await until(healthy, 60, "/healthz back to 200", step=0.2)
    await hello(server)
    print(
        f"run ended {ended_after:.2f} s after the engine was told to stop; healthy {back_after:.2f} s after it was up"
    )
    if engine_killed_it:
        pytest.xfail(ENGINE_STOP_AS_EXIT)


def _wait_gone(pid: int, within: float) -> None:
    deadline = time.monotonic() + within
    while Path(f"/proc/{pid}").exists():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return
        assert time.monotonic() < deadline, f"dockerd {pid} did not stop within {within} s"
        time.sleep(0.1)  # no event for another process's exit
