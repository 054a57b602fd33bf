"""Resource figures for the Docker backend: parent cgroups per engine, a meter per sandbox.

Where this server sees the engine host's cgroup tree (``CgroupTree.detect``), every sandbox gets a
parent cgroup the server makes and names, read exactly and after the exit; elsewhere (a remote
engine) the stats API is sampled while the program runs. Cgroup reads are a few small
pseudo-files, made on the event loop (a thread hop would cost more than the read).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from app.sandbox.docker.cgroups import CgroupTree, parent_name
from app.sandbox.docker.ownership import parent_is_stale, process_start_time
from app.sandbox.interface import Usage

log = logging.getLogger(__name__)

# A memory cgroup charges in batches of up to 64 pages; a peak this close to the limit is the limit.
OOM_PEAK_MARGIN_BYTES = 1 << 20
# A parent cgroup the runtime has not released yet is removed again after these pauses; past them
# it is left for the next sweep (the server's stop, or the next start).
PARENT_REMOVE_DELAYS_S = (0.0, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
# An emptied parent still charged more than this is not reused: its next sandbox's peak would
# include it. runc leaves nothing; gVisor ~280 KiB of kernel memory, so its parents are made anew.
PARENT_LEFTOVER_MAX_BYTES = 256 * 1024
# Where the cgroup tree is out of sight: the stats API, sampled while the program runs (the engine
# paces one-shot reads to its collection tick, 1 s on 20.10; a call holds no thread).
STATS_SAMPLE_INTERVAL_S = 0.5
# cgroup v2 kernels before 5.19 have no memory.peak: memory.current is sampled this often instead.
PEAK_SAMPLE_INTERVAL_S = 0.1
# The final reading after a kill the engine has not confirmed waits this long at most for the
# processes to leave the cgroup.
FINAL_SETTLE_S = 0.005
FINAL_SETTLE_STEP_S = 0.001


class ParentCgroups:
    """One engine's parent cgroups: made, reused (v1), removed, and swept after dead servers."""

    def __init__(self, tree: CgroupTree, reuse_max: int) -> None:
        self.tree = tree
        self.by_container: dict[str, str] = {}  # container id -> its parent, until removed
        self.left: set[str] = set()  # parents still busy when their container went
        self.free: collections.deque[str] = collections.deque()  # emptied, for reuse (v1)
        self.reuse_max = reuse_max
        self.tag = secrets.token_hex(3)  # this engine's parents, among its process's

    def take(self) -> str:
        """A parent for a new sandbox: an emptied one of this engine's if there is one.

        A free parent that vanished meanwhile (swept by a server that took it for a dead one's) is
        let go, never used: a container under a missing parent would fail to start.
        """
        while self.free:
            parent = self.free.popleft()
            if self.tree.reset_peak(parent, PARENT_LEFTOVER_MAX_BYTES):
                return parent
            with contextlib.suppress(OSError):
                self.tree.remove(parent)
        parent = parent_name(os.getpid(), process_start_time(os.getpid()), self.tag)
        self.tree.create(parent)
        return parent

    def drop(self, parent: str) -> None:
        """A parent whose container was never made."""
        with contextlib.suppress(OSError):
            self.tree.remove(parent)

    async def release(self, container_id: str) -> None:
        """The container is removed: keep its emptied parent for the next sandbox (v1), else remove it."""
        parent = self.by_container.pop(container_id, None)
        if parent is None:
            return
        tree = self.tree
        if tree.reusable and len(self.free) < self.reuse_max and tree.is_empty(parent):
            self.free.append(parent)
            return
        for delay in PARENT_REMOVE_DELAYS_S:
            await asyncio.sleep(delay)
            try:
                if tree.remove(parent):
                    self.left.discard(parent)
                    return
            except OSError as exc:
                log.warning("could not remove cgroup %s: %s", parent, exc)
                break
        self.left.add(parent)

    def sweep(self, *, mine: bool) -> int:
        """Remove empty parents of servers that no longer run (``mine``: this engine's too, never
        those of another engine in the same process)."""
        me = (os.getpid(), process_start_time(os.getpid()) or "x")
        my_prefix = parent_name(*me, self.tag)[:-12]
        in_use = set(self.by_container.values())
        removed = 0
        for name in self.tree.parents():
            if name in in_use or not parent_is_stale(name, me, mine=mine, my_prefix=my_prefix):
                continue
            with contextlib.suppress(OSError):
                if self.tree.remove(name):
                    removed += 1
                    self.left.discard(name)
        if mine:
            self.free.clear()
        return removed

    def died_of_oom(self, parent: str, memory_mb: int, *, by_peak: bool) -> bool:
        """Whether the sandbox in ``parent`` was killed at its memory limit, from the parent's record.

        cgroup v2 counts OOM kills hierarchically (``memory.events``): the kernel's own count. On v1
        the counter (``memory.oom_control``'s ``oom_kill``) stays in the container's own cgroup,
        gone with it (measured on this 6.x kernel: the parent's stays 0, even with a limit of its
        own), so v1 has only the peak: a sandbox whose charge reached its limit (within one charge
        batch) and died of a SIGKILL it did not get from us (runsc and runc: 128 MiB -> 134,230,016
        bytes). A program can fake that (fill to the limit, then ``os._exit(137)``), so a 137 is
        settled by the kernel's events (``OomWatch``) where the server can register them, and the
        peak is asked only under gVisor (``by_peak``) for what the events cannot tell: a sentry
        that failed an allocation at the limit and exited 2, with no OOM kill to count.
        """
        kills = self.tree.oom_kills(parent)
        if kills is not None:
            return kills > 0
        if not by_peak:
            return False
        peak = self.tree.read(parent).memory_peak_bytes
        return peak is not None and peak >= memory_mb * 1024 * 1024 - OOM_PEAK_MARGIN_BYTES


class UsageMeter:
    """One sandbox's CPU and memory since its program arrived: from its parent cgroup when there is
    one (exact, read in microseconds), else from stats API samples (up to a second old)."""

    def __init__(
        self, name: str, tree: CgroupTree | None, parent: str | None, stats: Callable[[], Awaitable[dict[str, Any]]]
    ) -> None:
        self.name = name
        self.tree = tree if parent is not None else None
        self.parent = parent
        self._stats = stats
        self._cpu_base_ns: int | None = None  # CPU used before the program arrived (interpreter start)
        self._last = Usage()
        self._peak_seen: int | None = None
        self._sampler: asyncio.Task[None] | None = None

    def begin(self) -> None:
        tree = self.tree
        if tree is not None and self.parent is not None:
            self._cpu_base_ns = tree.read(self.parent).cpu_ns
            if tree.version == 2 and not tree.has_peak:
                self._start_sampler(self._sample_cgroup, PEAK_SAMPLE_INTERVAL_S)
        else:
            self._start_sampler(self._sample_api, STATS_SAMPLE_INTERVAL_S)

    def _start_sampler(self, sample: Callable[[], Awaitable[bool]], interval: float) -> None:
        async def loop() -> None:
            while True:
                if not await sample():
                    return
                await asyncio.sleep(interval)  # a pace, not a wait for a state

        self._sampler = asyncio.get_running_loop().create_task(loop(), name=f"usage-{self.name}")

    def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None

    def _cpu_ms(self, cpu_ns: int | None) -> int | None:
        if cpu_ns is None:
            return None
        return max(0, round((cpu_ns - (self._cpu_base_ns or 0)) / 1e6))

    def read_cgroup(self) -> Usage:
        assert self.tree is not None and self.parent is not None
        r = self.tree.read(self.parent)
        if r.memory_bytes is not None:
            self._peak_seen = max(self._peak_seen or 0, r.memory_bytes)
        return Usage(
            cpu_ms=self._cpu_ms(r.cpu_ns),
            memory_peak_bytes=r.memory_peak_bytes if r.memory_peak_bytes is not None else self._peak_seen,
            memory_bytes=r.memory_bytes,
            pids=r.pids,
        )

    async def _sample_cgroup(self) -> bool:
        self.read_cgroup()
        return True

    async def _sample_api(self) -> bool:
        """One stats API sample; False once the container is gone (its stats read as zeros)."""
        try:
            stats = await self._stats()
        except (OSError, ValueError):
            return False
        memory = stats.get("memory_stats") or {}
        if not memory:
            return False
        # No baseline here: a first sample may come after the program has run for a while. The
        # interpreter's own start (tens of milliseconds) is counted instead.
        cpu_ns = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        current = memory.get("usage")
        peak = max(memory.get("max_usage") or 0, current or 0, self._peak_seen or 0)  # v1 keeps a max itself
        self._peak_seen = peak or None
        self._last = Usage(
            cpu_ms=self._cpu_ms(cpu_ns),
            memory_peak_bytes=self._peak_seen,
            memory_bytes=current,
            pids=(stats.get("pids_stats") or {}).get("current"),
        )
        return True

    async def usage(self, *, final: bool, unconfirmed_kill: Callable[[], bool]) -> Usage:
        """The figures so far; ``final``: after the end (a reading after an unconfirmed kill first
        lets the last processes leave, ``FINAL_SETTLE_S`` at most)."""
        if self.tree is None:
            if final:
                self.stop()
            return self._last
        usage = self.read_cgroup()
        if final:
            self.stop()
            loop = asyncio.get_running_loop()
            settle_by = loop.time() + FINAL_SETTLE_S
            while usage.pids and unconfirmed_kill() and loop.time() < settle_by:
                await asyncio.sleep(FINAL_SETTLE_STEP_S)
                usage = self.read_cgroup()
        return usage
