"""One run of one program in one sandbox, observed as a stream of events.

The run owns three concurrent pieces: a reader that turns the attach stream into output
events (never blocked by a slow consumer: the output cap bounds what it can hold), a writer
that feeds stdin (bounded, so a flood from the client waits instead of piling up), and a
supervisor that decides how the run ends: the container's own exit, the wall clock, the
client's kill, or the output cap. Whatever happens, including the consumer going away, the
container is killed and removed and the socket closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Protocol

from app.core.events import Event, Exit, Output, Reason, RunLimits, Started, signal_name
from app.core.lines import OutputAssembler, coalesce
from app.errors import Unavailable
from app.protocol import RunRequest
from app.sandbox.bootstrap import encode_program
from app.sandbox.docker.engine import ExitStatus
from app.sandbox.docker.framing import FrameError, FrameParser, Stream

EXIT_WAIT_AFTER_KILL_S = 10.0  # a killed container that has not exited by then: the engine is unwell
# Output still in flight when the container has exited: the engine ends the stream right after,
# so this bound only matters when the engine (or this server) is badly overloaded; output it
# cuts off is reported as truncated, never dropped silently.
DRAIN_AFTER_EXIT_S = 30.0
STDIN_QUEUE_DEPTH = 16


class SandboxLike(Protocol):
    """What a run needs of a sandbox; the Docker one lives in engine.py."""

    async def send(self, data: bytes) -> None: ...
    async def close_stdin(self) -> None: ...
    async def recv(self, size: int = ...) -> bytes: ...
    async def kill(self) -> None: ...
    async def wait(self) -> ExitStatus: ...


_END = object()


class StdinQueue:
    """Text on its way to the program: bounded, so a client that floods it waits (back-pressure).

    It exists before the run does, so stdin sent while a run is still queued is kept in order.
    """

    def __init__(self, depth: int = STDIN_QUEUE_DEPTH) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(depth)
        self._head: list[bytes] = []
        self.closed = False

    async def write(self, data: str) -> None:
        if data and not self.closed:
            await self._queue.put(data.encode("utf-8", "surrogatepass"))

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._queue.put(None)

    def put_first(self, data: str) -> None:
        """The run frame's own ``stdin``: written before anything sent later."""
        self._head.append(data.encode("utf-8", "surrogatepass"))

    async def get(self) -> bytes | None:
        if self._head:
            return self._head.pop(0)
        return await self._queue.get()


class Run:
    """Drive ``events()`` to run the program; call the other methods from anywhere meanwhile."""

    def __init__(
        self,
        sandbox: SandboxLike,
        request: RunRequest,
        limits: RunLimits,
        *,
        max_line_chars: int,
        flush_interval_s: float,
        run_id: str | None = None,
        stdin: StdinQueue | None = None,
    ) -> None:
        self.id = run_id or uuid.uuid4().hex
        self.sandbox = sandbox
        self.request = request
        self.limits = limits
        self.assembler = OutputAssembler(
            output_bytes=limits.output_bytes, max_line_chars=max_line_chars, flush_interval_s=flush_interval_s
        )
        self._events: asyncio.Queue[Event | object] = asyncio.Queue()
        self._stdin = stdin if stdin is not None else StdinQueue()
        self._stop = asyncio.Event()
        self._stop_reason: Reason | None = None
        self.first_output_at: float | None = None
        self.started_at: float | None = None
        self.exit: Exit | None = None

    # -- control, from the transport -----------------------------------------------------------
    async def write_stdin(self, data: str) -> None:
        await self._stdin.write(data)

    async def close_stdin(self) -> None:
        await self._stdin.close()

    def kill(self) -> None:
        self._request_stop("killed")

    def _request_stop(self, reason: Reason) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            self._stop.set()

    # -- the run ------------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[Event]:
        """Started, output..., Exit. Raises ``Unavailable`` if the sandbox fails."""
        tasks: list[asyncio.Task[None]] = []
        try:
            await self.sandbox.send(encode_program(self.request.code))
            self.started_at = time.monotonic()
            yield Started(self.id, self.limits)
            if self.request.stdin:
                self._stdin.put_first(self.request.stdin)
            loop = asyncio.get_running_loop()
            reader = loop.create_task(self._read())
            tasks = [reader, loop.create_task(self._write()), loop.create_task(self._supervise(reader))]
            while True:
                item = await self._events.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, Started | Output | Exit)
                yield item
        except OSError as exc:
            raise Unavailable("the sandbox stopped answering") from exc
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task

    def _emit(self, chunks: list[tuple[Stream, str]]) -> None:
        for stream, text in coalesce(chunks):
            if self.first_output_at is None:
                self.first_output_at = time.monotonic()
            self._events.put_nowait(Output(stream, text))

    async def _read(self) -> None:
        """Pump output into events; a broken stream fails the run instead of stalling it."""
        try:
            await self._pump_output()
        except (OSError, FrameError) as exc:
            self._events.put_nowait(Unavailable(f"the sandbox's output stream broke: {exc}"))

    async def _pump_output(self) -> None:
        parser = FrameParser()
        assembler = self.assembler
        loop = asyncio.get_running_loop()
        receiving: asyncio.Task[bytes] | None = None
        try:
            while True:
                # one receive stays pending across flush deadlines: cancelling a receive that
                # has just completed would throw its bytes away
                if receiving is None:
                    receiving = loop.create_task(self.sandbox.recv())
                flush_at = assembler.next_flush_at()
                if flush_at is not None:
                    await asyncio.wait({receiving}, timeout=max(0.0, flush_at - loop.time()))
                    if not receiving.done():
                        self._emit(assembler.flush_due(loop.time()))
                        continue
                data = await receiving
                receiving = None
                if not data:
                    return
                now = loop.time()
                chunks: list[tuple[Stream, str]] = []
                for stream, payload in parser.feed(data):
                    chunks.extend(assembler.feed(stream, payload, now))
                chunks.extend(assembler.flush_due(now))
                self._emit(chunks)
                if assembler.truncated:
                    self._request_stop("output_limit")
        finally:
            if receiving is not None:
                receiving.cancel()

    async def _write(self) -> None:
        while True:
            data = await self._stdin.get()
            try:
                if data is None:
                    await self.sandbox.close_stdin()
                    return
                await self.sandbox.send(data)
            except OSError:
                return  # the program is gone; its exit is reported by the supervisor

    async def _supervise(self, reader: asyncio.Task[None]) -> None:
        try:
            await self._events.put(await self._finish(reader))
        except BaseException as exc:  # surfaced to the consumer by events()
            if isinstance(exc, asyncio.CancelledError):
                raise
            self._events.put_nowait(exc)
        self._events.put_nowait(_END)

    async def _finish(self, reader: asyncio.Task[None]) -> Exit:
        assert self.started_at is not None
        loop = asyncio.get_running_loop()
        waiter = loop.create_task(self.sandbox.wait())
        stopper = loop.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                {waiter, stopper}, timeout=self.limits.timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter not in done:
                self._request_stop("timeout")
                await self.sandbox.kill()
            try:
                async with asyncio.timeout(EXIT_WAIT_AFTER_KILL_S):
                    status = await asyncio.shield(waiter)
            except TimeoutError:
                raise Unavailable("the sandbox did not exit after being killed") from None
            duration_ms = round((time.monotonic() - self.started_at) * 1000)
            # the container is gone, so the stream ends once the engine has passed on what is left
            try:
                async with asyncio.timeout(DRAIN_AFTER_EXIT_S):
                    await asyncio.shield(reader)
            except TimeoutError:
                self.assembler.truncated = True
            reader.cancel()
            self._emit(self.assembler.finish())
        finally:
            stopper.cancel()
            if not waiter.done():
                waiter.cancel()
        reason: Reason = self._stop_reason or "exit"
        if status.oom_killed and reason in ("exit", "timeout") and status.code == 137:
            reason = "oom"
        exit_code = status.code if reason == "exit" else None
        self.exit = Exit(
            reason=reason,
            exit_code=exit_code,
            signal=signal_name(status.code) if reason == "exit" else None,
            duration_ms=duration_ms,
            stdout_bytes=self.assembler.stdout_bytes,
            stderr_bytes=self.assembler.stderr_bytes,
            truncated=self.assembler.truncated,
        )
        return self.exit
