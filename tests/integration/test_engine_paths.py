"""The one way the engine makes a sandbox (every call on the event loop), on the real engine: a run
from start to removal, and a missing image named as such."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.core.events import Exit, Output
from app.errors import Unavailable
from app.protocol import RunRequest
from app.sandbox.docker.engine import LABEL_INSTANCE, DockerEngine
from app.sandbox.runtimes import DEFAULT_RUNTIME
from app.sandbox.service import SandboxService, default_specs
from app.settings import Settings
from tests.conftest import project_containers

pytestmark = [pytest.mark.docker, pytest.mark.timeout(90)]


@pytest.fixture
async def engines() -> AsyncIterator[tuple[DockerEngine]]:
    engine = DockerEngine(Settings())
    yield (engine,)
    await engine.drain_cleanup()
    await engine.close()


async def test_a_run_from_start_to_removal() -> None:
    svc = SandboxService(Settings(pool_size=1, scientific_pool_size=0))
    await svc.start()
    await svc.ready.wait()
    try:
        for code, stdin, out, status in (
            ("print(input().upper())", "hi\n", "HI\n", 0),
            ("import sys\nprint('x')\nsys.exit(4)", "", "x\n", 4),
        ):
            async with svc.run(RunRequest(code, stdin=stdin)) as run:
                async with asyncio.timeout(30):
                    events = [e async for e in run.events()]
            assert "".join(e.data for e in events if isinstance(e, Output)) == out
            assert isinstance(events[-1], Exit) and (events[-1].reason, events[-1].exit_code) == ("exit", status)
        # a kill on the way: the engine's word, then the removal
        async with svc.run(RunRequest("while True: pass", timeout=1)) as run:
            async with asyncio.timeout(30):
                events = [e async for e in run.events()]
        assert isinstance(events[-1], Exit) and events[-1].reason == "timeout"
        engine = svc.slots[0].engine
        assert isinstance(engine, DockerEngine)
        owner = engine.owner
    finally:
        await svc.stop()
    assert project_containers(owner) == []


async def test_a_missing_image_is_unavailable_and_named(engines: tuple[DockerEngine]) -> None:
    (wired,) = engines
    spec = default_specs(Settings(image="sce-sandbox:no-such-tag"))[DEFAULT_RUNTIME]
    with pytest.raises(Unavailable, match=r"sce-sandbox:no-such-tag.* missing"):
        await wired.start_sandbox(spec)
    await wired.drain_cleanup()
    assert [c for c in project_containers(wired.owner) if c["Labels"].get(LABEL_INSTANCE) == wired.instance] == []
