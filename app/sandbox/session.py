"""A session's sandbox on the server: one sandbox, its interpreter kept for a sequence of runs.

The sandbox runs the session's bootstrap (``app.sandbox.inside.session``), which reads framed
control messages on its stdin (``control_frame``): a program, stdin for it, its end, an
interrupt. ``SandboxSession`` owns the sandbox's output stream for its whole life, so that what
threads left running print between runs is kept (bounded) and handed to the next run, and no
run's cancelled receive can lose bytes of the stream. ``SessionRun`` is an ordinary ``Run``
that reaches the sandbox through it: its ``timeout``/``kill``/``output_limit`` interrupt the
program, and if the program has not stopped within ``INTERRUPT_GRACE_S`` the sandbox is killed
and the session is over (so is it when the sandbox dies: an OOM kill, ``os._exit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from app.core.exits import ExitObservation
from app.core.streams import Stream
from app.errors import BadMessage, Busy, SCEError
from app.protocol import RunRequest
from app.sandbox.bootstrap import control_frame, session_preamble
from app.sandbox.inside.session import CONTROL_EOF, CONTROL_INTERRUPT, CONTROL_PROGRAM, CONTROL_STDIN
from app.sandbox.interface import Sandbox, Usage
from app.sandbox.run import FINAL_USAGE_S, Run
from app.sandbox.runtimes import DEFAULT_RUNTIME

if TYPE_CHECKING:
    from app.sandbox.service import SandboxService

log = logging.getLogger(__name__)

INTERRUPT_GRACE_S = 2.0
"""From an interrupt (timeout, kill, output cap) to the program's stop; past it the session ends."""
BETWEEN_RUNS_MAX_BYTES = 1 << 20
"""Output printed between runs (by threads left running) kept for the next run; the rest is dropped."""
LEASE_MARGIN_S = 120


class SandboxSession:
    """One session's sandbox and its output stream; ``close()`` removes the sandbox."""

    def __init__(self, sandbox: Sandbox, on_close: Callable[[], None]) -> None:
        self.sandbox = sandbox
        self.nonce = secrets.token_hex(16)  # the records of every run in the session
        self.ended = False  # the output stream ended: the sandbox is gone
        self.closed = False
        self._on_close = on_close
        self._chunks: deque[list[tuple[Stream, bytes]]] = deque()
        self._held = 0
        self._ready = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self.in_run = False
        self._pump = asyncio.get_running_loop().create_task(self._read(), name=f"session-{sandbox.id[:12]}")

    @property
    def alive(self) -> bool:
        return not self.ended and not self.closed

    async def _read(self) -> None:
        while True:
            try:
                chunks = await self.sandbox.recv()
            except OSError:
                chunks = []
            if not chunks:
                self.ended = True
                self._ready.set()
                return
            size = sum(len(data) for _, data in chunks)
            if not self.in_run and self._held + size > BETWEEN_RUNS_MAX_BYTES:
                continue  # printed between runs past what is kept: nobody would see it in time
            self._chunks.append(chunks)
            self._held += size
            self._ready.set()

    async def recv(self) -> list[tuple[Stream, bytes]]:
        """The sandbox's next output, in order; [] once it has ended (the sandbox is gone)."""
        while not self._chunks:
            if self.ended:
                return []
            self._ready.clear()
            await self._ready.wait()
        chunks = self._chunks.popleft()
        self._held -= sum(len(data) for _, data in chunks)
        return chunks

    def unread(self, chunks: list[tuple[Stream, bytes]]) -> None:
        """Output a run received as it ended: the next run's, first."""
        self._chunks.appendleft(chunks)
        self._held += sum(len(data) for _, data in chunks)
        self._ready.set()

    async def send(self, kind: bytes, payload: bytes = b"") -> None:
        """One control frame; frames from the run's tasks never interleave."""
        async with self._send_lock:
            await self.sandbox.send(control_frame(kind, payload))

    def close(self) -> None:
        """Kill and remove the sandbox (in the background); the session is over."""
        if self.closed:
            return
        self.closed = True
        self._pump.cancel()
        self._ready.set()
        self._on_close()


class SessionRun(Run):
    """A run in a session: the program goes to the session's interpreter, not a fresh sandbox."""

    keeps_sandbox = True

    def __init__(self, session: SandboxSession, request: RunRequest, *args: Any, **kwargs: Any) -> None:
        super().__init__(session.sandbox, request, *args, nonce=session.nonce, **kwargs)
        self.session = session
        self._base = Usage()
        self._before_begin = {"stdout", "stderr"}
        self._carry_left = BETWEEN_RUNS_MAX_BYTES

    def _carried(self, data: bytes) -> bytes:
        """What threads printed before this program began (held while no run was on, or still on
        its way when this one started): ``BETWEEN_RUNS_MAX_BYTES`` of it in all, cut at a line's
        end where there is one; the program's own output starts after its ``begin`` records."""
        if len(data) <= self._carry_left:
            self._carry_left -= len(data)
            return data
        kept = data[: self._carry_left]
        self._carry_left = 0
        end = kept.rfind(b"\n")
        return kept[: end + 1] if end >= 0 else kept

    async def _send_program(self, program: bytes) -> None:
        self._base = await self._usage_now()  # the session's CPU so far: this run's is the rest
        await self.session.send(CONTROL_PROGRAM, program)

    async def _usage_now(self) -> Usage:
        try:
            async with asyncio.timeout(FINAL_USAGE_S):
                return await self.sandbox.usage(final=False)
        except (TimeoutError, SCEError, OSError):
            return Usage()

    async def _final_usage(self) -> Usage:
        """This run's CPU (the session's since the run began) and the session's peak memory;
        the sandbox lives on, so nothing is waited for."""
        usage = await self._usage_now()
        if usage.cpu_ms is None or self._base.cpu_ms is None:
            return replace(usage, cpu_ms=None)
        return replace(usage, cpu_ms=max(0, usage.cpu_ms - self._base.cpu_ms))

    async def _send_stdin(self, data: bytes) -> None:
        await self.session.send(CONTROL_STDIN, data)

    async def _close_stdin(self) -> None:
        await self.session.send(CONTROL_EOF)

    async def _recv(self) -> list[tuple[Stream, bytes]]:
        return await self.session.recv()

    def _session_alive(self, reader: asyncio.Task[None]) -> bool | None:
        return self.session.alive

    def _unread(self, chunks: list[tuple[Stream, bytes]]) -> None:
        self.session.unread(chunks)

    async def _kill_and_observe(self, reader: asyncio.Task[None]) -> ExitObservation:
        """Interrupt; the program's own end within ``INTERRUPT_GRACE_S`` keeps the session,
        anything else ends it (the sandbox is killed)."""
        with contextlib.suppress(OSError):
            await self.session.send(CONTROL_INTERRUPT)
        ended = asyncio.get_running_loop().create_task(self._ended.wait())
        try:
            await asyncio.wait({ended, reader}, timeout=INTERRUPT_GRACE_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        if self._ended.is_set():
            return ExitObservation(self._end_code)
        if not self.session.ended:
            log.info("session sandbox %s: the program did not stop on an interrupt; ending it", self.sandbox.id[:12])
        self.session.close()
        return ExitObservation(None)


async def open_session(service: SandboxService, runtime: str | None) -> SandboxSession:
    """A new sandbox running the session bootstrap, on the engine with the most room; its lease
    covers the session's maximum lifetime, so no server reaps it as an orphan while it lives."""
    settings = service.settings
    name = runtime or DEFAULT_RUNTIME
    spec = service.specs.get(name)
    if spec is None:
        raise BadMessage(f"unknown runtime {name!r}; the runtimes are: {', '.join(service.specs)}")
    slot = service.choose()
    if slot.free <= 0:
        raise Busy("every sandbox of this server's engines is in use")
    lease = int(settings.session_max_lifetime_s + settings.timeout_max_s + LEASE_MARGIN_S)
    session_spec = replace(spec, stdin_preamble=session_preamble(rich=service.runtimes[name].rich), lease_s=lease)
    slot.active += 1
    try:
        sandbox = await slot.engine.start_sandbox(session_spec)
    except BaseException:
        slot.active -= 1
        raise

    def release() -> None:
        slot.active -= 1
        slot.engine.discard(sandbox)
        service.trim_heap_when_idle()

    return SandboxSession(sandbox, release)
