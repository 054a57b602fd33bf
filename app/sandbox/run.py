"""One run of one program in one sandbox, observed as a stream of events.

The run owns three concurrent pieces: a reader that turns the sandbox's output into output
events (never blocked by a slow consumer: the output cap bounds what it can hold), a writer
that feeds stdin, and a supervisor that decides how the run ends: the program's own exit, the
wall clock, the client's kill, or the output cap. Whatever happens, including the consumer
going away, the container is killed and removed and the socket closed.

No thread is held while the program runs: the supervisor waits on the reader (the output ends
when the sandbox does), the stop event and the deadline, all on the event loop; only then does
it ask the engine how the sandbox ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import replace

from app.core.events import Event, Exit, Output, Result, RunException, RunLimits, Started, Stats
from app.core.exits import ExitObservation, Reason, classify_exit
from app.core.lines import OutputAssembler, coalesce
from app.core.rich import FileOut, Image, RichLimits, RichOutput
from app.core.sidechannel import (
    KIND_BEGIN,
    KIND_EXCEPTION,
    KIND_EXIT,
    KIND_FILE,
    KIND_FILES_END,
    KIND_IMAGE,
    KIND_RESULT,
    KIND_STDERR,
    Record,
    SideChannelDemux,
    exception_of,
)
from app.core.streams import Stream
from app.errors import BadMessage, SCEError, Unavailable
from app.protocol import RunRequest
from app.sandbox.bootstrap import FilesOutLimits, encode_program
from app.sandbox.inside.bootstrap import MAIN_FILENAME
from app.sandbox.interface import Sandbox, Usage

# From a kill (timeout, client, output cap) to the exit frame at most: past it, the outcome is
# reported without the engine's confirmation and the sandbox is removed in the background.
KILL_REPORT_S = 0.5
EXIT_STATUS_WAIT_S = 10.0  # from the end of the output to the engine's word on the exit
# Output still in flight when the sandbox has ended: the engine ends the stream right after,
# so this bound only matters when the engine (or this server) is badly overloaded; output it
# cuts off is reported as truncated, never dropped silently.
DRAIN_AFTER_EXIT_S = 30.0
# The final resource reading is held to this: from a cgroup it takes microseconds (plus at most a
# few milliseconds while the last processes leave); from stats API samples it is no call at all.
# Past it the exit is sent with the figures unknown (null) rather than late.
FINAL_USAGE_S = 0.1
STATS_INTERVAL_S = 0.5  # ``stats`` frames, for runs that ask
MIB = 1024 * 1024
STDIN_PENDING_MAX_BYTES = 4 * 1024 * 1024
RECORD_META_ROOM = 64 * 1024  # a record's header and JSON meta, on top of its data


class StdinBuffer:
    """Text on its way to the program, in order, written by the run's writer task.

    Writing never waits: the transport must stay free to read a ``kill`` or an ``eof`` whatever
    the program does with its input. What the program has not read yet is bounded instead; a
    client that sends more than that to a program that is not reading gets a clear error. It
    exists before the run does, so stdin sent while a run is still queued is kept in order.
    """

    def __init__(self, max_pending_bytes: int = STDIN_PENDING_MAX_BYTES) -> None:
        self.max_pending_bytes = max_pending_bytes
        self._chunks: deque[bytes] = deque()
        self._pending = 0
        self._ready = asyncio.Event()
        self.closed = False

    def write(self, data: str) -> None:
        if not data or self.closed:
            return
        chunk = data.encode("utf-8", "surrogatepass")
        if self._pending + len(chunk) > self.max_pending_bytes:
            raise BadMessage(
                f"the program is not reading its standard input: {self._pending} bytes are waiting "
                f"and the limit is {self.max_pending_bytes}"
            )
        self._chunks.append(chunk)
        self._pending += len(chunk)
        self._ready.set()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._ready.set()

    def put_first(self, data: str) -> None:
        """The run frame's own ``stdin``: written before anything sent later."""
        if data:
            chunk = data.encode("utf-8", "surrogatepass")
            self._chunks.appendleft(chunk)
            self._pending += len(chunk)
            self._ready.set()

    async def get(self) -> bytes | None:
        """The next chunk, or None once closed and empty."""
        while not self._chunks:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        chunk = self._chunks.popleft()
        self._pending -= len(chunk)
        return chunk


_END = object()
_BACKGROUND: set[asyncio.Task[None]] = set()  # kills still finishing after their run has reported


def _forget(task: asyncio.Task[None]) -> None:
    _BACKGROUND.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a failed kill is the removal's problem now


class Run:
    """Drive ``events()`` to run the program; call the other methods from anywhere meanwhile."""

    def __init__(
        self,
        sandbox: Sandbox,
        request: RunRequest,
        limits: RunLimits,
        *,
        max_line_chars: int,
        flush_interval_s: float,
        rich_limits: RichLimits,
        run_id: str | None = None,
        stdin: StdinBuffer | None = None,
        nonce: str | None = None,
    ) -> None:
        self.id = run_id or uuid.uuid4().hex
        # tags this run's side-channel records (images, files); a session's runs share the session's
        self.nonce = nonce or secrets.token_hex(16)
        self.rich = RichOutput(rich_limits)
        self.demux = SideChannelDemux(
            self.nonce, max(rich_limits.image_max_bytes, rich_limits.file_max_bytes) + RECORD_META_ROOM
        )
        # the program's own end: the bootstrap's ``exit`` record (its status) on stdout after a
        # marker on stderr, each the last thing its process writes there; once both have come,
        # every byte the process wrote before them has been read (see ``_finish``)
        self.err_demux = SideChannelDemux(self.nonce, RECORD_META_ROOM)
        self._ended = asyncio.Event()
        self._end_code: int | None = None
        self._end_marker = False
        self._exception: RunException | None = None  # the program's own word on how it failed
        # streams whose program start (a ``begin`` record) has not come yet: a session's runs
        # (``_carried``); a one-shot sandbox's output is all its program's
        self._before_begin: set[Stream] = set()
        self.sandbox = sandbox
        self.request = request
        self.limits = limits
        self.assembler = OutputAssembler(
            output_bytes=limits.output_bytes, max_line_chars=max_line_chars, flush_interval_s=flush_interval_s
        )
        self._events: asyncio.Queue[Event | BaseException | object] = asyncio.Queue()
        self.stdin = stdin if stdin is not None else StdinBuffer()
        self._stop = asyncio.Event()
        self._stop_reason: Reason | None = None
        self.first_output_at: float | None = None
        self.started_at: float | None = None
        self.exit: Exit | None = None
        self._stats: asyncio.Task[None] | None = None

    # -- control, from the transport -----------------------------------------------------------
    def kill(self) -> None:
        self._request_stop("killed")

    def over_budget(self) -> None:
        """The server's budget for this run's frames is spent (app/core/budget.py): the run ends
        as ``output_limit``, truncated, as at the output cap."""
        self.assembler.truncated = True
        self._request_stop("output_limit")

    def _request_stop(self, reason: Reason) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            self._stop.set()

    # -- the run ------------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[Event]:
        """Started, output..., Exit. Raises ``Unavailable`` if the sandbox fails."""
        tasks: list[asyncio.Task[None]] = []
        try:
            rich = self.rich.limits
            program = encode_program(
                self.request.code,
                nonce=self.nonce,
                files=[(f.path, f.content) for f in self.request.files],
                out=FilesOutLimits(
                    max_count=rich.files_max_count,
                    max_file_bytes=rich.file_max_bytes,
                    max_total_bytes=rich.total_bytes,
                    max_image_bytes=rich.image_max_bytes,
                ),
                filename=self.request.filename or MAIN_FILENAME,
            )
            await self._send_program(program)
            self.started_at = time.monotonic()
            yield Started(self.id, self.limits)
            if self.request.stdin:
                self.stdin.put_first(self.request.stdin)
            loop = asyncio.get_running_loop()
            reader = loop.create_task(self._read())
            tasks = [reader, loop.create_task(self._write()), loop.create_task(self._supervise(reader))]
            if self.request.stats:
                self._stats = loop.create_task(self._report_stats())
                tasks.append(self._stats)
            while True:
                item = await self._events.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, Started | Output | Image | FileOut | Stats | Result | Exit)
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
        except OSError as exc:
            self._events.put_nowait(Unavailable(f"the sandbox's output stream broke: {exc}"))

    async def _pump_output(self) -> None:
        assembler = self.assembler
        loop = asyncio.get_running_loop()
        receiving: asyncio.Task[list[tuple[Stream, bytes]]] | None = None
        try:
            while True:
                # one receive stays pending across flush deadlines: cancelling a receive that
                # has just completed would throw its bytes away
                if receiving is None:
                    receiving = loop.create_task(self._recv())
                flush_at = assembler.next_flush_at()
                if flush_at is not None:
                    await asyncio.wait({receiving}, timeout=max(0.0, flush_at - loop.time()))
                    if not receiving.done():
                        self._emit(assembler.flush_due(loop.time()))
                        continue
                received = await receiving
                receiving = None
                now = loop.time()
                chunks: list[tuple[Stream, str]] = []
                if not received:
                    self._take_stdout(self.demux.finish(), chunks, now)
                    self._take_stderr(self.err_demux.finish(), chunks, now)
                    self._emit(chunks)
                    return
                for stream, payload in received:
                    if stream == "stdout":
                        self._take_stdout(self.demux.feed(payload), chunks, now)
                    else:
                        self._take_stderr(self.err_demux.feed(payload), chunks, now)
                chunks.extend(assembler.flush_due(now))
                self._emit(chunks)
                if assembler.truncated:
                    self._request_stop("output_limit")
        finally:
            if receiving is not None:
                if receiving.done() and not receiving.cancelled() and receiving.exception() is None:
                    self._unread(receiving.result())  # received as the run ended: not this run's
                receiving.cancel()

    def _take_stdout(self, items: list[bytes | Record], chunks: list[tuple[Stream, str]], now: float) -> None:
        """Ordinary stdout to the line assembler; a record goes out after the text before it."""
        for item in items:
            if isinstance(item, bytes):
                if "stdout" in self._before_begin:
                    item = self._carried(item)
                chunks.extend(self.assembler.feed("stdout", item, now))
                continue
            if item.kind == KIND_IMAGE:
                image = self.rich.image(item)
                if image is not None:
                    self._emit(chunks + self.assembler.release("stdout"))
                    chunks.clear()
                    self._events.put_nowait(image)
            elif item.kind == KIND_FILE:
                self.rich.file(item)
            elif item.kind == KIND_FILES_END:
                self.rich.files_end(item)
            elif item.kind == KIND_STDERR:  # sys.stderr's text, in its place among stdout's
                if item.data is not None:
                    data = self._carried(item.data) if "stdout" in self._before_begin else item.data
                    chunks.extend(self.assembler.release("stdout"))
                    chunks.extend(self.assembler.feed("stderr", data, now))
            elif item.kind == KIND_BEGIN:
                self._before_begin.discard("stdout")
            elif item.kind == KIND_RESULT and self.keeps_sandbox:  # a session's last expression
                if item.data is not None:
                    self._emit(chunks + self.assembler.release("stdout"))
                    chunks.clear()
                    text = item.data.decode("utf-8", "replace")[: self.limits.output_bytes]
                    self._events.put_nowait(Result(text))
            elif item.kind == KIND_EXCEPTION:
                fields = exception_of(item)
                self._exception = RunException(*fields) if fields is not None else None
            elif item.kind == KIND_EXIT:
                code = item.meta.get("code")
                if type(code) is int and 0 <= code <= 255:
                    self._end_code = code
                    self._check_end()

    def _take_stderr(self, items: list[bytes | Record], chunks: list[tuple[Stream, str]], now: float) -> None:
        """Ordinary stderr to the line assembler; the end marker noted, any other record dropped."""
        for item in items:
            if isinstance(item, bytes):
                if "stderr" in self._before_begin:
                    item = self._carried(item)
                chunks.extend(self.assembler.feed("stderr", item, now))
            elif item.kind == KIND_BEGIN:
                self._before_begin.discard("stderr")
            elif item.kind == KIND_EXIT:
                self._end_marker = True
                self._check_end()

    def _carried(self, data: bytes) -> bytes:
        """Output from before this run's program began; a one-shot run has none."""
        return data

    def _check_end(self) -> None:
        if self._end_marker and self._end_code is not None:
            self._ended.set()

    async def _report_stats(self) -> None:
        """A ``Stats`` event every ``STATS_INTERVAL_S``, in order with the output around it.

        Stopped by the supervisor before the last output and the exit are queued, so none can
        follow them. A reading with a figure still unknown (the engine's first sample not yet in)
        is skipped."""
        limit = self.limits.memory_mb * MIB
        while True:
            await asyncio.sleep(STATS_INTERVAL_S)
            usage = await self.sandbox.usage(final=False)
            if usage.cpu_ms is None or usage.memory_bytes is None:
                continue
            self._events.put_nowait(Stats(usage.memory_bytes, limit, usage.cpu_ms, usage.pids or 0))

    async def _write(self) -> None:
        while True:
            data = await self.stdin.get()
            try:
                if data is None:
                    await self._close_stdin()
                    return
                await self._send_stdin(data)
            except OSError:
                return  # the program is gone; its exit is reported by the supervisor

    async def _supervise(self, reader: asyncio.Task[None]) -> None:
        try:
            await self._events.put(await self._finish(reader))
        except BaseException as exc:  # surfaced to the consumer by events()
            if isinstance(exc, asyncio.CancelledError):
                raise
            self._events.put_nowait(exc if isinstance(exc, SCEError) else Unavailable(str(exc) or repr(exc)))
        self._events.put_nowait(_END)

    async def _finish(self, reader: asyncio.Task[None]) -> Exit:
        """Wait for the end of the output, a stop or the deadline; then learn how it ended."""
        assert self.started_at is not None
        loop = asyncio.get_running_loop()
        stopper = loop.create_task(self._stop.wait())
        ended = loop.create_task(self._ended.wait())
        deadline = loop.time() + self.limits.timeout_s - (time.monotonic() - self.started_at)
        try:
            await asyncio.wait(
                {reader, stopper, ended},
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if self._stats is not None:
                self._stats.cancel()  # no stats after the end: the rest of the output and the exit follow
            status: ExitObservation | None = None
            # The program said how it ended, after all it wrote (before the deadline, nothing asked
            # to stop it): reported now; its process is still finalizing and the sandbox is killed
            # and removed in the background. A forged record only ends its own run early, and a
            # process killed by the kernel (OOM) or at the deadline writes nothing.
            fast = self._ended.is_set() and not self._stop.is_set() and loop.time() < deadline
            if fast:
                status = ExitObservation(self._end_code)
            elif reader.done() and not self._stop.is_set():
                status = await self._status_until(deadline)
            if status is None:
                self._request_stop("timeout")  # no-op when a kill or the output cap came first
                status = await self._kill_and_observe(reader)
            duration_ms = round((time.monotonic() - self.started_at) * 1000)
            # the sandbox is gone (or, in a session, the program has stopped): the rest of the
            # output follows, unless its end records came already, after all it wrote
            if not fast and not self._ended.is_set() and (status.code is not None or reader.done()):
                # the sandbox is gone, so the stream ends once the engine has passed on what is left
                try:
                    async with asyncio.timeout(DRAIN_AFTER_EXIT_S):
                        await asyncio.shield(reader)
                except TimeoutError:
                    self.assembler.truncated = True
            reader.cancel()
            self._emit(self.assembler.finish())
        finally:
            stopper.cancel()
            ended.cancel()
        usage = await self._final_usage()
        verdict = classify_exit(status, self._stop_reason)
        if verdict.reason == "oom":  # killed at the limit, so it reached it (a stats API sample may be older)
            usage = replace(usage, memory_peak_bytes=max(usage.memory_peak_bytes or 0, self.limits.memory_mb * MIB))
        ended_by_itself = verdict.reason == "exit"
        if ended_by_itself:  # a run that was stopped sends no files, whatever it wrote
            for file in self.rich.files:
                self._events.put_nowait(file)
        self.exit = Exit(
            reason=verdict.reason,
            exit_code=verdict.exit_code,
            signal=verdict.signal,
            duration_ms=duration_ms,
            stdout_bytes=self.assembler.stdout_bytes,
            stderr_bytes=self.assembler.stderr_bytes,
            truncated=self.assembler.truncated,
            cpu_ms=usage.cpu_ms,
            memory_peak_bytes=usage.memory_peak_bytes,
            files_truncated=ended_by_itself and self.rich.files_truncated,
            # only a program that ended by itself ended by its exception: an interrupt is not one
            exception=self._exception if ended_by_itself and verdict.exit_code != 0 else None,
            session_alive=self._session_alive(reader),
        )
        return self.exit

    # -- how this run reaches its sandbox (a session's run overrides these: app.sandbox.session) --
    keeps_sandbox = False  # a session's sandbox outlives the run: result records count

    async def _send_program(self, program: bytes) -> None:
        await self.sandbox.send(program)

    async def _send_stdin(self, data: bytes) -> None:
        await self.sandbox.send(data)

    async def _close_stdin(self) -> None:
        await self.sandbox.close_stdin()

    async def _recv(self) -> list[tuple[Stream, bytes]]:
        return await self.sandbox.recv()

    def _unread(self, chunks: list[tuple[Stream, bytes]]) -> None:
        """Output received after the run ended: a one-shot sandbox is removed with it."""

    def _session_alive(self, reader: asyncio.Task[None]) -> bool | None:
        return None  # not a run in a session

    async def _kill_and_observe(self, reader: asyncio.Task[None]) -> ExitObservation:
        """Kill, then learn the end from the engine, but report within ``KILL_REPORT_S``.

        An engine busy starting sandboxes (a crowd of cold starts) can take seconds to confirm a
        kill; the run's outcome is already known (we stopped it), so it is reported without that
        confirmation (``code`` None) while the kill and the removal finish in the background.
        """
        loop = asyncio.get_running_loop()
        killing = loop.create_task(self.sandbox.kill())
        _BACKGROUND.add(killing)
        killing.add_done_callback(_forget)
        report_by = loop.time() + KILL_REPORT_S
        done, _ = await asyncio.wait({reader}, timeout=KILL_REPORT_S)
        if reader in done:
            waiting = loop.create_task(self.sandbox.wait())
            try:
                confirmed, _ = await asyncio.wait({waiting}, timeout=max(0.0, report_by - loop.time()))
                if waiting in confirmed:
                    return waiting.result()
            finally:
                waiting.cancel()
        return ExitObservation(None)

    async def _status_until(self, deadline: float) -> ExitObservation | None:
        """The output has ended, so the sandbox is ending: its status, unless the deadline comes
        first (a program can outlive its output streams)."""
        loop = asyncio.get_running_loop()
        waiting = loop.create_task(self.sandbox.wait())
        try:
            budget = min(deadline - loop.time(), EXIT_STATUS_WAIT_S)
            done, _ = await asyncio.wait({waiting}, timeout=max(0.0, budget))
            if waiting in done:
                return waiting.result()
            if deadline - loop.time() > 0:
                raise Unavailable("the engine did not report the sandbox's end")
            return None
        finally:
            waiting.cancel()

    async def _final_usage(self) -> Usage:
        """As exact as the engine allows, but never holding the exit back past ``FINAL_USAGE_S``.

        After a kill the engine did not confirm in time (``code`` None), the sandbox may still be
        dying: the engine's reading then lets its last processes go for a few milliseconds, and
        what they use after that is not counted."""
        try:
            async with asyncio.timeout(FINAL_USAGE_S):
                return await self.sandbox.usage(final=True)
        except (TimeoutError, SCEError, OSError):
            return Usage()
