"""A class pressing Run together, on the real engine: after one burst, a pool that grows with
demand serves the next burst (after a quiet period) warm, where a fixed pool serves its size."""

from __future__ import annotations

import asyncio

import pytest

from app.core.events import Output
from app.protocol import RunRequest
from app.sandbox.docker.engine import DockerEngine
from app.sandbox.service import SandboxService
from app.settings import Settings
from tests.conftest import project_containers

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

BURST = 6


async def hello(svc: SandboxService) -> None:
    async with svc.run(RunRequest("print(2 + 2)")) as run:
        out = "".join([e.data async for e in run.events() if isinstance(e, Output)])
        assert out == "4\n"


async def burst_after_quiet(settings: Settings) -> tuple[int, int]:
    """Warm sandboxes found by a first burst, then by a second one after a quiet second."""
    svc = SandboxService(settings)
    await svc.start()
    try:
        pool = svc.pool
        found = []
        async with asyncio.timeout(200):
            for _ in range(2):
                await pool.wait_until(lambda p: p.ready >= p.target())
                await asyncio.sleep(1.0)  # the quiet period itself, not a synchronisation
                before = pool.handed_out
                await asyncio.gather(*(hello(svc) for _ in range(BURST)))
                found.append(pool.handed_out - before)
        return found[0], found[1]
    finally:
        await svc.stop()
        assert isinstance(svc.engine, DockerEngine)
        assert not project_containers(svc.engine.owner)


async def test_a_growing_pool_serves_the_next_burst_warm_where_a_fixed_one_cannot() -> None:
    fixed = await burst_after_quiet(Settings(pool_size=2, scientific_pool_size=0, max_concurrent_runs=BURST))
    growing = await burst_after_quiet(
        Settings(pool_size=2, scientific_pool_size=0, max_concurrent_runs=BURST, pool_max=BURST)
    )
    assert fixed == (2, 2)  # the fixed pool's two, every time; the rest cold starts
    assert growing == (2, BURST)  # it learned from the first burst
