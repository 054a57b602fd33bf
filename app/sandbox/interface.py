"""The engine-neutral seam: what the service needs of a sandbox engine, and nothing more.

The run, the warm pool and the service are written against these protocols; Docker is one
implementation (``app.sandbox.docker``), and tests or later engines plug in the same way. A
sandbox speaks in ``(stream, bytes)`` pairs and an ``ExitObservation``: whatever framing or
exit conventions an engine has stay inside its backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from app.core.exits import ExitObservation
from app.core.streams import Stream


@dataclass(frozen=True)
class Lockdown:
    """What every backend must enforce on every sandbox, whatever its engine: the contract a second
    backend has to meet (tests/security checks the Docker backend against it).

    The numeric limits (memory, pids, CPU, open files, /tmp size) are the ``SandboxSpec``'s own.
    """

    # never root, no name needed in the image; the Docker engine gives each sandbox a UID:GID of its
    # own instead (SCE_SANDBOX_UID_*), so per-user kernel limits (inotify, pipes, mqueue) are per run
    user: str = "10001:10001"
    read_only_root: bool = True  # only the size-limited /tmp is writable
    network: Literal["none"] = "none"  # no interface but loopback
    drop_all_capabilities: bool = True
    no_new_privileges: bool = True
    # "project": the project's syscall filter (seccomp.json); "runtime": the runtime confines the
    # guest itself (gVisor implements the calls in its own kernel, inside a host filter)
    syscall_filter: Literal["project", "runtime"] = "project"
    init: bool = True  # a reaper as pid 1: zombies are collected, signals reach the program
    private_ipc: bool = True
    no_swap: bool = True  # memory+swap equal to memory
    no_logs: bool = True  # the engine keeps no copy of the output
    working_dir: str = "/tmp"
    environment: tuple[tuple[str, str], ...] = (
        ("HOME", "/tmp"),
        ("LANG", "C.UTF-8"),
        ("USER", "runner"),  # the UID has no passwd entry: getpass.getuser() reads these first
        ("LOGNAME", "runner"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
    )


@dataclass(frozen=True)
class SandboxSpec:
    """What one sandbox is started with: its image, the limits it is promised and its lockdown."""

    runtime: str
    image: str
    memory_mb: int
    pids: int
    cpus: float
    nofile: int
    tmpfs_mb: int
    command: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    # written to a new sandbox's stdin before anything else (the bootstrap: a small command line
    # is cheaper for an engine to handle than a large one)
    stdin_preamble: bytes = field(default=b"", repr=False)
    # seconds after its creation past which any server may remove it (``sce.lease_s``); None: the
    # engine's own (a pooled sandbox's longest life). A session's sandbox lives longer.
    lease_s: int | None = None
    lockdown: Lockdown = Lockdown()


@dataclass(frozen=True)
class Usage:
    """Resources a sandbox used; ``None`` where the engine cannot tell."""

    cpu_ms: int | None = None
    memory_peak_bytes: int | None = None
    memory_bytes: int | None = None
    pids: int | None = None


@dataclass(frozen=True)
class EngineHealth:
    name: str
    ok: bool
    detail: dict[str, object] = field(default_factory=dict)


class Sandbox(Protocol):
    """One started sandbox, its interpreter waiting for a program; used for exactly one run."""

    @property
    def id(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def spec(self) -> SandboxSpec: ...

    def is_alive(self) -> bool:
        """Cheap, no I/O wait: False when the sandbox is known to be gone."""
        ...

    async def send(self, data: bytes) -> None: ...
    async def close_stdin(self) -> None: ...

    async def recv(self) -> list[tuple[Stream, bytes]]:
        """The next output, in order; an empty list at the end of the output."""
        ...

    async def kill(self) -> None:
        """Stop it now; a sandbox that has already ended is fine."""
        ...

    async def wait(self) -> ExitObservation:
        """How it ended. Called once its output has ended or after ``kill``, so it returns soon;
        callers bound it anyway. Holds no thread while the program runs."""
        ...

    async def usage(self, *, final: bool) -> Usage:
        """CPU and memory so far (``final``: after the end, as exact as the engine allows)."""
        ...


class Engine(Protocol):
    """Starts and removes sandboxes on one engine."""

    @property
    def name(self) -> str: ...
    @property
    def capacity(self) -> int:
        """How many runs this engine should carry at once."""
        ...

    async def start_sandbox(self, spec: SandboxSpec, *, pooled: bool = False) -> Sandbox: ...

    def discard(self, sandbox: Sandbox) -> None:
        """Kill and remove in the background; survives the caller's cancellation."""
        ...

    async def reap_orphans(self) -> int: ...
    async def health(self) -> EngineHealth: ...
    async def image_present(self, image: str) -> bool: ...
    async def runtime_info(self, image: str) -> dict[str, object] | None:
        """``{"python": VERSION, "packages": {NAME: VERSION}}`` as installed in the image."""
        ...

    async def close(self) -> None:
        """Remove every sandbox this server made on the engine, then release the connection."""
        ...
