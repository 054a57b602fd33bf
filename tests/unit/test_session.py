"""The WebSocket session as a state machine, without Quart and without Docker (a scripted engine).

The same behaviours are tested over real hypercorn and the real engine in tests/integration;
here the states and their transitions are driven one frame at a time.
"""

from __future__ import annotations

import asyncio
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
    service = SandboxService(Settings(pool_size=0, **settings), engine=engine)
    await service.start()
    await service.ready.wait()
    ctx = ServerContext.build(Settings(pool_size=0, **settings), service)
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
        assert conn.types() == ["started", "stdout", "exit"]
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
