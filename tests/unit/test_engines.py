"""Several engines under one service, on scripted engines: placement, failover, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.core.events import Exit
from app.errors import Unavailable
from app.protocol import RunRequest
from app.sandbox.service import SandboxService
from app.settings import Settings
from tests.fakes import FakeEngine, FakeSandbox

pytestmark = pytest.mark.timeout(10)


async def hold(sandbox: FakeSandbox) -> int:
    await sandbox.read_stdin()
    return 0


@pytest.fixture
async def two() -> AsyncIterator[tuple[SandboxService, FakeEngine, FakeEngine]]:
    a, b = FakeEngine(hold, "a"), FakeEngine(hold, "b")
    service = SandboxService(Settings(pool_size=0, scientific_pool_size=0), engines=[a, b])
    await service.start()
    await service.ready.wait()
    while not all(slot.ok for slot in service.slots):  # noqa: ASYNC110 - both watchers' first look
        await asyncio.sleep(0)
    yield service, a, b
    await service.stop()


async def test_runs_spread_over_engines_by_free_capacity(two: tuple[SandboxService, FakeEngine, FakeEngine]) -> None:
    service, a, b = two
    async with service.run(RunRequest("x")), service.run(RunRequest("x")):
        assert (len(a.started), len(b.started)) == (1, 1)
    assert [slot.active for slot in service.slots] == [0, 0]


async def test_a_failed_engine_is_taken_out_and_comes_back(two: tuple[SandboxService, FakeEngine, FakeEngine]) -> None:
    service, a, b = two
    b.ok = False
    service.slots[1].check_now.set()
    while service.slots[1].ok:  # noqa: ASYNC110 - the watcher's next look
        await asyncio.sleep(0.01)
    for _ in range(3):
        async with service.run(RunRequest("x")):
            pass
    assert (len(a.started), len(b.started)) == (3, 0)
    b.ok = True
    async with asyncio.timeout(5):
        while not service.slots[1].ok:  # noqa: ASYNC110 - probed with backoff
            await asyncio.sleep(0.05)
    async with service.run(RunRequest("x")), service.run(RunRequest("x")):
        assert len(b.started) == 1


async def test_no_engine_answering_is_unavailable(two: tuple[SandboxService, FakeEngine, FakeEngine]) -> None:
    service, _, _ = two
    for slot in service.slots:
        slot.ok = False
    with pytest.raises(Unavailable):
        async with service.run(RunRequest("x")):
            pass


async def test_a_run_on_either_engine_ends_normally(two: tuple[SandboxService, FakeEngine, FakeEngine]) -> None:
    service, _, _ = two
    async with service.run(RunRequest("x", stdin="done")) as run:
        run.stdin.close()
        events = [event async for event in run.events()]
    assert isinstance(events[-1], Exit) and events[-1].exit_code == 0
