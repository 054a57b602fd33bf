"""Freed heap given back to the system after output bursts (glibc's ``malloc_trim``).

A run streaming 100k lines to a slow client holds its output in memory for a moment (the reader
is never blocked: the output cap bounds it); once freed, glibc keeps those pages for the
process and, fragmented among long-lived objects, mostly never reuses them all: the server's RSS
climbs run after run though nothing is live. ``malloc_trim(0)`` returns every free page (the
top of the heap and, with ``MADV_DONTNEED``, free pages inside it) in a few milliseconds. It is
asked for when the last active run ends and whenever a finished run kept for a resume is let go
(then at once when idle, debounced), or after ``BUSY_TRIM_S`` of uninterrupted load. A finished
run's objects refer to each other (tasks, closures, its session), so they are freed by the cyclic
collector, whenever its thresholds next say so: a trim first collects (tens of milliseconds, and
only when idle), else it ran before the memory was free and ~20 MiB stayed with the process after
a burst of mixed runs. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

IDLE_FIRST_S = 1.0  # the first trim, this long after the last run ended (a new run cancels it)
BUSY_TRIM_S = 30.0


def _load_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


class HeapTrimmer:
    """``run_ended`` after every run. ``idle_after_s``: when, after the last run ends, to trim if
    the server is still idle (say at once, and again once finished runs kept for a resume have
    been let go)."""

    def __init__(self, idle_after_s: tuple[float, ...] = (0.0,), trim: Callable[[int], int] | None = None) -> None:
        self._trim = trim if trim is not None else _load_trim()
        self.idle_after_s = idle_after_s
        self._last = time.monotonic()
        self._later: list[asyncio.TimerHandle] = []
        self.trims = 0

    def run_ended(self, active: Callable[[], int]) -> None:
        if self._trim is None:
            return
        if active() > 0:
            if time.monotonic() - self._last >= BUSY_TRIM_S:
                self._do(collect=False)  # under load: no full collection on the event loop
            return
        self.close()
        loop = asyncio.get_running_loop()

        def when_idle() -> None:
            if active() == 0:
                self._do(collect=True)

        for delay in self.idle_after_s:
            self._later.append(loop.call_later(delay, when_idle))

    def _do(self, *, collect: bool) -> None:
        assert self._trim is not None
        self._last = time.monotonic()
        self.trims += 1
        if collect:
            # a finished run's objects form cycles (tasks, closures, the session): freed only by
            # a collection, which would otherwise come later, after this trim
            gc.collect()
        self._trim(0)

    def close(self) -> None:
        for handle in self._later:
            handle.cancel()
        self._later.clear()
