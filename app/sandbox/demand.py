"""How many warm sandboxes to keep: the base size, grown to the largest recent burst of runs.

A class pressing Run together asks for 30 sandboxes within a second or two; a fixed pool of 2
serves two of them warm and starts the rest cold (seconds each on an engine starting 28 at once).
A burst seldom comes alone: the same class presses Run again minutes later. So the pool keeps as
many ready as the most runs that started within any ``burst_s`` over the last ``window_s``,
bounded (by the engine's capacity and a memory budget), and shrinks back to its base once no
burst that large has come for ``window_s``. A waiting sandbox costs memory and no CPU.

Pure logic, no clocks of its own: the caller says what time it is.
"""

from __future__ import annotations

from collections import deque


class Demand:
    """The most runs started within any ``burst_s`` over the last ``window_s``, kept in O(1) per run.

    ``_recent`` holds the start times within the last ``burst_s``; ``_peaks`` the burst sizes seen
    at each start that no later, at-least-as-large burst has superseded (so their counts strictly
    decrease from the oldest): a sliding-window maximum.
    """

    def __init__(self, burst_s: float, window_s: float) -> None:
        if burst_s <= 0 or window_s <= 0:
            raise ValueError("burst_s and window_s must be positive")
        self.burst_s = burst_s
        self.window_s = window_s
        self._recent: deque[float] = deque()
        self._peaks: deque[tuple[float, int]] = deque()

    def note(self, now: float) -> None:
        """A run started at ``now`` (times never go backwards)."""
        recent = self._recent
        recent.append(now)
        while recent[0] <= now - self.burst_s:
            recent.popleft()
        count = len(recent)
        while self._peaks and self._peaks[-1][1] <= count:
            self._peaks.pop()
        self._peaks.append((now, count))

    def peak(self, now: float) -> int:
        """The largest burst within the window ending at ``now`` (0 if none)."""
        while self._peaks and self._peaks[0][0] <= now - self.window_s:
            self._peaks.popleft()
        return self._peaks[0][1] if self._peaks else 0

    def changes_at(self) -> float | None:
        """When the current peak leaves the window (the pool may shrink then), or None."""
        return self._peaks[0][0] + self.window_s if self._peaks else None


def pool_target(base: int, peak: int, most: int) -> int:
    """Sandboxes to keep ready: the recent peak, at least ``base`` and at most ``most`` (but never
    below ``base``: the configured pool is always kept)."""
    return max(base, min(peak, most))


def growth_bound(pool_max: int, memory_budget_mb: int, sandbox_memory_mb: int, engine_capacity: int) -> int:
    """The most a pool may grow to: its own cap, what the memory budget holds (each waiting sandbox
    counted at its memory limit, the most it could come to use) and the engine's capacity."""
    return max(0, min(pool_max, memory_budget_mb // max(1, sandbox_memory_mb), engine_capacity))
