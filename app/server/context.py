"""Everything one server instance shares between requests, built once by the app factory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field

from app.protocol import RunRequest
from app.sandbox.run import Run
from app.sandbox.service import SandboxService
from app.server.admission import Admission
from app.server.metrics import Metrics
from app.settings import Settings

run_log = logging.getLogger("sce.run")

KILL_WAIT_S = 5.0


@dataclass
class ServerContext:
    settings: Settings
    service: SandboxService
    admission: Admission
    metrics: Metrics
    runs: set[Run] = field(default_factory=set)
    draining: bool = False
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def build(cls, settings: Settings, service: SandboxService) -> ServerContext:
        ctx = cls(
            settings=settings,
            service=service,
            admission=Admission(settings.max_concurrent_runs, settings.queue_size, settings.per_client_runs),
            metrics=Metrics(),
        )
        ctx.metrics.bind(
            active=lambda: len(ctx.runs),
            queued=lambda: ctx.admission.queued,
            pool_ready=lambda: service.pool.ready,
        )
        service.engine.on_engine_error = lambda exc: ctx.metrics.engine_errors.inc()
        return ctx

    def add_run(self, run: Run) -> None:
        self.runs.add(run)
        self._idle.clear()

    def remove_run(self, run: Run) -> None:
        self.runs.discard(run)
        if not self.runs:
            self._idle.set()

    async def _until_idle(self, seconds: float) -> None:
        if self.runs:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._idle.wait()

    @staticmethod
    def new_run_id() -> str:
        return uuid.uuid4().hex[:16]

    def record(self, run: Run, client: str, transport: str, request: RunRequest) -> None:
        """Metrics and the one structured log line for a finished run."""
        exit_ = run.exit
        if exit_ is None:
            return
        m = self.metrics
        m.runs.labels(exit_.reason).inc()
        m.duration.observe(exit_.duration_ms / 1000)
        if run.first_output_at is not None and run.started_at is not None:
            m.first_output.observe(run.first_output_at - run.started_at)
        entry: dict[str, object] = {
            "event": "run",
            "id": run.id,
            "transport": transport,
            "client": client,
            "reason": exit_.reason,
            "exit_code": exit_.exit_code,
            "signal": exit_.signal,
            "duration_ms": exit_.duration_ms,
            "stdout_bytes": exit_.stdout_bytes,
            "stderr_bytes": exit_.stderr_bytes,
            "truncated": exit_.truncated,
        }
        if self.settings.log_code:
            entry["code"] = request.code
        run_log.info(json.dumps(entry))

    async def drain(self) -> None:
        """Graceful shutdown: refuse new runs, let running ones finish within the grace, then kill."""
        self.draining = True
        await self._until_idle(self.settings.shutdown_grace_s)
        for run in list(self.runs):
            run.kill()
        await self._until_idle(KILL_WAIT_S)
