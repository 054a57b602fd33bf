"""The Docker engine behind the engine-neutral ``Engine`` protocol: the orchestration.

Each job lives in its own module: the HTTP calls (``wire``, on the event loop, Unix or TLS), the
attach stream (``attach``), the container's lockdown (``lockdown``), ownership and orphans
(``ownership``), exits and OOMs (``judge``), resource figures (``accounting``), one sandbox
(``sandbox``). Here they are put together: one start path (create, attach before start so no
early output is missed, start, the bootstrap on stdin), removal that survives cancellation,
reaping, and health. No engine call holds a thread.

A server can start while the engine is down and recovers by itself when it answers. Every engine
failure becomes ``Unavailable`` naming the call and the engine's address, with the traceback logged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

from app.errors import Unavailable
from app.sandbox.docker.accounting import ParentCgroups
from app.sandbox.docker.cgroups import CgroupTree
from app.sandbox.docker.image import info_from_labels
from app.sandbox.docker.lockdown import SECCOMP_OPT as SECCOMP_OPT  # re-exported: tests name it here
from app.sandbox.docker.lockdown import SECCOMP_RESOURCE, create_body, encode
from app.sandbox.docker.oomwatch import OomWatch
from app.sandbox.docker.ownership import (
    LABEL_INSTANCE,
    LABEL_LEASE,
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_POOL,
    LABEL_RUNTIME,
    LEASE_MARGIN_S,
    is_orphan,
    owner_id,
)
from app.sandbox.docker.ownership import _process_start_time as _process_start_time  # re-exported
from app.sandbox.docker.ownership import owner_is_alive as owner_is_alive  # re-exported
from app.sandbox.docker.sandbox import DockerSandbox
from app.sandbox.docker.wire import Address, EngineAddressError, EngineWire, WireNotFound, parse_engine_url
from app.sandbox.interface import EngineHealth, SandboxSpec
from app.sandbox.runtimes import RUNSC_PIDS_HEADROOM as RUNSC_PIDS_HEADROOM  # re-exported: tests name it here
from app.settings import Settings

T = TypeVar("T")
log = logging.getLogger(__name__)

__all__ = [
    "LABEL_INSTANCE",
    "LABEL_LEASE",
    "LABEL_MANAGED",
    "LABEL_OWNER",
    "LABEL_POOL",
    "LABEL_RUNTIME",
    "DockerEngine",
    "DockerSandbox",
    "owner_id",
]

SECCOMP_PROFILE_PATH = SECCOMP_RESOURCE
REMOVE_RETRY_DELAYS_S = (0.0, 0.1, 0.5, 2.0, 5.0, 10.0)
DISCARD_EOF_WAIT_S = 0.25  # a used sandbox's own end, awaited before its removal (else it is killed)


def _engine_now(info: dict[str, Any]) -> float:
    """The engine's clock (leases are compared with the engine's own creation times)."""
    text = str(info.get("SystemTime", ""))
    try:  # RFC 3339 with nanoseconds: 2026-12-01T02:53:00.123456789Z
        head, _, rest = text.partition(".")
        zone = rest.lstrip("0123456789") or "Z"
        return datetime.fromisoformat(head + zone.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


class DockerEngine:
    """Creates, watches and removes sandbox containers on one Docker engine."""

    def __init__(self, settings: Settings, *, host: str | None = None, owner: str | None = None) -> None:
        self.settings = settings
        docker = settings.docker()
        self.host = host if host is not None else docker.host
        self.name = self.host or "local"
        self.capacity = settings.engine_capacity or settings.max_concurrent_runs
        self.owner = owner or owner_id()
        self.instance = uuid.uuid4().hex[:12]
        # a sandbox never lives longer than a pool's idle limit plus the longest run: past that
        # (and a margin), one still there has lost its server, wherever that server ran
        self.lease_s = int(settings.pool_idle_max_s + settings.timeout_max_s + LEASE_MARGIN_S)
        self._address_error: str | None = None
        address: Address = ""
        context: ssl.SSLContext | None = None
        try:
            address, context = parse_engine_url(self.host, docker.tls_dir)
        except (EngineAddressError, OSError) as exc:  # OSError: an unreadable TLS directory
            self._address_error = f"the engine {self.name} cannot be used: {exc}"
            log.error("%s", self._address_error)
        self.wire = EngineWire(address, context=context)
        self._cleanup: set[asyncio.Task[None]] = set()
        self._unremoved: set[str] = set()  # removals the engine refused every time: retried at each reap
        self._orphan_starts: set[asyncio.Future[DockerSandbox]] = set()
        # each sandbox's own UID:GID, never one a live sandbox of this server has: per-user kernel
        # limits (inotify instances, pipe buffers, mqueue bytes) are then one run's, not all runs'
        self._uid_range = range(docker.uid_base, docker.uid_base + docker.uid_count)
        self._live_uids: set[int] = set()
        self._uid_of: dict[str, int] = {}  # container id -> its UID, released on removal
        self.on_engine_error: Callable[[BaseException], None] = lambda exc: None
        # resources: parent cgroups where this server sees the engine's tree, else the stats API
        self.parents: ParentCgroups | None = None  # where parents are made and removed
        self.cgroups: CgroupTree | None = None  # measuring by cgroup (None: by the stats API)
        self.usage_source: str | None = None  # settled on the first start or reap
        self._settling = asyncio.Lock()

    # -- engine calls --------------------------------------------------------------------------------
    async def wired(self, what: str, call: Awaitable[T]) -> T:
        """Await one engine call; a failure becomes ``Unavailable`` naming the call and the engine,
        and the log has the traceback. ``WireNotFound`` passes through for callers that expect it."""
        if self._address_error is not None:
            if isinstance(call, Coroutine):
                call.close()
            raise Unavailable(self._address_error)
        try:
            return await call
        except WireNotFound:
            raise
        except (OSError, ValueError, KeyError) as exc:
            self.on_engine_error(exc)
            message = f"the sandbox engine at {self.wire.where} failed to {what}: {type(exc).__name__}: {exc}"
            log.warning("%s", message, exc_info=True)
            raise Unavailable(message) from exc

    # -- resource accounting -------------------------------------------------------------------------
    async def _settle_usage_source(self) -> None:
        """Once: measure by parent cgroup if this server sees the engine's tree, else by stats API."""
        if self.usage_source is not None:
            return
        async with self._settling:
            if self.usage_source is not None:
                return
            info = await self.wired("read its info", self.wire.info())
            tree, why = CgroupTree.detect(
                local=self.wire.local,
                driver=info.get("CgroupDriver"),
                version=str(info.get("CgroupVersion") or "1"),  # engines before 20.10 only knew v1
            )
            if tree is not None:
                self.parents = ParentCgroups(tree, self.capacity + 8)
            self.cgroups = tree
            self.usage_source = why if tree is not None else f"stats api ({why})"
            log.info("resource figures from %s", self.usage_source)

    def _fall_back_to_stats_api(self, why: str) -> None:
        if self.cgroups is not None:
            self.cgroups = None
            self.usage_source = f"stats api ({why})"
            log.warning("resource figures from %s", self.usage_source)

    def sweep_parents(self, *, mine: bool) -> int:
        return self.parents.sweep(mine=mine) if self.parents is not None else 0

    # -- sandboxes -----------------------------------------------------------------------------------
    def labels(self, spec: SandboxSpec, pooled: bool) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_OWNER: self.owner,
            LABEL_POOL: str(pooled).lower(),
            LABEL_RUNTIME: spec.runtime,
            LABEL_INSTANCE: self.instance,
            LABEL_LEASE: str(spec.lease_s or self.lease_s),  # a session's covers its lifetime
        }

    def container_body(
        self, spec: SandboxSpec, pooled: bool, cgroup_parent: str | None = None, uid: int | None = None
    ) -> dict[str, Any]:
        return create_body(
            spec,
            runtime=self.settings.runtime,
            labels=self.labels(spec, pooled),
            cgroup_parent=cgroup_parent,
            user=f"{uid}:{uid}" if uid is not None else None,
        )

    def _take_uid(self) -> int:
        """A random UID from the range that no live sandbox of this server has (a set of at most
        capacity + pool entries in a range of a million: a retry is rare, a loop never long)."""
        if len(self._live_uids) >= len(self._uid_range):
            raise Unavailable(f"every UID of SCE_SANDBOX_UID_COUNT ({len(self._uid_range)}) is in use")
        while True:
            uid = self._uid_range[secrets.randbelow(len(self._uid_range))]
            if uid not in self._live_uids:
                self._live_uids.add(uid)
                return uid

    def _release_uid(self, container_id: str) -> None:
        uid = self._uid_of.pop(container_id, None)
        if uid is not None:
            self._live_uids.discard(uid)

    async def _start(self, spec: SandboxSpec, pooled: bool) -> DockerSandbox:
        await self._settle_usage_source()
        parents = self.parents
        parent = None
        if parents is not None:
            try:
                parent = parents.take()
            except OSError as exc:  # accounting never fails a run: this one is measured by the stats API
                log.warning("could not make a parent cgroup (%s); stats API for this sandbox", exc, exc_info=True)
        uid = self._take_uid()
        try:
            body = encode(self.container_body(spec, pooled, parent, uid))
            container_id = await self.wired("create a sandbox", self.wire.create(body))
        except BaseException:
            self._live_uids.discard(uid)
            if parents is not None and parent is not None:
                parents.drop(parent)
            raise
        self._uid_of[container_id] = uid  # released once the container is removed
        if parents is not None and parent is not None:
            parents.by_container[container_id] = parent  # removed with the container, whatever happens next
        stream = None
        try:
            short = container_id[:12]
            stream = await self.wired(f"attach to {short}", self.wire.attach(container_id))  # before start
            sandbox = DockerSandbox(self, spec, container_id, stream, parent)
            await self.wired(f"start {short}", self.wire.start(container_id))
            if spec.stdin_preamble:  # the bootstrap, ahead of any program
                await self.wired(f"write to {short}", stream.send(spec.stdin_preamble))
        except BaseException:
            if stream is not None:
                stream.close()
            self._spawn_cleanup(self._remove(container_id))
            raise
        placed = parents is None or parent is None or self.cgroups is None or parents.tree.holds(parent, container_id)
        if not placed:
            self._fall_back_to_stats_api("the runtime did not place the sandbox in its parent cgroup")
        elif parents is not None and parent is not None and parents.tree.version == 1:
            try:
                sandbox.oom_watch = OomWatch(parents.tree.memory_leaf(parent, container_id))
            except OSError as exc:  # the judgement falls back to the engine's flag
                log.debug("no OOM watch on %s: %s", container_id[:12], exc)
        return sandbox

    async def start_sandbox(self, spec: SandboxSpec, *, pooled: bool = False) -> DockerSandbox:
        """A new container with the interpreter started and waiting for a program.

        The start runs on (in its task) if the caller is cancelled meanwhile (a client that leaves
        during a cold start); the sandbox it makes is then discarded, never leaked.
        """
        starting = asyncio.ensure_future(self._start(spec, pooled))
        try:
            return await asyncio.shield(starting)
        except WireNotFound as exc:
            raise Unavailable(f"the sandbox image {spec.image!r} is missing on {self.name}: {exc}") from exc
        except asyncio.CancelledError:
            self._orphan_starts.add(starting)
            starting.add_done_callback(self._discard_if_started)
            raise

    def _discard_if_started(self, starting: asyncio.Future[DockerSandbox]) -> None:
        self._orphan_starts.discard(starting)
        if not starting.cancelled() and starting.exception() is None:
            self.discard(starting.result())

    def discard(self, sandbox: Any) -> None:
        """Kill and remove a sandbox in the background; survives the caller's cancellation."""
        assert isinstance(sandbox, DockerSandbox)
        self._spawn_cleanup(self._discard(sandbox))

    def _spawn_cleanup(self, cleanup: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(cleanup)
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    async def _discard(self, sandbox: DockerSandbox) -> None:
        # A sandbox that ran a program is usually ending by itself (its exit was reported on the
        # program's own end record): once its output stream ends it is gone, and removing a dead
        # container spares the engine a kill (a runc call of its own).
        if sandbox.delivered:
            await sandbox.until_eof(DISCARD_EOF_WAIT_S)
        sandbox.close_socket()
        await self._remove(sandbox.id)

    async def _remove(self, container_id: str) -> None:
        # A container that exits by itself while a forced removal kills it can make the engine
        # refuse that removal (409/500, "is not running", "already in progress"): asked again, it
        # removes it. One another server removed meanwhile (404) is gone: fine.
        for delay in REMOVE_RETRY_DELAYS_S:
            await asyncio.sleep(delay)
            try:
                await self.wired(f"remove {container_id[:12]}", self.wire.remove(container_id))
                self._release_uid(container_id)
                break
            except WireNotFound:
                self._release_uid(container_id)
                break
            except Unavailable as exc:
                log.info("removing %s failed (%s); trying again", container_id[:12], exc.message)
        else:
            # kept, and tried again at every reap (this server's own leftovers are no orphans)
            self._unremoved.add(container_id)
            log.warning("could not remove container %s; the next reap will", container_id[:12])
        if self.parents is not None:
            await self.parents.release(container_id)

    async def drain_cleanup(self) -> None:
        """Wait for every background removal, including of starts whose caller went away."""
        while self._cleanup or self._orphan_starts:
            await asyncio.gather(*self._cleanup, *self._orphan_starts, return_exceptions=True)

    # -- engine state ------------------------------------------------------------------------------
    async def ping(self) -> bool:
        try:
            return await self.wired("answer a ping", self.wire.ping())
        except (Unavailable, WireNotFound):
            return False

    async def image_present(self, image: str) -> bool:
        try:
            await self.wired(f"inspect the image {image}", self.wire.image(image))
            return True
        except WireNotFound:
            return False

    async def runtime_info(self, image: str) -> dict[str, object] | None:
        """What the image's build recorded (Python and package versions); None if it is missing."""
        try:
            info = await self.wired(f"inspect the image {image}", self.wire.image(image))
        except WireNotFound:
            return None
        return info_from_labels(dict((info.get("Config") or {}).get("Labels") or {}))

    async def health(self) -> EngineHealth:
        return EngineHealth(self.name, await self.ping())

    async def runtimes(self) -> list[str]:
        info = await self.wired("read its info", self.wire.info())
        return sorted(info.get("Runtimes", {}))

    async def engine_now(self) -> float:
        return _engine_now(await self.wired("read its info", self.wire.info()))

    async def _managed(self) -> list[dict[str, Any]]:
        # only containers a server made carry an owner (the image's own labels reach every container)
        return await self.wired("list sandboxes", self.wire.containers(f"{LABEL_MANAGED}=true"))

    async def reap_orphans(self) -> int:
        """Remove sandboxes that lost their server (``ownership.is_orphan``), and this server's own
        leftovers whose removal failed before; then the parent cgroups of dead servers."""
        managed = await self._managed()
        now = await self.engine_now()
        orphans = [
            c["Id"] for c in managed if is_orphan(c.get("Labels") or {}, float(c.get("Created", now)), now, self.owner)
        ]
        leftovers, self._unremoved = list(self._unremoved), set()
        await asyncio.gather(*(self._remove(cid) for cid in orphans + leftovers))
        try:
            await self._settle_usage_source()
        except Unavailable:
            pass
        self.sweep_parents(mine=False)
        return len(orphans)

    async def remove_all_mine(self) -> int:
        await self.drain_cleanup()
        mine = [c["Id"] for c in await self._managed() if (c.get("Labels") or {}).get(LABEL_OWNER) == self.owner]
        await asyncio.gather(*(self._remove(cid) for cid in mine))
        return len(mine)

    async def close(self) -> None:
        try:
            await self.remove_all_mine()
        except Unavailable:
            pass
        self.sweep_parents(mine=True)
        self.wire.close()
