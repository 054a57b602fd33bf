"""The pool's sizing: recent bursts of runs, bounded, forgotten after the window (pure logic)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from app.sandbox.demand import Demand, growth_bound, pool_target
from app.sandbox.interface import SandboxSpec
from app.sandbox.pool import WarmPool
from tests.fakes import FakeEngine, FakeSandbox

SPEC = SandboxSpec("python", "test", 128, 64, 1.0, 256, 16)


def test_the_peak_is_the_largest_burst_within_burst_s() -> None:
    d = Demand(burst_s=2.0, window_s=60.0)
    assert d.peak(0.0) == 0 and d.changes_at() is None
    for t in (10.0, 10.1, 10.2, 10.3, 10.4, 10.5, 10.6, 10.7):  # a class of 8 pressing Run
        d.note(t)
    d.note(20.0)  # a lone run later does not lower it
    assert d.peak(20.0) == 8


def test_runs_spread_wider_than_burst_s_are_not_one_burst() -> None:
    d = Demand(burst_s=1.0, window_s=60.0)
    for i in range(10):
        d.note(float(i * 2))  # one run every 2 s
    assert d.peak(20.0) == 1


def test_a_burst_is_forgotten_once_the_window_has_passed() -> None:
    d = Demand(burst_s=2.0, window_s=60.0)
    for i in range(6):
        d.note(100.0 + i * 0.1)
    d.note(130.0)
    assert d.peak(159.0) == 6
    assert d.changes_at() == pytest.approx(100.5 + 60.0)  # the burst's last run
    assert d.peak(161.0) == 1  # only the lone run at 130 s is left
    assert d.peak(191.0) == 0 and d.changes_at() is None


def test_a_smaller_later_burst_outlives_a_larger_earlier_one() -> None:
    d = Demand(burst_s=1.0, window_s=10.0)
    for i in range(5):
        d.note(0.0 + i * 0.01)
    for i in range(3):
        d.note(5.0 + i * 0.01)
    assert d.peak(6.0) == 5
    assert d.peak(10.5) == 3


def test_target_is_bounded_below_by_the_base_and_above_by_the_bound() -> None:
    assert pool_target(base=2, peak=0, most=16) == 2
    assert pool_target(base=2, peak=8, most=16) == 8
    assert pool_target(base=2, peak=30, most=16) == 16
    assert pool_target(base=4, peak=30, most=3) == 4  # the configured pool is always kept


def test_growth_is_bounded_by_its_cap_the_memory_budget_and_the_engine() -> None:
    assert growth_bound(pool_max=32, memory_budget_mb=4096, sandbox_memory_mb=128, engine_capacity=64) == 32
    assert growth_bound(pool_max=32, memory_budget_mb=1024, sandbox_memory_mb=128, engine_capacity=64) == 8
    assert growth_bound(pool_max=32, memory_budget_mb=4096, sandbox_memory_mb=128, engine_capacity=16) == 16
    with pytest.raises(ValueError):
        Demand(burst_s=0, window_s=1)


async def _idle(_: FakeSandbox) -> int:
    return 0


async def test_a_pool_grows_after_a_burst_and_shrinks_back_when_it_is_forgotten() -> None:
    engine = FakeEngine(_idle)
    pool = WarmPool(engine, SPEC, 2, idle_max_s=300, grow_to=6, burst_s=1.0, window_s=0.5)
    pool.start()
    try:
        async with asyncio.timeout(10):
            await pool.wait_until(lambda p: p.ready == 2)
            burst = await asyncio.gather(*(pool.acquire() for _ in range(8)))
            assert sum(warm for _, warm in burst) == 2
            assert pool.target() == 6  # eight asked at once; the bound is six
            await pool.wait_until(lambda p: p.ready == 6)
            second = await asyncio.gather(*(pool.acquire() for _ in range(6)))
            assert all(warm for _, warm in second)  # the next burst finds them warm
            await pool.wait_until(lambda p: p.ready == 6)
            await pool.wait_until(lambda p: p.ready == 2)
            assert pool.target() == 2
    finally:
        await pool.close()


async def test_a_pool_without_growth_keeps_its_size() -> None:
    engine = FakeEngine(_idle)
    pool = WarmPool(engine, SPEC, 2, idle_max_s=300)
    pool.start()
    try:
        async with asyncio.timeout(10):
            await pool.wait_until(lambda p: p.ready == 2)
            await asyncio.gather(*(pool.acquire() for _ in range(8)))
            await pool.wait_until(lambda p: p.ready == 2)
            assert pool.target() == 2 and pool.demand is None
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def full_pool(refill_delay_s: float) -> AsyncIterator[tuple[WarmPool, FakeEngine]]:
    """A pool of 2 with its refill held ``refill_delay_s``, both ready; closed at the end."""
    engine = FakeEngine(_idle)
    pool = WarmPool(engine, SPEC, 2, idle_max_s=300, refill_delay_s=refill_delay_s)
    pool.start()
    try:
        async with asyncio.timeout(10):
            await pool.wait_until(lambda p: p.ready == 2)
            yield pool, engine
    finally:
        await pool.close()


async def test_a_taken_sandbox_is_replaced_only_after_the_refill_delay() -> None:
    """The replacement's start waits, so the run just handed a sandbox has the CPU to itself; a
    run arriving meanwhile still finds the other warm one."""
    loop = asyncio.get_running_loop()
    async with full_pool(0.3) as (pool, engine):
        taken_at = loop.time()
        first, second = await pool.acquire(), await pool.acquire()
        assert first[1] and second[1] and len(engine.started) == 2  # both warm, nothing new yet
        await pool.wait_until(lambda p: p.ready == 2)
        assert loop.time() - taken_at >= 0.3
        assert len(engine.started) == 4 and pool.cold_starts == 0


async def test_a_stream_of_hand_outs_does_not_put_the_refill_off_for_ever() -> None:
    """Runs arriving faster than the delay: the first hand-out's delay is the longest any waits."""
    loop = asyncio.get_running_loop()
    async with full_pool(1.0) as (pool, _):
        taken_at = loop.time()
        await pool.acquire()
        await asyncio.sleep(0.7)  # the stimulus: a second run, within the first one's delay
        await pool.acquire()
        await pool.wait_until(lambda p: p.warmed >= 3)
        assert 1.0 <= loop.time() - taken_at < 1.5  # not 0.7 + 1.0
