"""The client's sessions (v3) against a scripted server: a real Quart app under hypercorn on
loopback that plays ``POST/GET/DELETE /sessions`` and runs in a session exactly as far as the
tests need (the sandbox side is tested where sessions are served).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, request, websocket

from app.client import AsyncClient, Client, ClientError, SessionBusy

pytestmark = pytest.mark.timeout(30)

LIMITS = {"timeout_s": 10, "memory_mb": 512, "output_bytes": 1000000, "pids": 64}
CREATED = {
    "id": "s1",
    "token": "ST",
    "runtime": "python",
    "limits": {**LIMITS, "idle_timeout_s": 600, "max_lifetime_s": 3600},
    "expires_at": "2026-12-03T10:00:00Z",
}


def scripted_sessions() -> tuple[Quart, dict[str, Any]]:
    app = Quart("sessions")
    seen: dict[str, Any] = {"bodies": [], "frames": [], "deleted": [], "names": {}}

    @app.post("/sessions")
    async def create() -> Any:
        seen["bodies"].append(await request.get_json())
        return CREATED, 201

    @app.get("/sessions/<sid>")
    async def info(sid: str) -> Any:
        if request.headers.get("X-Session-Token") != "ST":
            return {"error": "no such session", "code": "not_found"}, 404
        return {"id": sid, "runtime": "python", "state": "idle", "runs": 2, "created_at": "t", "expires_at": "t",
                "memory_bytes": None}  # fmt: skip

    @app.delete("/sessions/<sid>")
    async def end(sid: str) -> Any:
        seen["deleted"].append((sid, request.headers.get("X-Session-Token")))
        return "", 204

    @app.websocket("/run")
    async def run() -> None:
        frame = json.loads(await websocket.receive())
        seen["frames"].append(frame)
        if frame.get("code") == "busy":
            await websocket.send(json.dumps({"type": "error", "code": "session_busy", "message": "already running"}))
            return
        await websocket.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS, "token": "T"}))
        names = seen["names"]
        exit_: dict[str, Any] = {"type": "exit", "reason": "exit", "exit_code": 0, "signal": None, "duration_ms": 1,
                                 "stdout_bytes": 0, "stderr_bytes": 0, "truncated": False, "session_alive": True,
                                 "seq": 2}  # fmt: skip
        if frame["code"].startswith("x = "):  # a cell that defines a name; the next one uses it
            names["x"] = int(frame["code"][4:])
            await websocket.send(json.dumps({"type": "stdout", "data": "", "seq": 1}))
        elif frame["code"] == "x + 1":
            await websocket.send(json.dumps({"type": "result", "text": repr(names["x"] + 1), "seq": 1}))
        else:  # the kernel died
            await websocket.send(json.dumps({"type": "stderr", "data": "Killed\n", "seq": 1}))
            exit_.update(reason="oom", exit_code=None, session_alive=False)
        await websocket.send(json.dumps(exit_))

    return app, seen


@asynccontextmanager
async def served(app: Quart) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = config.errorlog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):  # until it listens
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.02)
    try:
        yield url
    finally:
        stop.set()
        await task


async def test_names_live_on_between_runs_and_the_last_value_is_the_result() -> None:
    app, seen = scripted_sessions()
    values: list[str] = []
    async with (
        served(app) as url,
        AsyncClient(url) as client,
        client.session(runtime="python", files={"a.txt": "hi"}) as session,
    ):
        assert session.id == "s1" and session.alive and session.limits is not None
        first = await session.run("x = 41")
        second = await session.run("x + 1", on_result=values.append)
        info = await session.info()
    assert first.ok and first.result is None and first.session_alive is True
    assert second.result == "42" and values == ["42"]
    assert info.runs == 2 and info.state == "idle"
    assert seen["bodies"] == [{"runtime": "python", "files": [{"path": "a.txt", "content": "hi", "encoding": "utf-8"}]}]
    assert all(f["session"] == "s1" and f["session_token"] == "ST" and "runtime" not in f for f in seen["frames"])
    assert seen["deleted"] == [("s1", "ST")]  # ended on leaving the block


async def test_a_session_whose_kernel_died_says_so_and_is_not_deleted_again() -> None:
    app, seen = scripted_sessions()
    async with served(app) as url, AsyncClient(url) as client, client.session() as session:
        result = await session.run("[0] * 10**10")
        assert (result.reason, result.session_alive, session.alive) == ("oom", False, False)
        with pytest.raises(ClientError, match="has ended; make a new one"):
            session.run("x + 1")
    assert seen["deleted"] == []


async def test_a_second_run_at_once_is_session_busy_with_what_to_do() -> None:
    app, _ = scripted_sessions()
    async with served(app) as url, AsyncClient(url) as client, client.session() as session:
        with pytest.raises(SessionBusy, match="wait for the session's current run"):
            await session.run("busy")


async def test_a_server_without_sessions_says_so() -> None:
    app = Quart("old")  # a version-2 server: no /sessions
    async with served(app) as url, AsyncClient(url) as client:
        with pytest.raises(ClientError, match="does not offer sessions"):
            async with client.session():
                pass


def test_the_blocking_session() -> None:
    app, seen = scripted_sessions()

    async def main() -> None:
        async with served(app) as url:

            def blocking() -> str | None:
                with Client(url) as client, client.session() as session:
                    session.run("x = 1")
                    return session.run("x + 1").result

            assert await asyncio.to_thread(blocking) == "2"

    asyncio.run(main())
    assert seen["deleted"] == [("s1", "ST")]
