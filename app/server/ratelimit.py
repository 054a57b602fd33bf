"""Per-client rate limits: runs per minute and bytes of code per minute, as token buckets.

Admission bounds how much one client holds *at once*; this bounds how fast it may come back.
Without it a client can start a run, end it, and start the next as fast as the engine allows,
forever, and hold a share of every sandbox the service has (each short run still costs a
container's creation and removal, the engine's real ceiling).

Each client (the same key as admission: its address, the real one behind trusted proxies, or
its token's hash) has one bucket per limit, full at first: ``per_minute`` tokens, refilled
continuously at ``per_minute / 60`` a second. A run takes one run token and as many code tokens
as its program has UTF-8 bytes; a run that would overdraw either bucket takes nothing and is
told how many seconds until it would fit. A burst of a whole minute's allowance is allowed, then
the steady rate.

Browsers told apart by cookie behind one address each have their own buckets, and the address
has a second, larger pair for all of them together (its ceiling, ``ceiling`` in ``admit``): a
client that asks for new cookies still gets no more than its address's allowance.

Pure: no I/O, no clock of its own (``now`` is passed in), unit-tested on its own. Memory is
bounded: a bucket that has refilled is the same as no bucket and is dropped on the periodic prune.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRUNE_EVERY = 1024
"""Checks between two prunes of refilled buckets (what one prune costs is one pass over them)."""


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBucket:
    """Per-key buckets of ``capacity`` tokens refilled at ``capacity / period_s`` a second."""

    def __init__(self, capacity: float, period_s: float = 60.0) -> None:
        if capacity <= 0 or period_s <= 0:
            raise ValueError("a bucket needs a positive capacity and period")
        self.capacity = float(capacity)
        self.rate = self.capacity / period_s
        self._buckets: dict[str, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return self.capacity
        return min(self.capacity, bucket.tokens + max(0.0, now - bucket.at) * self.rate)

    def wait_s(self, key: str, cost: float, now: float) -> float:
        """Seconds until ``cost`` tokens are there for ``key`` (0: now). A cost over the capacity
        is treated as the capacity: it waits for a full bucket, never forever."""
        missing = min(cost, self.capacity) - self._level(key, now)
        return 0.0 if missing <= 0 else missing / self.rate

    def take(self, key: str, cost: float, now: float) -> None:
        """Take ``cost`` tokens (call after ``wait_s`` said 0)."""
        level = self._level(key, now)
        self._buckets[key] = _Bucket(max(0.0, level - min(cost, self.capacity)), now)

    def prune(self, now: float) -> None:
        """Forget every bucket that is full again."""
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.at) * self.rate >= self.capacity]
        for key in full:
            del self._buckets[key]


def _bucket(per_minute: int) -> TokenBucket | None:
    return TokenBucket(per_minute) if per_minute > 0 else None


class RateLimiter:
    """Runs per minute and code bytes per minute, per client and per address ceiling; 0 is off."""

    def __init__(
        self,
        runs_per_minute: int,
        code_bytes_per_minute: int,
        ceiling_runs_per_minute: int = 0,
        ceiling_code_bytes_per_minute: int = 0,
    ) -> None:
        self.runs = _bucket(runs_per_minute)
        self.code = _bucket(code_bytes_per_minute)
        self.ceiling_runs = _bucket(ceiling_runs_per_minute)
        self.ceiling_code = _bucket(ceiling_code_bytes_per_minute)
        self._checks = 0

    @property
    def enabled(self) -> bool:
        return any(b is not None for b in (self.runs, self.code, self.ceiling_runs, self.ceiling_code))

    def admit(self, client: str, code_bytes: int, now: float, ceiling: str | None = None) -> float:
        """0.0 when the run may go (its tokens are taken); else the seconds until it could, and
        nothing is taken (a refused attempt does not push the client's next chance further out).
        ``ceiling``: the key of the address the client's runs also count against."""
        self._checks += 1
        every = (self.runs, self.code, self.ceiling_runs, self.ceiling_code)
        if self._checks % PRUNE_EVERY == 0:
            for bucket in every:
                if bucket is not None:
                    bucket.prune(now)
        charges = [(self.runs, client, 1), (self.code, client, code_bytes)]
        if ceiling is not None:
            charges += [(self.ceiling_runs, ceiling, 1), (self.ceiling_code, ceiling, code_bytes)]
        wait = 0.0
        for bucket, key, cost in charges:
            if bucket is not None:
                wait = max(wait, bucket.wait_s(key, cost, now))
        if wait > 0:
            return wait
        for bucket, key, cost in charges:
            if bucket is not None:
                bucket.take(key, cost, now)
        return 0.0


def retry_after_s(wait_s: float) -> int:
    """Whole seconds for a ``Retry-After`` header: rounded up, at least 1."""
    return max(1, math.ceil(wait_s))
