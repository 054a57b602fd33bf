"""Everything one server instance shares between requests, built once by the app factory."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.errors import Busy
from app.protocol import RunRequest
from app.sandbox.service import EngineSlot, SandboxService
from app.server.admission import Admission
from app.server.metrics import Metrics
from app.server.ratelimit import RateLimiter, retry_after_s
from app.server.runs import LiveRun, RunRegistry, Transport
from app.server.sessions import SessionRegistry
from app.settings import Settings

KILL_WAIT_S = 5.0

log = logging.getLogger("sce")


def _engine_up(slot: EngineSlot) -> float:
    return float(slot.ok)


def _engine_active(slot: EngineSlot) -> float:
    return float(slot.active)


@dataclass
class ServerContext:
    settings: Settings
    service: SandboxService
    admission: Admission
    metrics: Metrics
    registry: RunRegistry
    draining: bool = False  # said on /healthz from the first moment of a shutdown
    refusing: bool = False  # new runs are refused (after the drain notice)
    rate: RateLimiter = field(default_factory=lambda: RateLimiter(0, 0))
    sessions: SessionRegistry | None = None  # v3; made by ``build``
    _draining: asyncio.Task[None] | None = field(default=None, repr=False)
    # called once the runs are over: what else holds connections open (MCP's event streams) ends
    # then, so hypercorn's graceful stop does not wait for it
    after_drain: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)

    @classmethod
    def build(cls, settings: Settings, service: SandboxService) -> ServerContext:
        ctx = cls(
            settings=settings,
            service=service,
            admission=Admission(settings.max_concurrent_runs, settings.queue_size, settings.per_client_runs),
            metrics=Metrics(),
            registry=RunRegistry(keep_finished_s=settings.resume_grace_s, on_forget=service.trim_heap_when_idle),
            rate=RateLimiter(settings.rate_runs_per_minute, settings.rate_code_bytes_per_minute),
        )
        ctx.sessions = SessionRegistry(ctx)
        ctx.metrics.bind(
            active=lambda: len(ctx.registry.active),
            queued=lambda: ctx.admission.queued,
            pool_ready=service.pool_ready,
        )
        ctx.metrics.runs_known.set_function(lambda: len(ctx.registry.known))
        ctx.metrics.heap_trims.set_function(lambda: service.heap.trims)
        for slot in service.slots:
            name = slot.engine.name
            ctx.metrics.engine_up.labels(name).set_function(functools.partial(_engine_up, slot))
            ctx.metrics.engine_active.labels(name).set_function(functools.partial(_engine_active, slot))
            if hasattr(slot.engine, "on_engine_error"):
                slot.engine.on_engine_error = lambda exc: ctx.metrics.engine_errors.inc()
        return ctx

    def new_run(self, request: RunRequest, client: str, transport: Transport) -> LiveRun:
        """A run through the one lifecycle (admission, draining, registry, record); call start()."""
        live = LiveRun(self, request, client, transport)
        self.registry.add(live)
        return live

    def check_rate(self, client: str, request: RunRequest) -> None:
        """Raise ``Busy`` with the seconds to wait when ``client`` is past its runs or code per minute.

        Called once per run at the start of its lifecycle (both transports); health probes never."""
        if not self.rate.enabled:
            return
        wait = self.rate.admit(client, len(request.code.encode("utf-8", "surrogatepass")), time.monotonic())
        if wait > 0:
            seconds = retry_after_s(wait)
            self.metrics.rate_limited.inc()
            message = f"rate limit: too many runs or too much code from this client; try again in {seconds} s"
            raise Busy(message, retry_after_s=seconds)

    async def drain(self) -> None:
        """Graceful shutdown: say so first (a balancer stops sending), then refuse new runs, let
        running ones finish within the grace, then kill the rest.

        Once, whoever asks: the signal handler (serve.py) and the app's shutdown both call it, and
        a second caller waits for the first drain rather than waiting out the notice again."""
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain())
        await asyncio.shield(self._draining)

    async def _drain(self) -> None:
        log.info(
            "shutting down: draining %d run(s); new runs refused in %g s",
            len(self.registry.active),
            self.settings.drain_notice_s,
        )
        self.draining = True
        if self.settings.drain_notice_s > 0:
            await asyncio.sleep(self.settings.drain_notice_s)
        self.refusing = True
        await self.registry.until_idle(self.settings.shutdown_grace_s)
        for live in list(self.registry.active):
            live.kill()
        await self.registry.until_idle(KILL_WAIT_S)
        for hook in self.after_drain:
            await hook()
