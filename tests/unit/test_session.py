"""The WebSocket session as a state machine, without Quart and without Docker (a scripted engine).

The same behaviours are tested over real hypercorn and the real engine in tests/integration;
here the states and their transitions are driven one frame at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.sandbox.service import SandboxService
from app.server.context import ServerContext
from app.server.ws import IllegalTransition, State, WebSocketSession
from app.settings import Settings
from tests.fakes import FakeEngine, FakeSandbox

pytestmark = pytest.mark.timeout(10)


class FakeConnection:
    def __init__(self) -> None:
        self.inbound: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.sent_event = asyncio.Event()
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.network_drop = False

    def dropped(self) -> bool:
        return self.network_drop

    def push(self, frame: dict[str, Any] | bytes) -> None:
        self.inbound.put_nowait(frame if isinstance(frame, bytes) else json.dumps(frame))

    async def receive(self) -> str | bytes:
        return await self.inbound.get()

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))
        self.sent_event.set()

    async def close(self, code: int) -> None:
        if not self.closed.done():
            self.closed.set_result(code)

    async def until_sent(self, kind: str) -> dict[str, Any]:
        while True:
            for frame in self.sent:
                if frame["type"] == kind:
                    return frame
            self.sent_event.clear()
            await self.sent_event.wait()

    def types(self) -> list[str]:
        return [f["type"] for f in self.sent]


async def sleeper(sandbox: FakeSandbox) -> int:
    sandbox.out("up\n")
    await asyncio.Event().wait()  # never reads stdin, never ends by itself
    return 0


async def echo(sandbox: FakeSandbox) -> int:
    sandbox.out((await sandbox.read_stdin()).decode())
    return 0


async def context(script: Any, **settings: Any) -> AsyncIterator[tuple[ServerContext, FakeEngine]]:
    engine = FakeEngine(script)
    service = SandboxService(Settings(pool_size=0, scientific_pool_size=0, **settings), engine=engine)
    await service.start()
    await service.ready.wait()
    ctx = ServerContext.build(service.settings, service)
    try:
        yield ctx, engine
    finally:
        await service.stop()


@pytest.fixture
async def sleeping() -> AsyncIterator[tuple[ServerContext, FakeEngine]]:
    async for pair in context(sleeper):
        yield pair


async def test_a_run_moves_through_running_to_closed() -> None:
    async for ctx, _ in context(echo):
        conn = FakeConnection()
        session = WebSocketSession(ctx, conn, "addr:test")
        serving = asyncio.create_task(session.serve())
        conn.push({"type": "run", "code": "x", "stdin": "hi\n"})
        assert await conn.closed == 1000
        await serving
        assert conn.types() == ["started", "input", "stdout", "exit"]  # the run frame's stdin is echoed (v3)
        assert session.state is State.CLOSED


async def test_stdin_before_run_is_a_violation_in_the_first_state() -> None:
    async for ctx, engine in context(echo):
        conn = FakeConnection()
        session = WebSocketSession(ctx, conn, "addr:test")
        conn.push({"type": "stdin", "data": "x"})
        await session.serve()
        assert conn.sent[-1]["code"] == "bad_message" and await conn.closed == 1008
        assert engine.started == []  # nothing ran


async def test_kill_is_read_at_once_while_the_program_ignores_a_flood_of_stdin(
    sleeping: tuple[ServerContext, FakeEngine],
) -> None:
    ctx, engine = sleeping
    conn = FakeConnection()
    serving = asyncio.create_task(WebSocketSession(ctx, conn, "addr:test").serve())
    conn.push({"type": "run", "code": "x", "timeout": 60})
    await conn.until_sent("stdout")
    for _ in range(40):  # 2.5 MB the program never reads: far more than any pipe holds
        conn.push({"type": "stdin", "data": "z" * 65536})
    conn.push({"type": "kill"})
    async with asyncio.timeout(2):
        exit_ = await conn.until_sent("exit")
    assert exit_["reason"] == "killed"
    assert await conn.closed == 1000
    await serving
    assert engine.started[0].killed


async def test_unread_stdin_past_its_bound_is_a_clear_error_and_the_run_ends(
    sleeping: tuple[ServerContext, FakeEngine],
) -> None:
    ctx, engine = sleeping
    conn = FakeConnection()
    serving = asyncio.create_task(WebSocketSession(ctx, conn, "addr:test").serve())
    conn.push({"type": "run", "code": "x", "timeout": 60})
    await conn.until_sent("stdout")
    for _ in range(80):  # 5 MB: over the 4 MiB that may wait unread
        conn.push({"type": "stdin", "data": "z" * 65536})
    error = await conn.until_sent("error")
    assert error["code"] == "bad_message" and "not reading its standard input" in error["message"]
    assert await conn.closed == 1008
    await serving
    assert engine.started[0].killed


async def test_kill_while_queued_ends_the_run_before_it_starts() -> None:
    async for ctx, engine in context(sleeper, max_concurrent_runs=1):
        first, second = FakeConnection(), FakeConnection()
        serving_first = asyncio.create_task(WebSocketSession(ctx, first, "addr:a").serve())
        first.push({"type": "run", "code": "x", "timeout": 60})
        await first.until_sent("stdout")
        session = WebSocketSession(ctx, second, "addr:b")
        serving_second = asyncio.create_task(session.serve())
        second.push({"type": "run", "code": "x"})
        assert await second.until_sent("queued") == {"type": "queued", "position": 1}
        assert session.state is State.QUEUED
        second.push({"type": "kill"})
        assert (await second.until_sent("exit"))["reason"] == "killed"
        assert "started" not in second.types()
        assert await second.closed == 1000
        first.push({"type": "kill"})
        await asyncio.gather(serving_first, serving_second)
        assert len(engine.started) == 1


async def test_transitions_are_checked(sleeping: tuple[ServerContext, FakeEngine]) -> None:
    ctx, _ = sleeping
    session = WebSocketSession(ctx, FakeConnection(), "addr:test")
    session.move(State.RUNNING)
    with pytest.raises(IllegalTransition):
        session.move(State.QUEUED)
    session.move(State.ENDED)
    with pytest.raises(IllegalTransition):
        session.move(State.RUNNING)


async def test_a_vanished_client_has_its_run_killed(sleeping: tuple[ServerContext, FakeEngine]) -> None:
    ctx, engine = sleeping
    conn = FakeConnection()
    serving = asyncio.create_task(WebSocketSession(ctx, conn, "addr:test").serve())
    conn.push({"type": "run", "code": "x", "timeout": 60})
    await conn.until_sent("stdout")
    serving.cancel()  # what Quart does when the client disconnects
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert engine.started[0].killed
    assert not ctx.registry.active


# --- v2: resume and watch -------------------------------------------------------------------------------


async def ticker(sandbox: FakeSandbox) -> int:
    for i in range(30):
        sandbox.out(f"{i}\n")
        await asyncio.sleep(0.01)
    await sandbox.read_stdin()  # waits for the end of stdin (or a kill)
    return 0


async def start_driving(ctx: ServerContext) -> tuple[FakeConnection, asyncio.Task[None], dict[str, Any]]:
    conn = FakeConnection()
    task = asyncio.create_task(WebSocketSession(ctx, conn, "addr:test").serve())
    conn.push({"type": "run", "code": "x", "timeout": 30})
    started = await conn.until_sent("started")
    return conn, task, started


async def until_nth(conn: FakeConnection, kind: str, n: int) -> dict[str, Any]:
    while True:
        found = [f for f in conn.sent if f["type"] == kind]
        if len(found) >= n:
            return found[n - 1]
        conn.sent_event.clear()
        await conn.sent_event.wait()


def lines(frames: list[dict[str, Any]]) -> list[str]:
    return [f["data"] for f in frames if f["type"] == "stdout"]


async def drop(conn: FakeConnection, task: asyncio.Task[None]) -> None:
    conn.network_drop = True
    task.cancel()  # hypercorn reports 1006 and Quart cancels the handler
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_dropped_run_goes_on_and_a_resume_gets_every_frame_once() -> None:
    async for ctx, _ in context(ticker):
        conn, task, started = await start_driving(ctx)
        await conn.until_sent("stdout")
        await drop(conn, task)
        seen = [f["seq"] for f in conn.sent if "seq" in f]
        back = FakeConnection()
        resumed = asyncio.create_task(WebSocketSession(ctx, back, "addr:test").serve())
        back.push({"type": "resume", "id": started["id"], "token": started["token"], "after": seen[-1]})
        await back.until_sent("stdout")
        back.push({"type": "stdin", "eof": True})  # a resumed driver may send stdin
        assert await back.closed == 1000
        await resumed
        assert back.sent[0]["seq"] == seen[-1] + 1
        everything = lines(conn.sent) + lines(back.sent)
        assert everything == [f"{i}\n" for i in range(30)]
        assert [f["seq"] for f in back.sent] == list(range(seen[-1] + 1, seen[-1] + 1 + len(back.sent)))
        assert back.sent[-1]["type"] == "exit" and back.sent[-1]["reason"] == "exit"


async def test_a_dropped_run_nobody_resumes_is_killed_after_the_grace() -> None:
    async for ctx, engine in context(ticker, resume_grace_s=0.2):
        conn, task, started = await start_driving(ctx)
        await drop(conn, task)
        live = ctx.registry.lookup(started["id"], started["token"], watch=False)
        await live.wait_done()
        assert live.exit is not None and live.exit.reason == "killed"
        assert engine.started[0].killed


async def test_a_clean_close_still_ends_the_run_at_once() -> None:
    async for ctx, engine in context(ticker, resume_grace_s=30):
        _, task, _ = await start_driving(ctx)
        task.cancel()  # a close frame: network_drop stays False
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert engine.started[0].killed


@pytest.mark.parametrize("which", ["unknown id", "wrong token", "watch token cannot drive"])
async def test_resume_with_a_bad_id_or_token_is_not_found(which: str) -> None:
    async for ctx, _ in context(ticker):
        conn, task, started = await start_driving(ctx)
        frame = {"type": "resume", "id": started["id"], "token": started["token"], "after": 0}
        if which == "unknown id":
            frame["id"] = "0" * 16
        elif which == "wrong token":
            frame["token"] = started["token"][:-1] + ("A" if started["token"][-1] != "A" else "B")
        else:
            frame["token"] = started["watch_token"]
        other = FakeConnection()
        other.push(frame)
        await WebSocketSession(ctx, other, "addr:x").serve()
        assert other.sent == [{"type": "error", "code": "not_found", "message": other.sent[0]["message"]}]
        assert await other.closed == 1008
        conn.push({"type": "kill"})
        await task


async def test_a_resume_takes_the_run_over_from_an_open_connection() -> None:
    async for ctx, _ in context(ticker):
        first, task, started = await start_driving(ctx)
        second = FakeConnection()
        taking = asyncio.create_task(WebSocketSession(ctx, second, "addr:test").serve())
        second.push({"type": "resume", "id": started["id"], "token": started["token"], "after": 0})
        assert await first.closed == 1008
        await task
        second.push({"type": "kill"})
        assert (await second.until_sent("exit"))["reason"] == "killed"
        await taking


async def test_watchers_see_what_the_driver_sees_and_cannot_drive() -> None:
    async for ctx, _ in context(ticker, watchers_max=2):
        driver, task, started = await start_driving(ctx)
        watchers = [FakeConnection() for _ in range(3)]
        watching = [asyncio.create_task(WebSocketSession(ctx, w, "addr:w").serve()) for w in watchers]
        for w in watchers:
            w.push({"type": "watch", "id": started["id"], "token": started["watch_token"]})
        assert await watchers[2].closed == 1013  # the limit holds
        assert watchers[2].sent[0]["code"] == "busy"
        watchers[1].push({"type": "kill"})
        assert await watchers[1].closed == 1008  # a watcher's kill is refused...
        assert watchers[1].sent[-1]["code"] == "bad_message"
        driver.push({"type": "stdin", "eof": True})  # ...and the run goes on to its own end
        assert await driver.closed == 1000 and await watchers[0].closed == 1000
        await asyncio.gather(task, *watching)
        assert "token" not in watchers[0].sent[0] and watchers[0].sent[0]["id"] == started["id"]
        assert watchers[0].sent[1:] == driver.sent[1:]


async def test_input_is_echoed_to_driver_and_watcher_and_its_total_is_bounded() -> None:
    async for ctx, _ in context(sleeper, stdin_max_bytes=2048):
        driver, task, started = await start_driving(ctx)
        watcher = FakeConnection()
        watching = asyncio.create_task(WebSocketSession(ctx, watcher, "addr:w").serve())
        watcher.push({"type": "watch", "id": started["id"], "token": started["watch_token"]})
        await watcher.until_sent("started")
        driver.push({"type": "stdin", "data": "a" * 1500})
        echo = await watcher.until_sent("input")
        assert echo["data"] == "a" * 1500 and echo["eof"] is False
        driver.push({"type": "stdin", "data": "é\ud800"})  # a lone surrogate: bytes that are not UTF-8
        assert (await until_nth(watcher, "input", 2))["data"] == "é\ufffd\ufffd\ufffd"  # shown as in output
        driver.push({"type": "stdin", "data": "b" * 1000})  # 2,500 bytes in all: past the bound
        error = await driver.until_sent("error")
        assert error["code"] == "bad_message" and "2048" in error["message"]
        # an error after started carries this connection's next seq, as every frame after started does
        assert error["seq"] == driver.sent[-2]["seq"] + 1
        assert await driver.closed == 1008
        assert [f["data"][:1] for f in driver.sent if f["type"] == "input"] == ["a", "é"]  # the refused: not echoed
        await asyncio.gather(task, watching)
