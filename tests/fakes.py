"""A test double of the sandbox engine: scripted programs behind the real ``Engine`` protocol.

Only for pure-logic unit tests of what sits above the engine (the run, the session state machine,
admission); every behaviour a user sees is also tested on the real engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from app.core.exits import ExitObservation
from app.core.streams import Stream
from app.sandbox.interface import EngineHealth, SandboxSpec, Usage

Script = Callable[["FakeSandbox"], Awaitable[int]]


class FakeSandbox:
    def __init__(self, spec: SandboxSpec, script: Script) -> None:
        self.id = f"fake-{id(self):x}"
        self.created_at = time.monotonic()
        self.spec = spec
        self.script = script
        self._out: asyncio.Queue[tuple[Stream, bytes] | None] = asyncio.Queue()
        self.stdin = bytearray()
        self.stdin_closed = False
        self._stdin_changed = asyncio.Event()
        self.program_sent = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._exit: asyncio.Future[ExitObservation] | None = None
        self.killed = False

    # what a script does
    def out(self, text: str, stream: Stream = "stdout") -> None:
        self._out.put_nowait((stream, text.encode()))

    async def read_stdin(self) -> bytes:
        while not self.stdin and not self.stdin_closed:
            self._stdin_changed.clear()
            await self._stdin_changed.wait()
        data, self.stdin[:] = bytes(self.stdin), b""
        return data

    async def _main(self) -> None:
        assert self._exit is not None
        try:
            code = await self.script(self)
        except asyncio.CancelledError:
            code = 137
        self._out.put_nowait(None)
        self._exit.set_result(ExitObservation(code))

    # the Sandbox protocol
    def is_alive(self) -> bool:
        return True

    async def send(self, data: bytes) -> None:
        if not self.program_sent.is_set():
            self.program_sent.set()
            self._exit = asyncio.get_running_loop().create_future()
            self._task = asyncio.get_running_loop().create_task(self._main())
            return
        self.stdin += data
        self._stdin_changed.set()

    async def close_stdin(self) -> None:
        self.stdin_closed = True
        self._stdin_changed.set()

    async def recv(self) -> list[tuple[Stream, bytes]]:
        item = await self._out.get()
        return [] if item is None else [item]

    async def kill(self) -> None:
        self.killed = True
        if self._task is not None:
            self._task.cancel()

    async def wait(self) -> ExitObservation:
        assert self._exit is not None
        return await self._exit

    async def usage(self, *, final: bool) -> Usage:
        return Usage(cpu_ms=1, memory_peak_bytes=1024)


class FakeEngine:
    capacity = 4

    def __init__(self, script: Script, name: str = "fake") -> None:
        self.name = name
        self.ok = True  # what health() says: a test turns the engine off and on
        self.script = script
        self.started: list[FakeSandbox] = []
        self.discarded: list[FakeSandbox] = []
        self.start_gate: asyncio.Event | None = None  # set to hold starts (a slow engine)

    async def start_sandbox(self, spec: SandboxSpec, *, pooled: bool = False) -> FakeSandbox:
        if self.start_gate is not None:
            await self.start_gate.wait()
        sandbox = FakeSandbox(spec, self.script)
        self.started.append(sandbox)
        return sandbox

    def discard(self, sandbox: object) -> None:
        assert isinstance(sandbox, FakeSandbox)
        if sandbox._task is not None:
            sandbox._task.cancel()
        self.discarded.append(sandbox)

    async def reap_orphans(self) -> int:
        return 0

    async def health(self) -> EngineHealth:
        return EngineHealth(self.name, self.ok)

    async def image_present(self, image: str) -> bool:
        return True

    async def runtime_info(self, image: str) -> dict[str, object] | None:
        return {"python": "3.11.2", "packages": {}}

    async def close(self) -> None:
        for sandbox in self.started:
            if sandbox._task is not None:
                sandbox._task.cancel()
                with contextlib.suppress(BaseException):
                    await sandbox._task
