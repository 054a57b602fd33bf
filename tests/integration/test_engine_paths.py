"""The two ways the engine makes a sandbox, on the real engine: the wire (a local engine's per-run
calls on the event loop, the default) and docker-py in threads (every other transport, or
``SCE_ENGINE_WIRE=false``). Everything else in tests/ runs on the wire; here both must make the
same container and carry a run from start to removal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import docker
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


def inspect(container_id: str) -> dict[str, Any]:
    client = docker.from_env(timeout=10)
    try:
        found: dict[str, Any] = client.api.inspect_container(container_id)
        return found
    finally:
        client.close()


@pytest.fixture
async def engines() -> AsyncIterator[tuple[DockerEngine, DockerEngine]]:
    wired = DockerEngine(Settings())
    sdk = DockerEngine(Settings(engine_wire=False))
    yield wired, sdk
    for engine in (wired, sdk):
        await engine.drain_cleanup()
        await engine.close()


async def test_both_paths_make_the_same_container(engines: tuple[DockerEngine, DockerEngine]) -> None:
    wired, sdk = engines
    assert await wired.wire() is not None and await sdk.wire() is None
    spec = default_specs(Settings())[DEFAULT_RUNTIME]
    made = [await engine.start_sandbox(spec) for engine in engines]
    try:
        configs = [inspect(sandbox.id) for sandbox in made]
        for c in configs:
            c["Config"]["Labels"].pop(LABEL_INSTANCE)  # each engine's own
            c["Config"].pop("Hostname")  # each container's own id
            c["HostConfig"].pop("CgroupParent")  # each sandbox's own parent
        assert configs[0]["Config"] == configs[1]["Config"]
        assert configs[0]["HostConfig"] == configs[1]["HostConfig"]
        assert all(c["State"]["Running"] for c in configs)
    finally:
        for engine, sandbox in zip(engines, made, strict=True):
            engine.discard(sandbox)
    for engine in engines:
        await engine.drain_cleanup()
    assert not {s.id for s in made} & {c["Id"] for c in project_containers()}


@pytest.mark.parametrize("wire", [True, False], ids=["wire", "sdk"])
async def test_a_run_from_start_to_removal_on_each_path(wire: bool) -> None:
    svc = SandboxService(Settings(pool_size=1, scientific_pool_size=0, engine_wire=wire))
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
        assert isinstance(engine, DockerEngine) and (await engine.wire() is not None) == wire
        owner = engine.owner
    finally:
        await svc.stop()
    assert project_containers(owner) == []


async def test_a_missing_image_is_unavailable_on_the_wire(engines: tuple[DockerEngine, DockerEngine]) -> None:
    wired, _ = engines
    spec = default_specs(Settings(image="sce-sandbox:no-such-tag"))[DEFAULT_RUNTIME]
    with pytest.raises(Unavailable, match="missing"):
        await wired.start_sandbox(spec)
    await wired.drain_cleanup()
    assert [c for c in project_containers(wired.owner) if c["Labels"].get(LABEL_INSTANCE) == wired.instance] == []
