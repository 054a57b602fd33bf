"""A warm pool of single-use sandboxes, filled off the request path.

Starting a container costs ~170 ms, almost all of it in the engine; a bootstrap that is already
waiting answers in a few milliseconds. The pool keeps ``size`` of them ready, hands each out at
most once, replaces one soon after it is taken, and recycles any that has waited longer than
``idle_max_s``. When it is empty (a burst, or the engine is slow) a run falls back to a cold
start rather than waiting for the pool. With ``grow_to`` above ``size`` it keeps as many ready as
the largest recent burst of runs, up to ``grow_to`` (``app.sandbox.demand``), and shrinks back to
``size`` once no such burst has come for the demand's window. The replacement starts
``refill_delay_s`` after the hand-out (later hand-outs do not push it back): a container start
costs a small engine host ~150 ms of CPU, and the run just handed a sandbox prints its first
line within a few milliseconds if nothing else wants the CPU then (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from app.errors import SCEError
from app.sandbox.demand import Demand, pool_target
from app.sandbox.interface import Engine, Sandbox, SandboxSpec

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0


class WarmPool:
    """Warm sandboxes of one spec (one runtime) on one engine."""

    def __init__(
        self,
        engine: Engine,
        spec: SandboxSpec,
        size: int,
        idle_max_s: float,
        *,
        grow_to: int = 0,
        burst_s: float = 2.0,
        window_s: float = 600.0,
        refill_delay_s: float = 0.0,
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.size = size  # the base: always kept ready
        self.idle_max_s = idle_max_s
        self.refill_delay_s = refill_delay_s
        self._hold_until = 0.0  # no replacement starts before this (monotonic): a run was just handed one
        self.grow_to = max(size, grow_to)
        self.demand = Demand(burst_s, window_s) if self.grow_to > size else None
        self._cold_in_flight = 0  # runs' own cold starts under way (a burst's)
        self._ready: deque[Sandbox] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.handed_out = 0
        self.cold_starts = 0
        self.warmed = 0  # sandboxes the pool has started, ever
        self._changed = asyncio.Condition()
        self.last_error: str | None = None

    @property
    def ready(self) -> int:
        return len(self._ready)

    def target(self, now: float | None = None) -> int:
        """How many to keep ready now: ``size``, or the recent peak of demand up to ``grow_to``."""
        if self.demand is None:
            return self.size
        return pool_target(self.size, self.demand.peak(time.monotonic() if now is None else now), self.grow_to)

    def state(self) -> dict[str, object]:
        return {
            "size": self.size,
            "target": self.target(),
            "ready": self.ready,
            "handed_out": self.handed_out,
            "cold_starts": self.cold_starts,
            "last_error": self.last_error,
        }

    async def wait_until(self, predicate: Callable[[WarmPool], bool]) -> None:
        """Wait for the pool to reach a state (readiness checks and tests, without polling)."""
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    def start(self) -> None:
        if self.grow_to > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._fill(), name=f"warm-pool-{self.spec.runtime}")

    async def acquire(self) -> tuple[Sandbox, bool]:
        """A sandbox for one run, and whether it came warm from the pool."""
        now = time.monotonic()
        if self.demand is not None:
            self.demand.note(now)
        while self._ready:
            sandbox = self._ready.popleft()
            self._wake.set()
            if now - sandbox.created_at <= self.idle_max_s and sandbox.is_alive():
                self.handed_out += 1
                if now >= self._hold_until:  # not extended by later hand-outs: a stream of runs still gets refills
                    self._hold_until = now + self.refill_delay_s
                return sandbox, True
            self.engine.discard(sandbox)
        self.cold_starts += 1
        self._cold_in_flight += 1
        self._wake.set()
        try:
            return await self.engine.start_sandbox(self.spec), False
        finally:
            self._cold_in_flight -= 1
            self._wake.set()

    async def _fill(self) -> None:
        """Keep ``target()`` ready: every missing sandbox is started at once, not one after another (a
        burst that takes all of them finds them replaced in one start's time, not ``size`` starts').
        After a failed start, no new one is tried until the back-off has passed."""
        delay = RETRY_MIN_S
        starting: set[asyncio.Task[Sandbox]] = set()
        retry_at = 0.0
        try:
            while True:
                self._recycle_stale()
                now = time.monotonic()
                target = self.target(now)
                if len(self._ready) > target:  # demand has passed: the oldest go first
                    while len(self._ready) > target:
                        self.engine.discard(self._ready.popleft())
                    async with self._changed:
                        self._changed.notify_all()
                # growing past the base waits for a burst's own cold starts: the engine is not
                # asked for more than the target at once, and the waiting clients' starts go first
                target = max(self.size, target - self._cold_in_flight)
                holding = now < self._hold_until
                while len(self._ready) + len(starting) < target and now >= retry_at and not holding:
                    starting.add(asyncio.ensure_future(self.engine.start_sandbox(self.spec, pooled=True)))
                self._wake.clear()
                oldest = min((s.created_at for s in self._ready), default=now)
                until = oldest + self.idle_max_s if self._ready else now + self.idle_max_s
                if now < retry_at:
                    until = min(until, retry_at)
                shrink_at = self.demand.changes_at() if self.demand is not None else None
                if shrink_at is not None:
                    until = min(until, shrink_at)
                timeout = max(0.1, until - now)
                if holding:
                    timeout = min(timeout, self._hold_until - now)
                waker = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({*starting, waker}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waker.cancel()
                for task in [t for t in starting if t.done()]:
                    starting.discard(task)
                    try:
                        sandbox = task.result()
                    except SCEError as exc:
                        self.last_error = exc.message
                        log.warning("warm pool could not start a sandbox: %s", exc.message)
                        retry_at = time.monotonic() + delay  # back off while the engine is unwell
                        delay = min(delay * 2, RETRY_MAX_S)
                        continue
                    self._ready.append(sandbox)
                    self.warmed += 1
                    self.last_error = None
                    delay = RETRY_MIN_S
                    async with self._changed:
                        self._changed.notify_all()
        finally:
            for task in starting:  # cancelled mid-start: the engine discards what it then makes
                task.cancel()

    def _recycle_stale(self) -> None:
        now = time.monotonic()
        for sandbox in [s for s in self._ready if now - s.created_at > self.idle_max_s]:
            self._ready.remove(sandbox)
            self.engine.discard(sandbox)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        while self._ready:
            self.engine.discard(self._ready.popleft())
