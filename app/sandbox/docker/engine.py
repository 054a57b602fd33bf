"""The Docker engine behind the engine-neutral ``Engine``/``Sandbox`` protocols.

Blocking SDK calls (create, start, kill, inspect, remove) run in a dedicated, bounded thread pool
so they never touch the event loop or starve asyncio's default executor, and no call is ever
left parked for the life of a run: the attach socket is driven non-blocking by the event loop
itself (streaming costs no thread), and a run's exit is learned from the end of its output
followed by short ``inspect`` calls, never from a ``wait()`` held open while the program runs.
(With 40 sleeping programs and 16 threads, held waits left no thread for the kills the timeouts
needed, and every run hung past its limit.)

The SDK client is made lazily, in the pool, on the first call: a server can start while the
engine is down and recovers by itself when it answers. Every container carries the project's
labels, with an owner label naming this server process so that a later server can tell orphans
from a live neighbour's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import os
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import docker.tls
import requests.exceptions
from docker.types import LogConfig, Ulimit

from app.core.exits import ExitObservation
from app.core.streams import Stream
from app.errors import Unavailable
from app.sandbox.docker.cgroups import CgroupTree, parent_name, parent_owner
from app.sandbox.docker.client import make_api
from app.sandbox.docker.framing import FrameError, FrameParser
from app.sandbox.docker.image import info_from_labels
from app.sandbox.docker.wire import EngineWire, create_body, wire_for
from app.sandbox.interface import EngineHealth, SandboxSpec, Usage
from app.sandbox.runtimes import RUNSC_PIDS_HEADROOM as RUNSC_PIDS_HEADROOM  # re-exported: tests name it here
from app.settings import Settings

T = TypeVar("T")
log = logging.getLogger(__name__)

LABEL_MANAGED = "sce.managed"
LABEL_OWNER = "sce.owner"
LABEL_POOL = "sce.pool"
LABEL_RUNTIME = "sce.runtime"
LABEL_INSTANCE = "sce.instance"  # a random id per server start: meaningful on any engine
LABEL_LEASE = "sce.lease_s"  # seconds after its creation past which any server may remove it
LEASE_MARGIN_S = 120
SANDBOX_USER = "10001:10001"
BASE_ENV = {
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "PYTHONDONTWRITEBYTECODE": "1",
}
OOM_FLAG_TRIES = 4
# A memory cgroup charges in batches of up to 64 pages; a peak this close to the limit is the limit.
OOM_PEAK_MARGIN_BYTES = 1 << 20
RUNSC_SENTRY_DIED = 2  # the exit status of a gVisor sandbox whose own kernel (the sentry) failed
OOM_FLAG_INTERVAL_S = 0.1
# After the output ends the engine reports the exit within milliseconds; inspect is polled with
# a short, growing interval (each call holds a thread for about a millisecond).
EXIT_POLL_FIRST_S = 0.002
EXIT_POLL_MAX_S = 0.1
# Resource figures. The final reading is taken at once when the engine has confirmed the exit, or
# when the program reported its own end (its interpreter is still finalizing: that is not counted);
# after a kill the engine has not confirmed, it waits this long at most for the processes to leave
# the cgroup, then reads.
FINAL_SETTLE_S = 0.005
FINAL_SETTLE_STEP_S = 0.001
# A parent cgroup the runtime has not released yet is removed again after these pauses; past them
# it is left for the next sweep (the server's stop, or the next start).
PARENT_REMOVE_DELAYS_S = (0.0, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
# An emptied parent still charged more than this is not reused: its next sandbox's peak would
# include it. runc leaves nothing; gVisor ~280 KiB of kernel memory, so its parents are made anew.
PARENT_LEFTOVER_MAX_BYTES = 256 * 1024
# Where the cgroup tree is out of sight: the stats API, sampled while the program runs. The engine
# paces one-shot reads to its own collection tick (1 s on 20.10), so a sample holds a thread of a
# separate pool for up to a second; the first one after a start answers in a few milliseconds.
STATS_SAMPLE_INTERVAL_S = 0.5
# cgroup v2 kernels before 5.19 have no memory.peak: memory.current is sampled this often instead.
PEAK_SAMPLE_INTERVAL_S = 0.1
# Docker's default seccomp profile minus ptrace, process_vm_*, kcmp, userfaultfd and io_uring
# (scripts/seccomp-profile generates seccomp.json and says why). Under runc only: runsc does not
# apply a container's seccomp profile to the guest (it implements those calls in its own kernel,
# which the host's filter around the sentry confines).
SECCOMP_PROFILE_PATH = Path(__file__).with_name("seccomp.json")
SECCOMP_OPT = "seccomp=" + json.dumps(
    {k: v for k, v in json.loads(SECCOMP_PROFILE_PATH.read_text()).items() if k != "comment"}, separators=(",", ":")
)
REMOVE_RETRY_DELAYS_S = (0.0, 0.1, 0.5, 2.0, 5.0, 10.0)
DISCARD_EOF_WAIT_S = 0.25  # a used sandbox's own end, awaited before its removal (else it is killed)
LOCAL_BASE_URL = "http+docker://localhost"  # docker-py's base URL for a unix socket
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
RECV_SIZE = 65536


def _process_start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_id(pid: int | None = None) -> str:
    """``host:pid:start-time`` names one server process for as long as it lives."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_process_start_time(pid)}"


def owner_is_alive(owner: str) -> bool:
    """An owner on this host is alive while its pid runs with the same start time.

    Owners on another host cannot be checked from here and are assumed alive.
    """
    try:
        host, pid, start = owner.rsplit(":", 2)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    return pid.isdigit() and _process_start_time(int(pid)) == start


def tls_config(directory: str | None) -> docker.tls.TLSConfig | None:
    """Mutual TLS for an engine on TCP: our client certificate, and the engine's checked against
    the CA. (An engine socket is root on its host: never reach one over plain TCP.)"""
    if not directory:
        return None
    return docker.tls.TLSConfig(
        client_cert=(os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")),
        ca_cert=os.path.join(directory, "ca.pem"),
        verify=True,
    )


class DockerSandbox:
    """One started container, its bootstrap waiting on stdin; used for exactly one run."""

    def __init__(
        self,
        engine: DockerEngine,
        spec: SandboxSpec,
        container_id: str,
        raw: Any,
        sock: socket.socket,
        cgroup_parent: str | None = None,
        early: bytes = b"",
    ):
        self.engine = engine
        self.spec = spec
        self.id = container_id
        self.created_at = time.monotonic()
        self._raw = raw  # keeps the SDK's response (and so the socket) alive; None on the wire
        self._sock = sock
        self._early = early  # stream bytes that came with the attach's answer (the wire)
        self._parser = FrameParser()
        self._closed = False
        self.killed = False  # by us: then a 137 is our SIGKILL, not a question for the OOM flag
        self.exited = False  # the engine has said so
        # resources: read from the parent cgroup when there is one, else from stats API samples
        self.cgroup_parent = cgroup_parent
        self._delivered = False
        self._cpu_base_ns: int | None = None  # CPU used before the program arrived (interpreter start)
        self._last: Usage = Usage()
        self._peak_seen: int | None = None
        self._sampler: asyncio.Task[None] | None = None

    def is_alive(self) -> bool:
        """A waiting bootstrap writes nothing, so a readable socket means the container is gone."""
        if self._closed:
            return False
        try:
            return self._sock.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    async def send(self, data: bytes) -> None:
        if not self._delivered:  # the program: CPU counts from here
            self._delivered = True
            self._begin_usage()
        await asyncio.get_running_loop().sock_sendall(self._sock, data)

    async def close_stdin(self) -> None:
        """Half-close: with StdinOnce the program sees EOF and its output keeps flowing."""
        if not self._closed:
            self._sock.shutdown(socket.SHUT_WR)

    async def recv(self) -> list[tuple[Stream, bytes]]:
        """Docker's multiplexed frames, parsed here; [] at the end of the stream."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self._early:
                    data, self._early = self._early, b""
                else:
                    data = await loop.sock_recv(self._sock, RECV_SIZE)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                return []
            try:
                chunks = self._parser.feed(data)
            except FrameError as exc:
                raise OSError(f"the engine's output stream is malformed: {exc}") from exc
            if chunks:
                return chunks

    async def kill(self) -> None:
        """SIGKILL the whole container; one that has already exited or gone is fine."""
        self.killed = True
        await self.engine.call(self.engine.kill_blocking, self.id)

    async def wait(self) -> ExitObservation:
        """Poll the container's state until it has stopped: the caller knows it is ending."""
        delay = EXIT_POLL_FIRST_S
        while True:
            state = await self._state()
            if not state.get("Running", False) and state.get("Status") in ("exited", "dead"):
                self.exited = True
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, EXIT_POLL_MAX_S)
        code = int(state.get("ExitCode", -1))
        oom = bool(state.get("OOMKilled"))
        if code == 137 and not oom and not self.killed:
            # gVisor's flag is sometimes never set (several OOMs at once): the parent cgroup says it
            oom = self._oom_in_parent()
        elif code == RUNSC_SENTRY_DIED and self.spec_runtime_is_runsc and not self.killed and self._oom_in_parent():
            # gVisor's sentry itself failed to get memory at the limit (a Go runtime fatal error,
            # exit 2) before the OOM killer chose it: the sandbox died of its memory limit
            return ExitObservation(code=137, oom_killed=True)
        if code == 137 and not oom and not self.killed:
            # The OOM flag can trail the exit (gVisor's often does): a 137 we did not cause is
            # looked at a few more times before it is called the program's own.
            for _ in range(OOM_FLAG_TRIES - 1):
                await asyncio.sleep(OOM_FLAG_INTERVAL_S)
                oom = bool((await self._state()).get("OOMKilled"))
                if oom:
                    break
        return ExitObservation(code=code, oom_killed=oom)

    @property
    def spec_runtime_is_runsc(self) -> bool:
        return self.engine.settings.runtime == "runsc"

    def _oom_in_parent(self) -> bool:
        """Whether the sandbox was killed at its memory limit, from the parent cgroup's record.

        cgroup v2 counts OOM kills hierarchically (``memory.events``). On v1 the counter
        (``memory.oom_control``'s ``oom_kill``) stays in the container's own cgroup, which is gone
        with it, and the parent has no limit to fail against; but its ``max_usage_in_bytes``
        survives, and a sandbox whose charge reached its limit (within one charge batch) and died of
        SIGKILL it did not get from us was killed by the OOM killer. Measured under runsc and runc:
        an OOM leaves the parent's peak just above the limit (128 MiB -> 134,230,016 bytes).

        Read from the tree the parent was made in even when figures come from the stats API: the
        parent still holds the sandbox, and a stats sample (up to a second old) misses a fast
        allocation. A parent the runtime did not place the sandbox in reads empty: no OOM.
        """
        tree = self.engine.cgroup_tree
        if tree is None or self.cgroup_parent is None:
            return False
        kills = tree.oom_kills(self.cgroup_parent)
        if kills is not None:
            return kills > 0
        peak = tree.read(self.cgroup_parent).memory_peak_bytes
        return peak is not None and peak >= self.spec.memory_mb * 1024 * 1024 - OOM_PEAK_MARGIN_BYTES

    async def _state(self) -> dict[str, Any]:
        try:
            info = await self.engine.call(self.engine.inspect_blocking, self.id)
        except docker.errors.NotFound:
            raise Unavailable("the sandbox was removed while its program ran") from None
        state: dict[str, Any] = info["State"]
        return state

    # -- resources -----------------------------------------------------------------------------------
    def _begin_usage(self) -> None:
        tree = self.engine.cgroups
        if tree is not None and self.cgroup_parent is not None:
            self._cpu_base_ns = tree.read(self.cgroup_parent).cpu_ns
            if tree.version == 2 and not tree.has_peak:
                self._start_sampler(self._sample_cgroup, PEAK_SAMPLE_INTERVAL_S)
        else:
            self._start_sampler(self._sample_api, STATS_SAMPLE_INTERVAL_S)

    def _start_sampler(self, sample: Callable[[], Any], interval: float) -> None:
        async def loop() -> None:
            while True:
                if not await sample():
                    return
                await asyncio.sleep(interval)  # a pace, not a wait for a state

        self._sampler = asyncio.get_running_loop().create_task(loop(), name=f"usage-{self.id[:12]}")

    def _stop_sampler(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None

    def _cpu_ms(self, cpu_ns: int | None) -> int | None:
        if cpu_ns is None:
            return None
        return max(0, round((cpu_ns - (self._cpu_base_ns or 0)) / 1e6))

    def _read_cgroup(self) -> Usage:
        tree = self.engine.cgroups
        assert tree is not None and self.cgroup_parent is not None
        r = tree.read(self.cgroup_parent)
        if r.memory_bytes is not None:
            self._peak_seen = max(self._peak_seen or 0, r.memory_bytes)
        return Usage(
            cpu_ms=self._cpu_ms(r.cpu_ns),
            memory_peak_bytes=r.memory_peak_bytes if r.memory_peak_bytes is not None else self._peak_seen,
            memory_bytes=r.memory_bytes,
            pids=r.pids,
        )

    async def _sample_cgroup(self) -> bool:
        self._read_cgroup()
        return True

    async def _sample_api(self) -> bool:
        """One stats API sample; False once the container is gone (its stats read as zeros)."""
        loop = asyncio.get_running_loop()
        try:
            stats = await loop.run_in_executor(self.engine.stats_executor(), self.engine.stats_blocking, self.id)
        except (*ENGINE_ERRORS, RuntimeError):
            return False
        memory = stats.get("memory_stats") or {}
        if not memory:
            return False
        # No baseline here: the engine paces samples to its collection tick (up to a second), so a
        # first sample may come after the program has run for a while. The interpreter's own start
        # (tens of milliseconds) is counted instead.
        cpu_ns = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        current = memory.get("usage")
        peak = max(memory.get("max_usage") or 0, current or 0, self._peak_seen or 0)  # v1 keeps a max itself
        self._peak_seen = peak or None
        self._last = Usage(
            cpu_ms=self._cpu_ms(cpu_ns),
            memory_peak_bytes=self._peak_seen,
            memory_bytes=current,
            pids=(stats.get("pids_stats") or {}).get("current"),
        )
        return True

    async def usage(self, *, final: bool) -> Usage:
        """Since the program arrived. From the parent cgroup: exact, read in microseconds (a final
        reading after an unconfirmed kill first lets the last processes leave, ``FINAL_SETTLE_S``
        at most). From the stats API: the latest sample, never a call (up to a second old)."""
        if self.engine.cgroups is None or self.cgroup_parent is None:
            if final:
                self._stop_sampler()
            return self._last
        usage = self._read_cgroup()
        if final:
            self._stop_sampler()
            loop = asyncio.get_running_loop()
            settle_by = loop.time() + FINAL_SETTLE_S
            while usage.pids and self.killed and not self.exited and loop.time() < settle_by:
                await asyncio.sleep(FINAL_SETTLE_STEP_S)
                usage = self._read_cgroup()
        return usage

    async def until_eof(self, limit_s: float) -> None:
        """Read and drop what is left of the output until it ends, ``limit_s`` at most."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(limit_s):
                while not self._closed and await loop.sock_recv(self._sock, RECV_SIZE):
                    pass

    def close_socket(self) -> None:
        self._stop_sampler()
        if not self._closed:
            self._closed = True
            self._sock.close()
            if self._raw is not None:
                with contextlib.suppress(OSError):
                    self._raw.close()


class DockerEngine:
    """Creates, watches and removes sandbox containers on one Docker engine."""

    def __init__(self, settings: Settings, *, host: str | None = None, owner: str | None = None) -> None:
        self.settings = settings
        self.host = host if host is not None else settings.docker_host
        self.name = self.host or "local"
        self.capacity = settings.engine_capacity or settings.max_concurrent_runs
        self.owner = owner or owner_id()
        self.instance = uuid.uuid4().hex[:12]
        # a sandbox never lives longer than a pool's idle limit plus the longest run: past that
        # (and a margin), one still there has lost its server, wherever that server ran
        self.lease_s = int(settings.pool_idle_max_s + settings.timeout_max_s + LEASE_MARGIN_S)
        self.threads = settings.engine_threads()
        self.executor = ThreadPoolExecutor(self.threads, thread_name_prefix="sce-engine")
        self._api: Any = None
        self._api_lock = threading.Lock()
        self._wire: EngineWire | None = None  # the per-run calls on the event loop (a Unix socket)
        self._wire_checked = False
        self._cleanup: set[asyncio.Task[None]] = set()
        self._unremoved: set[str] = set()  # removals the engine refused every time: retried at each reap
        self._orphan_starts: set[asyncio.Future[DockerSandbox]] = set()
        self.on_engine_error: Callable[[BaseException], None] = lambda exc: None
        # resources: the parent cgroups' tree when this server sees the engine's, else the stats API
        self.cgroups: CgroupTree | None = None  # measuring by cgroup (None: by the stats API)
        self.cgroup_tree: CgroupTree | None = None  # where parents are made and removed
        self.usage_source: str | None = None  # settled on the first start
        self._parents: dict[str, str] = {}  # container id -> its parent cgroup, until removed
        self._parents_left: set[str] = set()  # parents still busy when their container went
        self._free_parents: collections.deque[str] = collections.deque()  # emptied, for reuse (v1)
        self._free_parents_max = self.capacity + 8
        self._parent_tag = secrets.token_hex(3)  # this engine's parents, among its process's
        self._usage_lock = threading.Lock()
        self._stats_executor: ThreadPoolExecutor | None = None

    # -- the client, made on first use (in a pool thread: it may talk to the engine) ---------
    @property
    def api(self) -> Any:
        if self._api is None:
            with self._api_lock:
                if self._api is None:
                    tls = None
                    if self.host and self.host.startswith("tcp://"):
                        tls = tls_config(self.settings.docker_tls_dir)
                    self._api = make_api(self.host, tls, timeout=30, max_pool_size=self.threads)
        return self._api

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one blocking SDK call in the engine's own executor (errors as ``wired``)."""
        loop = asyncio.get_running_loop()
        return await self.wired(loop.run_in_executor(self.executor, functools.partial(fn, *args)))

    async def wired(self, call: Awaitable[T]) -> T:
        """Await one engine call (the wire's, or ``call``'s thread); engine failures -> Unavailable.

        ``NotFound`` passes through for the callers that expect it (a container already gone).
        """
        try:
            return await call
        except docker.errors.NotFound:
            raise
        except ENGINE_ERRORS as exc:
            self.on_engine_error(exc)
            raise Unavailable(f"the sandbox engine failed: {type(exc).__name__}") from exc

    async def wire(self) -> EngineWire | None:
        """The event-loop path for create, attach, start and remove, where the engine is on a Unix
        socket (``app.sandbox.docker.wire``); None: docker-py in the executor does them."""
        if not self._wire_checked:
            api = await self.call(lambda: self.api)  # made in a thread: it may ask the engine its version
            if not self._wire_checked:  # another start may have settled it meanwhile
                self._wire = wire_for(api) if self.settings.engine_wire else None
                self._wire_checked = True
        return self._wire

    def kill_blocking(self, container_id: str) -> None:
        try:
            self.api.kill(container_id)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: not running any more
                raise

    def inspect_blocking(self, container_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api.inspect_container(container_id)
        return result

    # -- resource accounting -------------------------------------------------------------------
    def _settle_usage_source(self) -> None:
        """Once: measure by parent cgroup if this server sees the engine's tree, else by stats API."""
        if self.usage_source is not None:
            return
        with self._usage_lock:
            if self.usage_source is not None:
                return
            info = self.api.info()
            tree, why = CgroupTree.detect(
                local=self.api.base_url == LOCAL_BASE_URL,
                driver=info.get("CgroupDriver"),
                version=str(info.get("CgroupVersion") or "1"),  # engines before 20.10 only knew v1
            )
            self.cgroups = self.cgroup_tree = tree
            self.usage_source = why if tree is not None else f"stats api ({why})"
            log.info("resource figures from %s", self.usage_source)

    def _fall_back_to_stats_api(self, why: str) -> None:
        if self.cgroups is not None:
            self.cgroups = None
            self.usage_source = f"stats api ({why})"
            log.warning("resource figures from %s", self.usage_source)

    def stats_executor(self) -> ThreadPoolExecutor:
        """A pool apart from the engine calls: a stats sample can hold its thread for a second."""
        if self._stats_executor is None:
            self._stats_executor = ThreadPoolExecutor(self.capacity + 1, thread_name_prefix="sce-stats")
        return self._stats_executor

    def stats_blocking(self, container_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api.stats(container_id, stream=False, one_shot=True)
        return result

    def _take_parent(self, tree: CgroupTree) -> str:
        """A parent cgroup for a new sandbox: an emptied one of this engine's if there is one."""
        while True:
            try:
                parent = self._free_parents.popleft()
            except IndexError:
                break
            if tree.reset_peak(parent, PARENT_LEFTOVER_MAX_BYTES):
                return parent
            with contextlib.suppress(OSError):
                tree.remove(parent)
        parent = parent_name(os.getpid(), _process_start_time(os.getpid()), self._parent_tag)
        tree.create(parent)
        return parent

    async def _release_parent(self, parent: str) -> None:
        """Keep an emptied parent for the next sandbox (v1), else remove it."""
        tree = self.cgroup_tree
        if tree is None:
            return
        if tree.reusable and len(self._free_parents) < self._free_parents_max and tree.is_empty(parent):
            self._free_parents.append(parent)
            return
        await self._remove_parent(parent)

    async def _remove_parent(self, parent: str) -> None:
        tree = self.cgroup_tree
        if tree is None:
            return
        for delay in PARENT_REMOVE_DELAYS_S:
            await asyncio.sleep(delay)
            try:
                if tree.remove(parent):
                    self._parents_left.discard(parent)
                    return
            except OSError as exc:
                log.warning("could not remove cgroup %s: %s", parent, exc)
                break
        self._parents_left.add(parent)

    def sweep_parents(self, *, mine: bool) -> int:
        """Remove empty parent cgroups of servers that no longer run (``mine``: this engine's too,
        never those of another engine in the same process)."""
        tree = self.cgroup_tree
        if tree is None:
            return 0
        me = (os.getpid(), _process_start_time(os.getpid()) or "x")
        my_prefix = f"{parent_name(*me, self._parent_tag)[:-12]}"
        removed = 0
        for name in tree.parents():
            owner = parent_owner(name)
            if owner is None or name in self._parents.values():
                continue
            if (mine and name.startswith(my_prefix)) or (owner != me and _process_start_time(owner[0]) != owner[1]):
                with contextlib.suppress(OSError):
                    if tree.remove(name):
                        removed += 1
                        self._parents_left.discard(name)
        if mine:
            self._free_parents.clear()
        return removed

    # -- sandboxes -----------------------------------------------------------------------------
    def _container_config(self, spec: SandboxSpec, pooled: bool, cgroup_parent: str | None = None) -> dict[str, Any]:
        s = self.settings
        host_config = self.api.create_host_config(
            cgroup_parent=f"/{cgroup_parent}" if cgroup_parent else None,
            network_mode="none",
            mem_limit=f"{spec.memory_mb}m",
            memswap_limit=f"{spec.memory_mb}m",
            pids_limit=spec.pids,  # under runsc with RUNSC_PIDS_HEADROOM already (app/sandbox/runtimes.py)
            nano_cpus=int(spec.cpus * 1e9),
            ulimits=[Ulimit(name="nofile", soft=spec.nofile, hard=spec.nofile)],
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={spec.tmpfs_mb}m"},
            shm_size=f"{spec.tmpfs_mb}m",
            ipc_mode="private",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges", *(() if s.runtime == "runsc" else (SECCOMP_OPT,))],
            init=True,
            log_config=LogConfig(type="none"),
            runtime=s.runtime,
        )
        return {
            "image": spec.image,
            "command": list(spec.command),
            # No networking at all, not even the engine's "none" network: the runtime still gives
            # the sandbox a namespace of its own with only `lo` (tests/security), but the engine
            # skips making, bind-mounting and tearing down a network sandbox for it, which cost
            # ~110 ms of CPU per container here and capped runs/s (docs/PERFORMANCE.md).
            "network_disabled": True,
            "user": SANDBOX_USER,
            "working_dir": "/tmp",
            "environment": {**BASE_ENV, **dict(spec.environment)},
            "stdin_open": True,  # with detach=False the SDK also sets StdinOnce: EOF without losing output
            "detach": False,
            "tty": False,
            "labels": {
                LABEL_MANAGED: "true",
                LABEL_OWNER: self.owner,
                LABEL_POOL: str(pooled).lower(),
                LABEL_RUNTIME: spec.runtime,
                LABEL_INSTANCE: self.instance,
                LABEL_LEASE: str(spec.lease_s or self.lease_s),  # a session's covers its lifetime
            },
            "host_config": host_config,
        }

    @contextlib.contextmanager
    def _parent_for_create(self) -> Iterator[str | None]:
        """A parent cgroup for the container about to be created (None without a tree), removed
        again if the create fails; once it succeeds, ``_adopt`` ties the two together."""
        tree = self.cgroup_tree
        parent = self._take_parent(tree) if tree is not None else None
        try:
            yield parent
        except BaseException:
            if tree is not None and parent is not None:
                with contextlib.suppress(OSError):
                    tree.remove(parent)
            raise

    def _adopt(self, container_id: str, parent: str | None) -> None:
        if parent is not None:
            self._parents[container_id] = parent  # removed with the container, whatever happens next

    def _check_placed(self, container_id: str, parent: str | None) -> None:
        tree = self.cgroup_tree
        if tree is not None and parent is not None and not tree.holds(parent, container_id):
            self._fall_back_to_stats_api("the runtime did not place the sandbox in its parent cgroup")

    def _start_blocking(self, spec: SandboxSpec, pooled: bool) -> DockerSandbox:
        self._settle_usage_source()
        with self._parent_for_create() as parent:
            container_id: str = self.api.create_container(**self._container_config(spec, pooled, parent))["Id"]
        self._adopt(container_id, parent)
        try:
            # attach before start so no early output is missed
            raw = self.api.attach_socket(container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            sock: socket.socket = getattr(raw, "_sock", raw)
            if isinstance(sock, ssl.SSLSocket):
                # the event loop's sock_* calls take plain sockets only, and a TLS stream cannot be
                # half-closed for stdin's end: refused with a sentence rather than failing inside
                raw.close()
                raise Unavailable(
                    f"runs on an engine reached over TLS ({self.name}) are not supported yet; "
                    "reach it through an ssh-forwarded unix socket (docs/DEPLOY.md)"
                )
            sandbox = DockerSandbox(self, spec, container_id, raw, sock, parent)
            self.api.start(container_id)
            if spec.stdin_preamble:
                sock.sendall(spec.stdin_preamble)  # the bootstrap, ahead of any program (a socket buffer's worth)
            sock.setblocking(False)
        except BaseException:
            self.api.remove_container(container_id, force=True)
            raise
        self._check_placed(container_id, parent)
        return sandbox

    async def _start_wired(self, wire: EngineWire, spec: SandboxSpec, pooled: bool) -> DockerSandbox:
        """``_start_blocking`` on the event loop: the same steps and the same container."""
        if self.usage_source is None:
            await self.call(self._settle_usage_source)
        with self._parent_for_create() as parent:
            body = create_body(self.api, self._container_config(spec, pooled, parent))
            container_id = await self.wired(wire.create(body))
        self._adopt(container_id, parent)
        attached: socket.socket | None = None
        try:
            sock, early = await self.wired(wire.attach(container_id))  # before start: no early output missed
            attached = sock
            sandbox = DockerSandbox(self, spec, container_id, None, sock, parent, early)
            await self.wired(wire.start(container_id))
            if spec.stdin_preamble:
                await asyncio.get_running_loop().sock_sendall(sock, spec.stdin_preamble)
        except BaseException:
            if attached is not None:
                attached.close()
            self._spawn_cleanup(self._remove(container_id))
            raise
        self._check_placed(container_id, parent)
        return sandbox

    async def start_sandbox(self, spec: SandboxSpec, *, pooled: bool = False) -> DockerSandbox:
        """A new container with the interpreter started and waiting for a program.

        The start runs on (in its task or thread) if the caller is cancelled meanwhile (a client
        that leaves during a cold start); the sandbox it makes is then discarded, never leaked.
        """
        wire = await self.wire()
        if wire is not None:
            starting = asyncio.ensure_future(self._start_wired(wire, spec, pooled))
        else:
            starting = asyncio.ensure_future(self.call(self._start_blocking, spec, pooled))
        try:
            return await asyncio.shield(starting)
        except docker.errors.NotFound as exc:
            raise Unavailable(f"the sandbox image {spec.image!r} is missing") from exc
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
        if sandbox._delivered:
            await sandbox.until_eof(DISCARD_EOF_WAIT_S)
        sandbox.close_socket()
        await self._remove(sandbox.id)

    async def _remove(self, container_id: str) -> None:
        # A container that exits by itself while a forced removal kills it (a run reported on the
        # program's own end record) can make the engine refuse that removal (409/500, "is not
        # running", "already in progress"): asked again, it removes it.
        for delay in REMOVE_RETRY_DELAYS_S:
            await asyncio.sleep(delay)
            try:
                if self._wire is not None:
                    await self.wired(self._wire.remove(container_id))
                else:
                    await self.call(lambda: self.api.remove_container(container_id, force=True))
                break
            except docker.errors.NotFound:
                break
            except Unavailable as exc:
                log.info("removing %s failed (%s); trying again", container_id[:12], exc.__cause__)
        else:
            # kept, and tried again at every reap (this server's own leftovers are no orphans)
            self._unremoved.add(container_id)
            log.warning("could not remove container %s; the next reap will", container_id[:12])
        parent = self._parents.pop(container_id, None)
        if parent is not None:
            await self._release_parent(parent)

    async def drain_cleanup(self) -> None:
        """Wait for every background removal, including of starts whose caller went away."""
        while self._cleanup or self._orphan_starts:
            await asyncio.gather(*self._cleanup, *self._orphan_starts, return_exceptions=True)

    # -- engine state ----------------------------------------------------------------------------
    async def ping(self) -> bool:
        try:
            return bool(await self.call(lambda: self.api.ping()))
        except (Unavailable, docker.errors.NotFound):
            return False

    async def image_present(self, image: str) -> bool:
        try:
            await self.call(lambda: self.api.inspect_image(image))
            return True
        except docker.errors.NotFound:
            return False

    async def runtime_info(self, image: str) -> dict[str, object] | None:
        """What the image's build recorded (Python and package versions); None if it is missing."""
        try:
            info = await self.call(lambda: self.api.inspect_image(image))
        except docker.errors.NotFound:
            return None
        return info_from_labels(dict((info.get("Config") or {}).get("Labels") or {}))

    async def health(self) -> EngineHealth:
        ok = await self.ping()
        return EngineHealth(self.name, ok)

    async def runtimes(self) -> list[str]:
        info = await self.call(lambda: self.api.info())
        return sorted(info.get("Runtimes", {}))

    def _managed(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=true"})
        return result

    def _engine_now(self) -> float:
        """The engine's clock (leases are compared with the engine's own creation times)."""
        text = str(self.api.info().get("SystemTime", ""))
        try:  # RFC 3339 with nanoseconds: 2026-12-01T02:53:00.123456789Z
            head, _, rest = text.partition(".")
            zone = rest.lstrip("0123456789") or "Z"
            return datetime.fromisoformat(head + zone.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return time.time()

    async def reap_orphans(self) -> int:
        """Remove sandboxes that lost their server: a dead process on this host, or an expired lease.

        Never another live server's (on a shared engine every server reaps): a sandbox is removed
        only if its owner is a process on this host that no longer runs, or it has outlived the
        longest life its server could give it (``sce.lease_s`` after its creation, by the engine's
        clock), which covers servers on other hosts without any clock of theirs.
        """
        # only containers a server made carry an owner (the image's own labels reach every container)
        managed = await self.call(self._managed)
        now = await self.call(self._engine_now)

        def lost(c: dict[str, Any]) -> bool:
            labels = c.get("Labels") or {}
            owner = labels.get(LABEL_OWNER)
            if owner is None or owner == self.owner:
                return False
            lease = labels.get(LABEL_LEASE, "")
            expired = lease.isdigit() and float(c.get("Created", now)) + int(lease) < now
            return expired or not owner_is_alive(owner)

        orphans = [c["Id"] for c in managed if lost(c)]
        leftovers, self._unremoved = list(self._unremoved), set()
        await asyncio.gather(*(self._remove(cid) for cid in orphans + leftovers))
        with contextlib.suppress(Unavailable):
            await self.call(self._settle_usage_source)
        self.sweep_parents(mine=False)
        return len(orphans)

    async def remove_all_mine(self) -> int:
        await self.drain_cleanup()
        mine = [c["Id"] for c in await self.call(self._managed) if c["Labels"].get(LABEL_OWNER) == self.owner]
        await asyncio.gather(*(self._remove(cid) for cid in mine))
        return len(mine)

    async def close(self) -> None:
        try:
            await self.remove_all_mine()
        except Unavailable:
            pass
        self.sweep_parents(mine=True)
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self._stats_executor is not None:
            self._stats_executor.shutdown(wait=False, cancel_futures=True)
        if self._wire is not None:
            self._wire.close()
        if self._api is not None:
            self._api.close()
