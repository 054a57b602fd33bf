"""The engine wire's HTTP against a stand-in engine on a real Unix socket (the real engine: tests/integration)."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from app.sandbox.docker.wire import EngineWire, WireError, WireNotFound

pytestmark = pytest.mark.timeout(20)

Handler = Callable[[bytes], bytes]


class FakeEngine:
    """Answers each request (its head and body, as bytes) with what ``answer`` returns; a connection
    is closed after an answer when ``close_after`` says so (an engine dropping a kept-alive one)."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed = 0  # connections the engine has closed
        self._closing = asyncio.Condition()
        self.close_after = False
        self.server: asyncio.AbstractServer | None = None

    async def until_closed(self, count: int) -> None:
        async with self._closing:
            await self._closing.wait_for(lambda: self.closed >= count)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                writer.write(self.answer(request))
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            async with self._closing:
                self.closed += 1
                self._closing.notify_all()


def response(status: int, body: bytes = b"", reason: str = "X") -> bytes:
    return b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n\r\n" % (status, reason.encode(), len(body)) + body


@pytest.fixture
async def socket_path() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="sce-wire-") as d:
        yield str(Path(d) / "engine.sock")


async def serving(path: str, engine: FakeEngine) -> EngineWire:
    engine.server = await asyncio.start_unix_server(engine.serve, path)
    return EngineWire(path, "1.41", timeout_s=5)


async def test_calls_go_out_as_docker_api_requests_on_one_kept_alive_connection(socket_path: str) -> None:
    def answer(request: bytes) -> bytes:
        if request.startswith(b"POST /v1.41/containers/create "):
            return response(201, b'{"Id": "abc", "Warnings": []}')
        return response(204)

    engine = FakeEngine(answer)
    wire = await serving(socket_path, engine)
    assert await wire.create(b'{"Image": "x"}') == "abc"
    await wire.start("abc")
    await wire.remove("abc")
    assert [r.split(b"\r\n")[0] for r in engine.requests] == [
        b"POST /v1.41/containers/create HTTP/1.1",
        b"POST /v1.41/containers/abc/start HTTP/1.1",
        b"DELETE /v1.41/containers/abc?force=1 HTTP/1.1",
    ]
    assert (
        engine.requests[0].endswith(b'\r\n\r\n{"Image": "x"}')
        and b"content-type: application/json" in engine.requests[0].lower()
    )
    assert engine.connections == 1
    wire.close()


async def test_engine_errors_carry_the_status_and_the_engines_message(socket_path: str) -> None:
    answers = iter(
        [
            response(404, b'{"message": "No such container: abc"}'),
            response(409, b'{"message": "busy"}'),
            response(500, b"not json"),
        ]
    )
    wire = await serving(socket_path, FakeEngine(lambda _: next(answers)))
    with pytest.raises(WireNotFound) as gone:
        await wire.remove("abc")
    assert isinstance(gone.value, WireNotFound) and gone.value.explanation == "No such container: abc"
    with pytest.raises(WireError) as busy:
        await wire.start("abc")
    assert isinstance(busy.value, WireError) and busy.value.status_code == 409 and busy.value.explanation == "busy"
    with pytest.raises(WireError) as broken:
        await wire.start("abc")
    assert broken.value.status_code == 500 and broken.value.explanation == "not json"
    wire.close()


async def test_a_kept_alive_connection_the_engine_closed_is_replaced_once(socket_path: str) -> None:
    # the engine drops a kept-alive connection just as the next call goes out on it (the wire had
    # not seen it closed yet): no answer began, so the call is made once more on a new connection
    class DropsSecondCall(FakeEngine):
        async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            for call in range(2):
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                if call == 1:
                    break
                writer.write(response(204))
                await writer.drain()
            writer.close()

    engine = DropsSecondCall(lambda _: b"")
    wire = await serving(socket_path, engine)
    await wire.start("a")
    await wire.start("b")
    assert [r.split(b" ")[1] for r in engine.requests] == [
        b"/v1.41/containers/a/start",
        *[b"/v1.41/containers/b/start"] * 2,
    ]
    assert engine.connections == 2
    wire.close()


async def test_after_an_engine_restart_every_stale_connection_is_let_go(socket_path: str) -> None:
    # several kept-alive connections, all closed by the engine (a restart): the next call is made
    # once more on a new connection, never on another stale one
    engine = FakeEngine(lambda _: response(204))
    engine.close_after = True
    wire = await serving(socket_path, engine)
    await asyncio.gather(*(wire.start(str(i)) for i in range(3)))
    assert engine.connections == 3
    await engine.until_closed(3)
    await wire.start("after")
    assert engine.connections == 4 and engine.requests[-1].startswith(b"POST /v1.41/containers/after/start")
    wire.close()


async def test_a_fresh_connection_that_fails_is_not_tried_again(socket_path: str) -> None:
    # the engine reads the call and hangs up without an answer: the call may have been done, so
    # it is never sent twice; the caller gets an OSError (the engine failed)
    engine = FakeEngine(lambda _: b"")
    engine.close_after = True
    wire = await serving(socket_path, engine)
    with pytest.raises(OSError, match="connection failed"):
        await wire.create(b"{}")
    assert len(engine.requests) == 1
    wire.close()


async def test_a_cancelled_call_never_leaves_its_connection_for_the_next(socket_path: str) -> None:
    slow = asyncio.Event()

    class Slow(FakeEngine):
        async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self.connections == 0:
                self.connections += 1
                await reader.readuntil(b"\r\n\r\n")
                slow.set()
                await asyncio.sleep(30)  # never answers this one
                return
            await super().serve(reader, writer)

    engine = Slow(lambda _: response(204))
    wire = await serving(socket_path, engine)
    call = asyncio.ensure_future(wire.start("a"))
    await slow.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await wire.start("b")  # a late answer to "a" can never be read as b's
    assert engine.connections == 2
    wire.close()


async def test_attach_hands_over_the_raw_stream_with_bytes_that_came_early(socket_path: str) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"POST /v1.41/containers/abc/attach?stdin=1&stdout=1&stderr=1&stream=1 HTTP/1.1")
        assert b"upgrade: tcp" in head.lower()
        writer.write(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n\x01\x00\x00\x00")
        await writer.drain()
        writer.write(await reader.read(5))  # echoes what the client sends on the stream
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(serve, socket_path)
    wire = EngineWire(socket_path, "1.41", timeout_s=5)
    stream = await wire.attach("abc")
    try:
        got = b""
        while len(got) < 4:
            got += await stream.recv()  # the early bytes first
        assert got == b"\x01\x00\x00\x00"
        await stream.send(b"hello")
        assert await stream.recv() == b"hello"
    finally:
        stream.close()
        server.close()


async def test_attach_to_a_missing_container_raises_not_found(socket_path: str) -> None:
    engine = FakeEngine(lambda _: response(404, json.dumps({"message": "No such container: zz"}).encode()))
    wire = await serving(socket_path, engine)
    with pytest.raises(WireNotFound, match="No such container"):
        await wire.attach("zz")


async def test_a_malformed_answer_is_an_engine_failure_not_a_crash(socket_path: str) -> None:
    # OSError is what the engine's callers map to "unavailable"; h11's own errors are not raised
    wire = await serving(socket_path, FakeEngine(lambda _: b"NOT HTTP AT ALL\r\n\r\n"))
    with pytest.raises(OSError, match="connection failed"):
        await wire.start("a")
    with pytest.raises(OSError, match="malformed"):
        await wire.attach("a")
