"""The client against a scripted loopback server: resume, deduplication and every way a run can be lost.

The scripted server plays the contract's version 2 (or version 1, without tokens) exactly as far
as each test needs; the real server is exercised in tests/integration/test_client.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from websockets.asyncio.server import ServerConnection, serve

from app.client import (
    AsyncClient,
    CannotResume,
    Client,
    ClientError,
    ConnectionLost,
    InvalidRequest,
    Reconnect,
    RunNotFound,
    ServerError,
)
from app.protocol import ExitFrame, StartedFrame, StdoutFrame

pytestmark = pytest.mark.timeout(30)

LIMITS = {"timeout_s": 10, "memory_mb": 128, "output_bytes": 1000000, "pids": 64}
FAST = Reconnect(tries=4, first_delay_s=0.01, max_delay_s=0.05)
Handler = Callable[[ServerConnection], Awaitable[None]]


def drop(ws: ServerConnection) -> None:
    """The network goes away: no close frame, the TCP connection just ends."""
    ws.transport.abort()


def exit_frame(seq: int | None = None, **extra: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "exit", "reason": "exit", "exit_code": 0, "signal": None, "duration_ms": 5,
        "stdout_bytes": 0, "stderr_bytes": 0, "truncated": False, **extra,
    }  # fmt: skip
    if seq is not None:
        frame["seq"] = seq
    return frame


@asynccontextmanager
async def scripted(handler: Handler) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}"


class ResumableRun:
    """A v2 server's run: frames numbered by seq, kept, replayed after ``after`` on resume."""

    def __init__(self, lines: int, drop_after: set[int]) -> None:
        self.frames = [{"type": "stdout", "data": f"line {i}\n", "seq": i} for i in range(1, lines + 1)]
        self.frames.append(exit_frame(seq=lines + 1))
        self.drop_after = set(drop_after)
        self.firsts: list[dict[str, Any]] = []
        self.stdin: list[str] = []
        self.got_stdin = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        first = json.loads(await ws.recv())
        self.firsts.append(first)
        if first["type"] == "run":
            await ws.send(
                json.dumps({"type": "started", "id": "r1", "limits": LIMITS, "token": "T", "watch_token": "W"})
            )
            after = 0
        elif first["type"] == "resume" and first["token"] == "T":
            after = first["after"]
        else:
            await ws.send(json.dumps({"type": "error", "code": "not_found", "message": "no such run"}))
            await ws.close(1008)
            return
        for frame in self.frames[after:]:
            await ws.send(json.dumps(frame))
            if frame["seq"] in self.drop_after:
                self.drop_after.discard(frame["seq"])
                drop(ws)
                return
        async for message in ws:
            self.stdin.append(json.loads(message).get("data", ""))
            self.got_stdin.set()


async def test_three_drops_in_one_run_yield_every_frame_once() -> None:
    script = ResumableRun(lines=9, drop_after={2, 5, 8})
    async with scripted(script.handler) as url, asyncio.timeout(10), AsyncClient(url, reconnect=FAST).run("x") as run:
        frames = [frame async for frame in run]
    data = [f.data for f in frames if isinstance(f, StdoutFrame)]
    assert data == [f"line {i}\n" for i in range(1, 10)]
    assert isinstance(frames[0], StartedFrame) and isinstance(frames[-1], ExitFrame)
    assert run.resumes == 3 and run.exit is not None and run.exit.exit_code == 0
    assert [f["type"] for f in script.firsts] == ["run", "resume", "resume", "resume"]
    assert [f.get("after") for f in script.firsts[1:]] == [2, 5, 8]
    assert all(f.get("token") == "T" and f.get("id") == "r1" for f in script.firsts[1:])


async def test_frames_replayed_twice_are_shown_once() -> None:
    async def handler(ws: ServerConnection) -> None:
        first = json.loads(await ws.recv())
        if first["type"] == "run":
            await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS, "token": "T"}))
            await ws.send(json.dumps({"type": "stdout", "data": "a\n", "seq": 1}))
            drop(ws)
            return
        for seq, data in ((1, "a\n"), (2, "b\n")):  # a sloppy replay from the start
            await ws.send(json.dumps({"type": "stdout", "data": data, "seq": seq}))
        await ws.send(json.dumps(exit_frame(seq=3)))

    async with scripted(handler) as url, asyncio.timeout(10):
        run = AsyncClient(url, reconnect=FAST).run("x")
        data = [f.data async for f in run if isinstance(f, StdoutFrame)]
    assert data == ["a\n", "b\n"]


async def test_a_drop_on_a_version_1_server_says_it_cannot_resume() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS}))  # no token: version 1
        await ws.send(json.dumps({"type": "stdout", "data": "a\n"}))
        drop(ws)

    async with scripted(handler) as url, asyncio.timeout(10):
        run = AsyncClient(url, reconnect=FAST).run("x")
        seen = []
        with pytest.raises(CannotResume, match="cannot resume runs"):
            async for frame in run:
                seen.append(frame.type)
    assert seen == ["started", "stdout"]


async def test_a_drop_before_started_cannot_be_resumed() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "queued", "position": 1}))
        drop(ws)

    async with scripted(handler) as url, asyncio.timeout(10):
        with pytest.raises(CannotResume, match="before the run started"):
            async for _ in AsyncClient(url, reconnect=FAST).run("x"):
                pass


async def test_not_found_after_a_drop_is_run_not_found() -> None:
    script = ResumableRun(lines=3, drop_after={1})
    script_handler = script.handler

    async def forgetful(ws: ServerConnection) -> None:
        if script.firsts:  # the server lost the run (restarted, or the grace ran out)
            await ws.recv()
            await ws.send(json.dumps({"type": "error", "code": "not_found", "message": "no such run"}))
            await ws.close(1008)
            return
        await script_handler(ws)

    async with scripted(forgetful) as url, asyncio.timeout(10):
        with pytest.raises(RunNotFound) as caught:
            async for _ in AsyncClient(url, reconnect=FAST).run("x"):
                pass
    assert caught.value.code == "not_found" and isinstance(caught.value, ServerError)


async def test_tries_are_bounded_when_the_server_cannot_take_the_run_back() -> None:
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.recv()
        if connections == 1:
            await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS, "token": "T"}))
        drop(ws)  # and every resume is dropped at once, before a frame

    async with scripted(handler) as url, asyncio.timeout(10):
        with pytest.raises(ConnectionLost, match="4 tries to resume failed"):
            async for _ in AsyncClient(url, reconnect=FAST).run("x"):
                pass
    assert connections == 5  # the run, then the four tries


async def test_tries_are_bounded_when_nothing_listens_any_more() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS, "token": "T"}))
        drop(ws)

    async with asyncio.timeout(10):
        async with scripted(handler) as url:
            run = AsyncClient(url, reconnect=FAST).run("x")
            assert isinstance(await anext(run), StartedFrame)
        # the server and its listening socket are gone: every try is refused
        with pytest.raises(ConnectionLost, match="4 tries to resume failed"):
            await anext(run)


async def test_stdin_sent_while_dropped_goes_on_the_resumed_connection() -> None:
    script = ResumableRun(lines=2, drop_after={1})
    script.frames.pop()  # no exit: the run waits for input

    async with scripted(script.handler) as url, asyncio.timeout(10), AsyncClient(url, reconnect=FAST).run("x") as run:
        seen = [await anext(run), await anext(run)]  # started, line 1, then the drop
        sending = asyncio.ensure_future(run.stdin("typed\n"))
        assert isinstance(await anext(run), StdoutFrame)  # line 2, after the resume
        await sending
        await script.got_stdin.wait()
    assert [f.type for f in seen] == ["started", "stdout"]
    assert script.stdin == ["typed\n"]


async def test_an_error_frame_is_raised_with_its_code() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "error", "code": "busy", "message": "all sandboxes are busy"}))
        await ws.close(1013)

    async with scripted(handler) as url, asyncio.timeout(10):
        with pytest.raises(ServerError) as caught:
            async for _ in AsyncClient(url).run("x"):
                pass
    assert (caught.value.code, caught.value.message) == ("busy", "all sandboxes are busy")


async def test_unknown_frame_types_and_fields_are_ignored() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS, "colour": "red"}))
        await ws.send(json.dumps({"type": "hologram", "data": "?"}))
        await ws.send(json.dumps(exit_frame(future_field=1)))
        await ws.close()

    async with scripted(handler) as url, asyncio.timeout(10):
        types = [f.type async for f in AsyncClient(url).run("x")]
    assert types == ["started", "exit"]


async def test_a_watcher_cannot_send_and_reconnects_with_watch() -> None:
    firsts: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        firsts.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS}))
        if len(firsts) == 1:
            await ws.send(json.dumps({"type": "stdout", "data": "a\n", "seq": 1}))
            drop(ws)
            return
        await ws.send(json.dumps({"type": "stdout", "data": "a\n", "seq": 1}))
        await ws.send(json.dumps(exit_frame(seq=2)))

    async with scripted(handler) as url, asyncio.timeout(10):
        watch = AsyncClient(url, reconnect=FAST).watch("r", "W")
        with pytest.raises(ClientError, match="watcher"):
            await watch.kill()
        types = [f.type async for f in watch]
    assert types == ["started", "stdout", "exit"]
    assert firsts == [{"type": "watch", "id": "r", "token": "W"}] * 2


async def test_a_request_any_server_refuses_fails_before_sending() -> None:
    client = AsyncClient("http://127.0.0.1:9")
    with pytest.raises(InvalidRequest, match=r"'\.\.'"):
        client.run("x", files={"../up.txt": "x"})
    with pytest.raises(InvalidRequest, match="positive"):
        client.run("x", timeout=0)


async def test_no_server_is_connection_lost() -> None:
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionLost, match="cannot connect"):
            async for _ in AsyncClient("http://127.0.0.1:9").run("x"):
                pass


def test_the_blocking_client_yields_the_same_frames() -> None:
    script = ResumableRun(lines=3, drop_after={2})

    async def main() -> None:
        async with scripted(script.handler) as url:

            def blocking() -> list[str]:
                with Client(url, reconnect=FAST) as client, client.run("x") as run:
                    return [f.data for f in run if isinstance(f, StdoutFrame)]

            assert await asyncio.to_thread(blocking) == ["line 1\n", "line 2\n", "line 3\n"]

    asyncio.run(main())


def test_urls_accept_http_and_ws_schemes() -> None:
    assert AsyncClient("http://h:1").ws_url == "ws://h:1/run"
    assert AsyncClient("https://h/sce/").ws_url == "wss://h/sce/run"
    assert AsyncClient("h:5000").base_url == "http://h:5000"
    with pytest.raises(InvalidRequest):
        AsyncClient("ftp://h")


_ = websockets  # the scripted server is websockets' own


async def test_a_server_that_refuses_the_resume_frame_cannot_resume() -> None:
    async def handler(ws: ServerConnection) -> None:
        first = json.loads(await ws.recv())
        if first["type"] != "run":  # a server with tokens but no resume yet
            refusal = {"type": "error", "code": "bad_message", "message": "the first frame must be run"}
            await ws.send(json.dumps(refusal))
            await ws.close(1008)
            return
        await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS, "token": "T"}))
        drop(ws)

    async with scripted(handler) as url, asyncio.timeout(10):
        with pytest.raises(CannotResume, match="could not resume: the first frame must be run"):
            async for _ in AsyncClient(url, reconnect=FAST).run("x"):
                pass
