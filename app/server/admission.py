"""Admission: how many runs execute at once, who waits, and who is turned away.

A fixed number of slots, a bounded FIFO wait queue and a per-client share (running plus
waiting). A waiter is told its 1-based position each time it changes, so the WebSocket can
send ``queued`` frames. Pure asyncio, no I/O: unit-tested on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from app.errors import Busy


@dataclass(eq=False)
class _Waiter:
    client: str
    granted: bool = False
    moved: asyncio.Event = field(default_factory=asyncio.Event)  # set on a new position or the grant


class Admission:
    def __init__(self, max_running: int, queue_size: int, per_client: int) -> None:
        self.max_running = max_running
        self.queue_size = queue_size
        self.per_client = per_client
        self.running = 0
        self._waiting: deque[_Waiter] = deque()
        self._held: Counter[str] = Counter()

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def _notify_moved(self) -> None:
        for waiter in self._waiting:
            waiter.moved.set()

    @contextlib.asynccontextmanager
    async def slot(
        self, client: str, on_position: Callable[[int], Awaitable[None]] | None = None
    ) -> AsyncIterator[None]:
        """Hold one run slot for the block; raises ``Busy`` when the client must come back later."""
        if self._held[client] >= self.per_client:
            raise Busy(f"this client already has {self.per_client} run(s) running or waiting")
        if self.running < self.max_running and not self._waiting:
            self.running += 1
        else:
            if len(self._waiting) >= self.queue_size:
                raise Busy("all sandboxes are busy and the wait queue is full")
            await self._wait_turn(client, on_position)
        self._held[client] += 1
        try:
            yield
        finally:
            self._held[client] -= 1
            if not self._held[client]:
                del self._held[client]
            self._release()

    async def _wait_turn(self, client: str, on_position: Callable[[int], Awaitable[None]] | None) -> None:
        waiter = _Waiter(client)
        self._waiting.append(waiter)
        self._held[client] += 1  # a waiting run counts against the client's share
        try:
            last = 0
            while not waiter.granted:
                position = self._waiting.index(waiter) + 1
                waiter.moved.clear()
                if position != last and on_position is not None:
                    last = position
                    await on_position(position)
                    continue
                await waiter.moved.wait()
        except BaseException:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
                self._notify_moved()
            elif waiter.granted:
                self._release()  # we were handed a slot as we left: pass it on
            raise
        finally:
            self._held[client] -= 1
            if not self._held[client]:
                del self._held[client]

    def reserve(self) -> bool:
        """Take one slot for as long as the caller likes (a session's sandbox), without waiting:
        False when none is free or runs are waiting. ``unreserve`` gives it back."""
        if self.running < self.max_running and not self._waiting:
            self.running += 1
            return True
        return False

    def unreserve(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._waiting:
            waiter = self._waiting.popleft()  # the slot passes straight to the next waiter
            waiter.granted = True
            waiter.moved.set()
            self._notify_moved()
        else:
            self.running -= 1
