"""The sandbox side of the service as one object: engine, warm pools, runtimes and limits.

The web layer asks this object for a run, for health and for capacity; it never sees an engine.
The engine is injected (``SandboxService(settings, engine)``), so the same code runs against
Docker or any other ``Engine``. The service starts without the engine answering: a background
watcher waits for it, reaps what dead servers left behind, and only then warms the pools, so a
server started before its engine serves ``unavailable`` and recovers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from app.core.events import RunLimits
from app.core.rich import RichLimits
from app.errors import BadMessage, SCEError
from app.protocol import RunRequest, effective_timeout
from app.sandbox.bootstrap import BOOTSTRAP
from app.sandbox.interface import Engine, SandboxSpec
from app.sandbox.pool import WarmPool
from app.sandbox.run import Run, StdinBuffer
from app.settings import Settings

log = logging.getLogger(__name__)

ENGINE_RETRY_MIN_S = 0.25
ENGINE_RETRY_MAX_S = 5.0
DEFAULT_RUNTIME = "python"


def default_specs(settings: Settings) -> dict[str, SandboxSpec]:
    s = settings
    return {
        DEFAULT_RUNTIME: SandboxSpec(
            runtime=DEFAULT_RUNTIME,
            image=s.image,
            memory_mb=s.memory_mb,
            pids=s.pids,
            cpus=s.cpus,
            nofile=s.nofile,
            tmpfs_mb=s.tmpfs_mb,
            command=("python3", "-I", "-c", BOOTSTRAP),
        )
    }


class SandboxService:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        if engine is None:
            from app.sandbox.docker.engine import DockerEngine  # the default backend, only when asked

            engine = DockerEngine(settings)
        self.engine = engine
        self.specs = default_specs(settings)
        self.pools = {
            name: WarmPool(engine, spec, settings.pool_size, settings.pool_idle_max_s)
            for name, spec in self.specs.items()
        }
        self.engine_ok = False
        self.rich_limits = RichLimits(
            image_max_bytes=settings.image_max_bytes,
            file_max_bytes=settings.file_out_max_bytes,
            files_max_count=settings.files_out_max_count,
            total_bytes=settings.rich_output_bytes,
        )
        self._watcher: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()  # set once the engine has answered and orphans are reaped

    @property
    def pool(self) -> WarmPool:
        return self.pools[DEFAULT_RUNTIME]

    async def start(self) -> None:
        """Return at once; the engine is awaited in the background."""
        self._watcher = asyncio.get_running_loop().create_task(self._await_engine(), name="engine-watcher")

    async def _await_engine(self) -> None:
        delay = ENGINE_RETRY_MIN_S
        while True:
            health = await self.engine.health()
            if health.ok:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, ENGINE_RETRY_MAX_S)
        self.engine_ok = True
        try:
            reaped = await self.engine.reap_orphans()
            if reaped:
                log.info("reaped %d orphaned sandbox(es)", reaped)
        except SCEError as exc:
            log.warning("could not reap orphans: %s", exc.message)
        for pool in self.pools.values():
            pool.start()
        self.ready.set()

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(BaseException):
                await self._watcher
        for pool in self.pools.values():
            await pool.close()
        await self.engine.close()

    # -- questions the web layer asks ---------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        """The engine's state and the images', for ``/healthz``."""
        engine = await self.engine.health()
        self.engine_ok = engine.ok
        images_ok = False
        if engine.ok:
            try:
                images_ok = all([await self.engine.image_present(spec.image) for spec in self.specs.values()])
            except SCEError:
                engine = type(engine)(engine.name, False, engine.detail)
        return {
            "ok": engine.ok and images_ok,
            "engine": engine.ok,
            "engines": [{"name": engine.name, "ok": engine.ok, **engine.detail}],
            "image": self.specs[DEFAULT_RUNTIME].image,
            "image_present": images_ok,
            "runtime": self.settings.runtime,
            "pool": self.pool.state(),
        }

    def pool_ready(self) -> int:
        return sum(pool.ready for pool in self.pools.values())

    @property
    def capacity(self) -> int:
        return self.engine.capacity

    def spec_for(self, request: RunRequest) -> SandboxSpec:
        name = getattr(request, "runtime", None) or DEFAULT_RUNTIME
        spec = self.specs.get(name)
        if spec is None:
            raise BadMessage(f"unknown runtime {name!r}; the runtimes are: {', '.join(self.specs)}")
        return spec

    def limits_for(self, request: RunRequest) -> RunLimits:
        spec = self.spec_for(request)
        return RunLimits(
            timeout_s=effective_timeout(request.timeout, self.settings),
            memory_mb=spec.memory_mb,
            output_bytes=self.settings.output_bytes,
            pids=spec.pids,
        )

    @contextlib.asynccontextmanager
    async def run(
        self, request: RunRequest, run_id: str | None = None, stdin: StdinBuffer | None = None
    ) -> AsyncIterator[Run]:
        """A run bound to a fresh sandbox; the sandbox is removed when the block ends, however."""
        spec = self.spec_for(request)
        limits = self.limits_for(request)
        sandbox, _warm = await self.pools[spec.runtime].acquire()
        try:
            yield Run(
                sandbox,
                request,
                limits,
                max_line_chars=self.settings.max_line_chars,
                flush_interval_s=self.settings.flush_interval_ms / 1000,
                rich_limits=self.rich_limits,
                run_id=run_id,
                stdin=stdin,
            )
        finally:
            self.engine.discard(sandbox)
