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
import time
from collections.abc import AsyncIterator
from typing import Any

from app.core.events import RunLimits
from app.core.rich import RichLimits
from app.errors import BadMessage, SCEError
from app.protocol import RunRequest, effective_timeout
from app.sandbox.interface import Engine, SandboxSpec
from app.sandbox.pool import WarmPool
from app.sandbox.run import Run, StdinBuffer
from app.sandbox.runtimes import DEFAULT_RUNTIME, RuntimeSpec, runtimes_from
from app.settings import Settings

log = logging.getLogger(__name__)

ENGINE_RETRY_MIN_S = 0.25
ENGINE_RETRY_MAX_S = 5.0
RUNTIME_INFO_TTL_S = 60.0


def default_specs(settings: Settings) -> dict[str, SandboxSpec]:
    """What each runtime's sandboxes are started with, the default runtime first."""
    return {
        name: SandboxSpec(
            runtime=name,
            image=runtime.image,
            memory_mb=runtime.memory_mb,
            pids=runtime.pids,
            cpus=settings.cpus,
            nofile=settings.nofile,
            tmpfs_mb=runtime.tmpfs_mb,
            command=runtime.command(),
            environment=runtime.environment,
        )
        for name, runtime in runtimes_from(settings).items()
    }


class SandboxService:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        if engine is None:
            from app.sandbox.docker.engine import DockerEngine  # the default backend, only when asked

            engine = DockerEngine(settings)
        self.engine = engine
        self.runtimes: dict[str, RuntimeSpec] = runtimes_from(settings)
        self.specs = default_specs(settings)
        self.pools = {
            name: WarmPool(engine, spec, self.runtimes[name].pool_size, settings.pool_idle_max_s)
            for name, spec in self.specs.items()
        }
        self._runtime_info: tuple[float, list[dict[str, Any]]] | None = None
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
        """The engine's state and the images', for ``/healthz``: healthy while the engine answers
        and the default runtime's image is there."""
        engine = await self.engine.health()
        self.engine_ok = engine.ok
        missing: list[str] = []
        if engine.ok:
            try:
                missing = [name for name, spec in self.specs.items() if not await self.engine.image_present(spec.image)]
            except SCEError:
                engine = type(engine)(engine.name, False, engine.detail)
        default_ok = engine.ok and DEFAULT_RUNTIME not in missing
        return {
            "ok": default_ok,
            "engine": engine.ok,
            "engines": [{"name": engine.name, "ok": engine.ok, **engine.detail}],
            "image": self.specs[DEFAULT_RUNTIME].image,
            "image_present": default_ok,
            "runtimes_missing": missing,  # runs of these get `unavailable`; the default runs on
            "runtime": self.settings.runtime,
            "pool": self.pool.state(),
            "pools": {name: pool.state() for name, pool in self.pools.items()},
        }

    async def runtime_list(self) -> list[dict[str, Any]]:
        """``GET /runtimes``: each runtime with the versions its image actually holds (cached)."""
        now = time.monotonic()
        if self._runtime_info is not None and now - self._runtime_info[0] < RUNTIME_INFO_TTL_S:
            return self._runtime_info[1]
        listing: list[dict[str, Any]] = []
        complete = True
        for name, runtime in self.runtimes.items():
            try:
                info = await self.engine.runtime_info(runtime.image)
            except SCEError:
                info = None
            complete = complete and info is not None
            listing.append(
                {
                    "name": name,
                    "default": name == DEFAULT_RUNTIME,
                    "python": (info or {}).get("python"),
                    "description": runtime.description,
                    "packages": (info or {}).get("packages", {}),
                    "available": info is not None,
                    "limits": {"memory_mb": runtime.memory_mb, "pids": runtime.pids},
                }
            )
        if complete:
            self._runtime_info = (now, listing)
        return listing

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
