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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.events import RunLimits
from app.core.rich import RichLimits
from app.errors import BadMessage, SCEError, Unavailable
from app.protocol import RunRequest, effective_timeout
from app.sandbox.demand import growth_bound
from app.sandbox.heap import IDLE_FIRST_S, HeapTrimmer
from app.sandbox.interface import Engine, Lockdown, SandboxSpec
from app.sandbox.pool import WarmPool
from app.sandbox.run import Run, StdinBuffer
from app.sandbox.runtimes import DEFAULT_RUNTIME, RuntimeSpec, runtimes_from
from app.settings import Settings

log = logging.getLogger(__name__)

ENGINE_RETRY_MIN_S = 0.25
ENGINE_RETRY_MAX_S = 5.0
RUNTIME_INFO_TTL_S = 60.0
HEALTH_INTERVAL_S = 2.0
FIRST_LOOK_S = 5.0
REAP_INTERVAL_S = 60.0


def default_specs(settings: Settings) -> dict[str, SandboxSpec]:
    """What each runtime's sandboxes are started with, the default runtime first."""
    # gVisor does not apply a container's syscall filter to its guest: its own kernel implements
    # those calls, inside the host filter around the sentry
    lockdown = Lockdown(syscall_filter="runtime" if settings.runtime == "runsc" else "project")
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
            stdin_preamble=runtime.stdin_preamble(),
            lockdown=lockdown,
        )
        for name, runtime in runtimes_from(settings).items()
    }


def make_engines(settings: Settings) -> list[Engine]:
    """The engines ``SCE_BACKEND`` names, one per configured host: the one place a backend is chosen."""
    if settings.backend == "docker":
        from app.sandbox.docker.engine import DockerEngine  # imported only when chosen

        return [DockerEngine(settings, host=host) for host in settings.docker().hosts]
    raise ValueError(f"unknown sandbox backend {settings.backend!r}")


@dataclass(eq=False)
class EngineSlot:
    """One engine with its own warm pools and health, as the service schedules it."""

    engine: Engine
    pools: dict[str, WarmPool]
    ok: bool = False
    active: int = 0
    reaped: bool = False
    failures: int = 0
    images_missing: list[str] = field(default_factory=list)  # as the watcher last saw them
    looked: asyncio.Event = field(default_factory=asyncio.Event)  # the watcher's first look is done
    check_now: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def free(self) -> int:
        return self.engine.capacity - self.active

    def state(self) -> dict[str, Any]:
        return {
            "name": self.engine.name,
            "ok": self.ok,
            "active": self.active,
            "capacity": self.engine.capacity,
            "pools": {name: pool.state() for name, pool in self.pools.items()},
        }


class SandboxService:
    """Runs sandboxes on one or more engines: each with its own pools, health and capacity.

    A run goes to the healthy engine with the most free capacity. An engine that stops answering
    is taken out (its runs end ``unavailable`` on their own), probed with a growing interval, and
    brought back when it answers. Orphans are reaped on every engine when it first answers, then
    every ``REAP_INTERVAL_S``.
    """

    def __init__(
        self, settings: Settings, engine: Engine | None = None, *, engines: Sequence[Engine] | None = None
    ) -> None:
        self.settings = settings
        if engines is None:
            engines = [engine] if engine is not None else self._default_engines(settings)
        self.runtimes: dict[str, RuntimeSpec] = runtimes_from(settings)
        self.specs = default_specs(settings)
        self.slots = [
            EngineSlot(
                e,
                {
                    name: WarmPool(
                        e,
                        spec,
                        self.runtimes[name].pool_size,
                        settings.pool_idle_max_s,
                        # only the default runtime grows with demand (a class's runs)
                        grow_to=growth_bound(settings.pool_max, settings.pool_memory_mb, spec.memory_mb, e.capacity)
                        if name == DEFAULT_RUNTIME
                        else 0,
                        burst_s=settings.pool_burst_s,
                        window_s=settings.pool_window_s,
                        refill_delay_s=settings.pool_refill_delay_ms / 1000,
                    )
                    for name, spec in self.specs.items()
                },
            )
            for e in engines
        ]
        self._runtime_info: tuple[float, list[dict[str, Any]]] | None = None
        self.rich_limits = RichLimits(
            image_max_bytes=settings.image_max_bytes,
            file_max_bytes=settings.file_out_max_bytes,
            files_max_count=settings.files_out_max_count,
            total_bytes=settings.rich_output_bytes,
        )
        self._watchers: list[asyncio.Task[None]] = []
        # freed output back to the system after bursts: at once, and when finished runs are let go
        self.heap = HeapTrimmer((IDLE_FIRST_S, settings.resume_grace_s + 1.0))
        self.ready = asyncio.Event()  # set once an engine has answered and its orphans are reaped

    @staticmethod
    def _default_engines(settings: Settings) -> list[Engine]:
        return make_engines(settings)

    # -- compatibility views of the first engine (one-engine callers and tests) ------------------
    @property
    def engine(self) -> Engine:
        return self.slots[0].engine

    @property
    def pools(self) -> dict[str, WarmPool]:
        return self.slots[0].pools

    @property
    def pool(self) -> WarmPool:
        return self.slots[0].pools[DEFAULT_RUNTIME]

    @property
    def engine_ok(self) -> bool:
        return any(slot.ok for slot in self.slots)

    # -- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Watch each engine in the background; return once each has been looked at once (an engine
        that is up serves the first request) or after ``FIRST_LOOK_S`` (one that is down does not
        hold the server's start: it serves ``unavailable`` until the engine answers)."""
        loop = asyncio.get_running_loop()
        self._watchers = [
            loop.create_task(self._watch(slot), name=f"engine-watcher-{slot.engine.name}") for slot in self.slots
        ]
        looks = [loop.create_task(slot.looked.wait()) for slot in self.slots]
        await asyncio.wait(looks, timeout=FIRST_LOOK_S)
        for look in looks:
            look.cancel()

    async def _watch(self, slot: EngineSlot) -> None:
        """Health of one engine: out when it fails, back when it answers; reaps on the way."""
        delay = ENGINE_RETRY_MIN_S
        last_reap = 0.0
        while True:
            health = await slot.engine.health()
            was_ok, slot.ok = slot.ok, health.ok
            if health.ok:
                delay = ENGINE_RETRY_MIN_S
                slot.failures = 0
                if not was_ok:
                    log.info("engine %s answers; in service", slot.engine.name)
                await self._look_for_images(slot)
                slot.looked.set()
                if time.monotonic() - last_reap > REAP_INTERVAL_S:
                    last_reap = time.monotonic()
                    await self._reap(slot)
                if not slot.reaped:
                    slot.reaped = True
                    for pool in slot.pools.values():
                        pool.start()
                self.ready.set()
                wait = HEALTH_INTERVAL_S
            else:
                slot.failures += 1
                slot.looked.set()
                if was_ok:
                    log.warning("engine %s does not answer; out of service", slot.engine.name)
                wait = delay
                delay = min(delay * 2, ENGINE_RETRY_MAX_S)
            slot.check_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await slot.check_now.wait()

    async def _look_for_images(self, slot: EngineSlot) -> list[str]:
        """The runtimes whose image this engine lacks (kept for the cheap, cached health answer)."""
        try:
            slot.images_missing = [
                name for name, spec in self.specs.items() if not await slot.engine.image_present(spec.image)
            ]
        except SCEError:
            slot.ok, slot.images_missing = False, list(self.specs)
        return slot.images_missing

    async def _reap(self, slot: EngineSlot) -> None:
        try:
            reaped = await slot.engine.reap_orphans()
            if reaped:
                log.info("reaped %d orphaned sandbox(es) on %s", reaped, slot.engine.name)
        except SCEError as exc:
            log.warning("could not reap orphans on %s: %s", slot.engine.name, exc.message)

    async def stop(self) -> None:
        self.heap.close()
        for task in self._watchers:
            task.cancel()
        for task in self._watchers:
            with contextlib.suppress(BaseException):
                await task
        for slot in self.slots:
            for pool in slot.pools.values():
                await pool.close()
            await slot.engine.close()

    # -- questions the web layer asks ---------------------------------------------------------
    async def health(self, *, cached: bool = False) -> dict[str, Any]:
        """Every engine's state and the images', for ``/healthz``: healthy while some engine answers
        and has the default runtime's image. ``cached``: as the engine watchers last saw it (at
        most ``HEALTH_INTERVAL_S`` old), asking no engine: for a balancer's frequent checks."""
        engines = []
        default_ok = False
        missing: set[str] = set()
        for slot in self.slots:
            if not cached:
                health = await slot.engine.health()
                slot.ok = health.ok
                if health.ok:
                    await self._look_for_images(slot)
            state = slot.state()
            if slot.ok:
                absent = slot.images_missing
                missing.update(absent)
                state["images_missing"] = absent
                default_ok = default_ok or (state["ok"] and DEFAULT_RUNTIME not in absent)
            engines.append(state)
        return {
            "ok": default_ok,
            "engine": any(e["ok"] for e in engines),
            "engines": engines,
            "image": self.specs[DEFAULT_RUNTIME].image,
            "image_present": default_ok,
            "runtimes_missing": sorted(missing),  # on some engine: runs of these may be unavailable
            "runtime": self.settings.runtime,
            "pool": self.pool.state(),
            "pools": {name: sum(slot.pools[name].ready for slot in self.slots) for name in self.specs},
        }

    async def runtime_list(self) -> list[dict[str, Any]]:
        """``GET /runtimes``: each runtime with the versions its image actually holds (cached)."""
        now = time.monotonic()
        if self._runtime_info is not None and now - self._runtime_info[0] < RUNTIME_INFO_TTL_S:
            return self._runtime_info[1]
        listing: list[dict[str, Any]] = []
        complete = True
        engine = next((slot.engine for slot in self.slots if slot.ok), self.engine)
        for name, runtime in self.runtimes.items():
            try:
                info = await engine.runtime_info(runtime.image)
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
        return sum(pool.ready for slot in self.slots for pool in slot.pools.values())

    @property
    def capacity(self) -> int:
        return sum(slot.engine.capacity for slot in self.slots if slot.ok)

    def choose(self) -> EngineSlot:
        """The healthy engine with the most free capacity (warm sandboxes break a tie)."""
        healthy = [slot for slot in self.slots if slot.ok]
        if not healthy:
            raise Unavailable("no sandbox engine answers")
        return max(healthy, key=lambda slot: (slot.free, slot.pools[DEFAULT_RUNTIME].ready))

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
        slot = self.choose()
        slot.active += 1
        try:
            sandbox, _warm = await slot.pools[spec.runtime].acquire()
        except Unavailable:
            slot.active -= 1
            slot.check_now.set()  # the engine may be gone: look now rather than at the next tick
            raise
        except BaseException:
            slot.active -= 1
            raise
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
        except Unavailable:
            slot.check_now.set()
            raise
        finally:
            slot.active -= 1
            slot.engine.discard(sandbox)
            self.trim_heap_when_idle()

    def trim_heap_when_idle(self) -> None:
        """Memory was let go (a run ended, or a finished run kept for a resume was forgotten): return
        the freed heap to the system once no run is active (``app.sandbox.heap``)."""
        self.heap.run_ended(lambda: sum(s.active for s in self.slots))
