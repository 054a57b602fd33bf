"""The run's output pump over a real socket pair (no Docker): no byte is ever lost.

Partial lines make the reader wait with a flush deadline; a receive that completes just as the
deadline fires must keep its bytes. This drives thousands of such races through a real
``loop.sock_recv``, the call the Docker sandbox uses.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time

import pytest

from app.core.events import Exit, Output, RunLimits
from app.core.exits import ExitObservation
from app.core.rich import RichLimits
from app.core.streams import Stream
from app.protocol import RunRequest
from app.sandbox.docker.framing import FrameParser, encode_frame
from app.sandbox.interface import SandboxSpec, Usage
from app.sandbox.run import Run

SPEC = SandboxSpec("python", "test", 128, 64, 1.0, 256, 16)


class SocketSandbox:
    """A sandbox whose output stream is one end of a socket pair, fed by a thread."""

    id = "socket-sandbox"
    created_at = 0.0
    spec = SPEC

    def __init__(self, chunks: list[bytes], pause_s: tuple[float, float]) -> None:
        self.parser = FrameParser()
        self.ours, self.theirs = socket.socketpair()
        self.ours.setblocking(False)
        self.chunks = chunks
        self.pause_s = pause_s
        self.done = threading.Event()

    def _feed(self) -> None:
        rng = random.Random(7)
        for chunk in self.chunks:
            self.theirs.sendall(encode_frame("stdout", chunk))
            time.sleep(rng.uniform(*self.pause_s))
        self.theirs.close()
        self.done.set()

    async def send(self, data: bytes) -> None:
        threading.Thread(target=self._feed, daemon=True).start()

    async def close_stdin(self) -> None:
        pass

    def is_alive(self) -> bool:
        return True

    async def recv(self) -> list[tuple[Stream, bytes]]:
        while True:
            data = await asyncio.get_running_loop().sock_recv(self.ours, 65536)
            if not data:
                return []
            chunks = self.parser.feed(data)
            if chunks:
                return chunks

    async def kill(self) -> None:
        pass

    async def wait(self) -> ExitObservation:
        await asyncio.to_thread(self.done.wait)
        return ExitObservation(0, False)

    async def usage(self, *, final: bool) -> Usage:
        return Usage()


@pytest.mark.timeout(60)
async def test_no_output_is_lost_when_receives_race_the_flush_deadline() -> None:
    chunks = [b"x" * 5 for _ in range(400)] + [b"\n"]
    sandbox = SocketSandbox(chunks, pause_s=(0.0005, 0.004))
    run = Run(
        sandbox,
        RunRequest("ignored"),
        RunLimits(timeout_s=30, memory_mb=128, output_bytes=1_000_000, pids=64),
        max_line_chars=1_000_000,
        flush_interval_s=0.002,  # deadlines fire constantly, mid-receive
        rich_limits=RichLimits(1024, 1024, 1, 1024),
    )
    received = []
    async with asyncio.timeout(50):
        async for event in run.events():
            if isinstance(event, Output):
                received.append(event.data)
            last = event
    assert isinstance(last, Exit)
    assert "".join(received) == "x" * 2000 + "\n"
    assert last.stdout_bytes == 2001
    sandbox.ours.close()
