"""The sandbox side of the service as one object: engine, warm pool and limits together.

The web layer asks for a run and gets a ``Run`` already bound to a sandbox; it never sees the
engine. Tests and the app factory inject the engine, so the same code runs against the real
engine or any other ``DockerEngine``-shaped object.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from app.core.events import RunLimits
from app.protocol import RunRequest, effective_timeout
from app.sandbox.docker.engine import DockerEngine
from app.sandbox.pool import WarmPool
from app.sandbox.run import Run, StdinQueue
from app.settings import Settings

log = logging.getLogger(__name__)


class SandboxService:
    def __init__(self, settings: Settings, engine: DockerEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or DockerEngine(settings)
        self.pool = WarmPool(self.engine, settings.pool_size, settings.pool_idle_max_s)

    async def start(self) -> None:
        """Reap what dead servers left behind, then warm the pool (in the background)."""
        try:
            reaped = await self.engine.reap_orphans()
            if reaped:
                log.info("reaped %d orphaned sandbox(es)", reaped)
        except Exception as exc:  # the engine may come later; /healthz says so meanwhile
            log.warning("could not reap orphans at start: %s", exc)
        self.pool.start()

    async def stop(self) -> None:
        await self.pool.close()
        with contextlib.suppress(Exception):
            await self.engine.remove_all_mine()
        self.engine.close()

    def limits_for(self, request: RunRequest) -> RunLimits:
        s = self.settings
        return RunLimits(
            timeout_s=effective_timeout(request.timeout, s),
            memory_mb=s.memory_mb,
            output_bytes=s.output_bytes,
            pids=s.pids,
        )

    @contextlib.asynccontextmanager
    async def run(
        self, request: RunRequest, run_id: str | None = None, stdin: StdinQueue | None = None
    ) -> AsyncIterator[Run]:
        """A run bound to a fresh sandbox; the sandbox is removed when the block ends, however."""
        sandbox, _warm = await self.pool.acquire()
        try:
            yield Run(
                sandbox,
                request,
                self.limits_for(request),
                max_line_chars=self.settings.max_line_chars,
                flush_interval_s=self.settings.flush_interval_ms / 1000,
                run_id=run_id,
                stdin=stdin,
            )
        finally:
            self.engine.discard(sandbox)
