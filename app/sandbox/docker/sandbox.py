"""One started container, its bootstrap waiting on stdin; used for exactly one run.

Its stdin, stdout and stderr are the attach connection (``AttachStream``: a Unix socket or TLS,
driven by the event loop, no thread); its end is learned from the end of its output followed by
short ``inspect`` calls, never from a ``wait()`` held open while the program runs (with 40
sleeping programs and 16 threads, held waits left no thread for the kills the timeouts needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from app.core.exits import SIGKILL_STATUS, ExitObservation
from app.core.streams import Stream
from app.errors import Unavailable
from app.sandbox.docker.accounting import UsageMeter
from app.sandbox.docker.attach import AttachStream
from app.sandbox.docker.framing import FrameError, FrameParser
from app.sandbox.docker.judge import RUNSC_SENTRY_DIED, judge_exit
from app.sandbox.docker.oomwatch import OomWatch
from app.sandbox.docker.wire import WireNotFound
from app.sandbox.interface import SandboxSpec, Usage

if TYPE_CHECKING:
    from app.sandbox.docker.engine import DockerEngine

OOM_FLAG_TRIES = 4
OOM_FLAG_INTERVAL_S = 0.1
# After the output ends the engine reports the exit within milliseconds; inspect is polled with
# a short, growing interval.
EXIT_POLL_FIRST_S = 0.002
EXIT_POLL_MAX_S = 0.1


class DockerSandbox:
    """A container and its attach stream."""

    def __init__(
        self, engine: DockerEngine, spec: SandboxSpec, container_id: str, stream: AttachStream, parent: str | None
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.id = container_id
        self.created_at = time.monotonic()
        self.stream = stream
        self._parser = FrameParser()
        self.killed = False  # by us: then a 137 is our SIGKILL, not a question for the OOM flag
        self.exited = False  # the engine has said so
        self.cgroup_parent = parent
        self.delivered = False
        self.meter = UsageMeter(container_id[:12], engine.cgroups, parent, self._stats)
        self.oom_watch: OomWatch | None = None  # the kernel's OOM events (cgroup v1)

    def is_alive(self) -> bool:
        """A waiting bootstrap writes nothing, so a readable stream at its end means the container is gone."""
        return self.stream.is_alive()

    async def send(self, data: bytes) -> None:
        if not self.delivered:  # the program: CPU counts from here
            self.delivered = True
            self.meter.begin()
        await self.stream.send(data)

    async def close_stdin(self) -> None:
        """Half-close: with StdinOnce the program sees EOF and its output keeps flowing."""
        await self.stream.shut_write()

    async def recv(self) -> list[tuple[Stream, bytes]]:
        """Docker's multiplexed frames, parsed here; [] at the end of the stream."""
        while True:
            data = await self.stream.recv()
            if not data:
                return []
            try:
                chunks = self._parser.feed(data)
            except FrameError as exc:
                raise OSError(f"the engine's output stream is malformed: {exc}") from exc
            if chunks:
                return chunks

    async def kill(self) -> None:
        """SIGKILL the whole container; one that has already exited or gone is fine."""
        self.killed = True
        await self.engine.wired("kill", self.engine.wire.kill(self.id))

    async def wait(self) -> ExitObservation:
        """Poll the container's state until it has stopped: the caller knows it is ending."""
        delay = EXIT_POLL_FIRST_S
        while True:
            state = await self._state()
            if not state.get("Running", False) and state.get("Status") in ("exited", "dead"):
                self.exited = True
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, EXIT_POLL_MAX_S)
        code = int(state.get("ExitCode", -1))
        runsc = self.engine.settings.runtime == "runsc"
        flag = bool(state.get("OOMKilled"))
        if self.oom_watch is not None and code == SIGKILL_STATUS and not (self.killed or flag):
            # the kernel's own OOM events, which the engine's flag relays and can lose (runc under
            # load, gVisor often); the peak is no verdict: a program can reach it and exit by itself
            kernel_oom = await self.oom_watch.died_of_oom(OOM_FLAG_TRIES * OOM_FLAG_INTERVAL_S)
            if kernel_oom is not None:
                return ExitObservation(code, oom_killed=kernel_oom)
        # gVisor's sentry that fails an allocation at the limit exits 2 with no OOM kill for the
        # kernel to count: that one is still judged by the parent's peak (docs/SECURITY_NOTES.md)
        asks_parent = code in (SIGKILL_STATUS, RUNSC_SENTRY_DIED) and not self.killed  # a few file reads
        parent_oom = self._parent_oom(runsc) if asks_parent else None
        judged = judge_exit(code, flag, killed=self.killed, runsc=runsc, parent_oom=parent_oom)
        for _ in range(OOM_FLAG_TRIES - 1):
            if not judged.ask_flag_again:
                break
            await asyncio.sleep(OOM_FLAG_INTERVAL_S)
            flag = bool((await self._state()).get("OOMKilled"))
            judged = judge_exit(code, flag, killed=self.killed, runsc=runsc, parent_oom=False)
        return judged.observation

    def _parent_oom(self, runsc: bool) -> bool | None:
        """Read from the tree the parent was made in even when figures come from the stats API:
        the parent still holds the sandbox, and a stats sample misses a fast allocation."""
        parents = self.engine.parents
        if parents is None or self.cgroup_parent is None:
            return None
        return parents.died_of_oom(self.cgroup_parent, self.spec.memory_mb, by_peak=runsc)

    async def _state(self) -> dict[str, Any]:
        try:
            info = await self.engine.wired("inspect", self.engine.wire.inspect(self.id))
        except WireNotFound:
            raise Unavailable(f"the sandbox {self.id[:12]} was removed while its program ran") from None
        state: dict[str, Any] = info["State"]
        return state

    async def _stats(self) -> dict[str, Any]:
        return await self.engine.wire.stats(self.id)

    async def usage(self, *, final: bool) -> Usage:
        return await self.meter.usage(final=final, unconfirmed_kill=lambda: self.killed and not self.exited)

    async def until_eof(self, limit_s: float) -> None:
        """Read and drop what is left of the output until it ends, ``limit_s`` at most."""
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(limit_s):
                while not self.stream.closed and await self.stream.recv():
                    pass

    def close_socket(self) -> None:
        self.meter.stop()
        self.stream.close()
        if self.oom_watch is not None:
            self.oom_watch.close()
