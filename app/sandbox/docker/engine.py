"""The Docker engine behind one small interface: start a sandbox, talk to it, end it.

Blocking SDK calls (create, start, kill, wait, remove) run in a dedicated, bounded thread pool
so they never touch the event loop or starve asyncio's default executor. The attach socket is
taken out of the SDK and driven non-blocking by the event loop itself, so streaming output
costs no thread at all. Every container carries the project's labels, with an owner label that
names this server process so that a later server can tell orphans from a live neighbour's.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig, Ulimit

from app.errors import Unavailable
from app.sandbox.bootstrap import BOOTSTRAP
from app.settings import Settings

T = TypeVar("T")

LABEL_MANAGED = "sce.managed"
LABEL_OWNER = "sce.owner"
LABEL_RUN = "sce.run"
LABEL_POOL = "sce.pool"
SANDBOX_USER = "10001:10001"
SANDBOX_ENV = {
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "PYTHONDONTWRITEBYTECODE": "1",
}
OOM_FLAG_TRIES = 4
OOM_FLAG_INTERVAL_S = 0.1
# gVisor's own threads (~40 at idle) count against the container's pids cgroup; at the plain limit
# its Go runtime cannot start a thread and the whole sandbox dies (exit 2, output lost). The guest's
# processes then need this much room on top of the limit the program is promised.
RUNSC_PIDS_HEADROOM = 192
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


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


@dataclass(frozen=True)
class ExitStatus:
    code: int
    oom_killed: bool


class Sandbox:
    """One started container, its bootstrap waiting on stdin; used for exactly one run."""

    def __init__(self, engine: DockerEngine, container_id: str, raw: Any, sock: socket.socket) -> None:
        self.engine = engine
        self.container_id = container_id
        self.created_at = time.monotonic()
        self._raw = raw  # keeps the SDK's response (and so the socket) alive
        self._sock = sock
        self._closed = False
        self.killed = False  # by us: then a 137 is our SIGKILL, not a question for the OOM flag

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
        await asyncio.get_running_loop().sock_sendall(self._sock, data)

    async def close_stdin(self) -> None:
        """Half-close: with StdinOnce the program sees EOF and its output keeps flowing."""
        if not self._closed:
            self._sock.shutdown(socket.SHUT_WR)

    async def recv(self, size: int = 65536) -> bytes:
        """Next bytes of the multiplexed output stream; b"" at its end."""
        try:
            return await asyncio.get_running_loop().sock_recv(self._sock, size)
        except (ConnectionResetError, BrokenPipeError):
            return b""

    async def kill(self) -> None:
        """SIGKILL the whole container; one that has already exited is fine."""
        self.killed = True
        try:
            await self.engine.call(self.engine.api.kill, self.container_id)
        except docker.errors.NotFound:
            pass
        except Unavailable as exc:
            cause = exc.__cause__
            if not (isinstance(cause, docker.errors.APIError) and cause.status_code == 409):
                raise

    async def wait(self) -> ExitStatus:
        result = await self.engine.call(functools.partial(self.engine.api.wait, self.container_id, timeout=None))
        code = int(result.get("StatusCode", -1))
        oom = False
        if code == 137:
            # The OOM flag can trail the exit (gVisor's often does): a 137 we did not cause is
            # looked at a few more times before it is called the program's own.
            tries = 1 if self.killed else OOM_FLAG_TRIES
            for attempt in range(tries):
                state = (await self.engine.call(self.engine.api.inspect_container, self.container_id))["State"]
                oom = bool(state.get("OOMKilled"))
                if oom or attempt == tries - 1:
                    break
                await asyncio.sleep(OOM_FLAG_INTERVAL_S)
        return ExitStatus(code=code, oom_killed=oom)

    def close_socket(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close()
            try:
                self._raw.close()
            except OSError:
                pass


class DockerEngine:
    """Creates, watches and removes sandbox containers on one engine."""

    def __init__(self, settings: Settings, owner: str | None = None) -> None:
        self.settings = settings
        self.owner = owner or owner_id()
        self.executor = ThreadPoolExecutor(settings.executor_threads, thread_name_prefix="sce-engine")
        kwargs: dict[str, Any] = {"timeout": 30, "max_pool_size": settings.executor_threads}
        if settings.docker_host:
            self.api = docker.APIClient(base_url=settings.docker_host, **kwargs)
        else:
            self.api = docker.from_env(**kwargs).api
        self._cleanup: set[asyncio.Task[None]] = set()
        self._orphan_starts: set[asyncio.Future[Sandbox]] = set()
        self.on_engine_error: Callable[[BaseException], None] = lambda exc: None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one blocking SDK call in the engine's own executor; engine failures -> Unavailable."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, functools.partial(fn, *args))
        except docker.errors.NotFound:
            raise
        except ENGINE_ERRORS as exc:
            self.on_engine_error(exc)
            raise Unavailable(f"the sandbox engine failed: {type(exc).__name__}") from exc

    # -- sandboxes -----------------------------------------------------------------------------
    def _container_config(self, pooled: bool) -> dict[str, Any]:
        s = self.settings
        host_config = self.api.create_host_config(
            network_mode="none",
            mem_limit=f"{s.memory_mb}m",
            memswap_limit=f"{s.memory_mb}m",
            pids_limit=s.pids + (RUNSC_PIDS_HEADROOM if s.runtime == "runsc" else 0),
            nano_cpus=int(s.cpus * 1e9),
            ulimits=[Ulimit(name="nofile", soft=s.nofile, hard=s.nofile)],
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={s.tmpfs_mb}m"},
            shm_size=f"{s.tmpfs_mb}m",
            ipc_mode="private",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            init=True,
            log_config=LogConfig(type="none"),
            runtime=s.runtime,
        )
        return {
            "image": s.image,
            "command": ["python3", "-I", "-c", BOOTSTRAP],
            "user": SANDBOX_USER,
            "working_dir": "/tmp",
            "environment": SANDBOX_ENV,
            "stdin_open": True,  # with detach=False the SDK also sets StdinOnce: EOF without losing output
            "detach": False,
            "tty": False,
            "labels": {LABEL_MANAGED: "true", LABEL_OWNER: self.owner, LABEL_POOL: str(pooled).lower()},
            "host_config": host_config,
        }

    def _start_blocking(self, pooled: bool) -> Sandbox:
        container_id: str = self.api.create_container(**self._container_config(pooled))["Id"]
        try:
            # attach before start so no early output is missed
            raw = self.api.attach_socket(container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            sock: socket.socket = getattr(raw, "_sock", raw)
            sock.setblocking(False)
            sandbox = Sandbox(self, container_id, raw, sock)
            self.api.start(container_id)
        except BaseException:
            self.api.remove_container(container_id, force=True)
            raise
        return sandbox

    async def start_sandbox(self, *, pooled: bool = False) -> Sandbox:
        """A new container with the interpreter started and waiting for a program.

        The start runs on in its thread if the caller is cancelled meanwhile (a client that
        leaves during a cold start); the sandbox it makes is then discarded, never leaked.
        """
        starting = asyncio.ensure_future(self.call(self._start_blocking, pooled))
        try:
            return await asyncio.shield(starting)
        except docker.errors.NotFound as exc:
            raise Unavailable(f"the sandbox image {self.settings.image!r} is missing") from exc
        except asyncio.CancelledError:
            self._orphan_starts.add(starting)
            starting.add_done_callback(self._discard_if_started)
            raise

    def _discard_if_started(self, starting: asyncio.Future[Sandbox]) -> None:
        self._orphan_starts.discard(starting)
        if not starting.cancelled() and starting.exception() is None:
            self.discard(starting.result())

    def discard(self, sandbox: Sandbox) -> None:
        """Kill and remove a sandbox in the background; survives the caller's cancellation."""
        sandbox.close_socket()
        task = asyncio.get_running_loop().create_task(self._remove(sandbox.container_id))
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    async def _remove(self, container_id: str) -> None:
        try:
            await self.call(functools.partial(self.api.remove_container, container_id, force=True))
        except (Unavailable, docker.errors.NotFound):
            pass

    async def drain_cleanup(self) -> None:
        """Wait for every background removal, including of starts whose caller went away."""
        while self._cleanup or self._orphan_starts:
            await asyncio.gather(*self._cleanup, *self._orphan_starts, return_exceptions=True)

    # -- engine state ----------------------------------------------------------------------------
    async def ping(self) -> bool:
        try:
            return bool(await self.call(self.api.ping))
        except Unavailable:
            return False

    async def image_present(self) -> bool:
        try:
            await self.call(self.api.inspect_image, self.settings.image)
            return True
        except docker.errors.NotFound:
            return False

    async def runtimes(self) -> list[str]:
        info = await self.call(self.api.info)
        return sorted(info.get("Runtimes", {}))

    def _managed(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=true"})
        return result

    async def reap_orphans(self) -> int:
        """Remove managed containers whose owner server no longer runs."""
        # only containers a server made carry an owner (the image's own labels reach every container)
        orphans = [
            c["Id"]
            for c in await self.call(self._managed)
            if LABEL_OWNER in c["Labels"] and not owner_is_alive(c["Labels"][LABEL_OWNER])
        ]
        await asyncio.gather(*(self._remove(cid) for cid in orphans))
        return len(orphans)

    async def remove_all_mine(self) -> int:
        await self.drain_cleanup()
        mine = [c["Id"] for c in await self.call(self._managed) if c["Labels"].get(LABEL_OWNER) == self.owner]
        await asyncio.gather(*(self._remove(cid) for cid in mine))
        return len(mine)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.api.close()
