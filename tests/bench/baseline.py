"""The other sides of each comparison: the seed's ``docker run`` per request, bare SDK churn, host Python.

The ``docker run`` flags are derived from the engine's own container configuration
(``DockerEngine.container_body``), so the seed's design is measured under exactly the limits
the service applies; a host-config key the translation does not know stops the benchmark rather
than silently measuring something laxer. Every container made here carries ``sce.managed=true``,
``sce.bench=true`` and an ``sce.owner`` naming this process (so a server starting meanwhile does
not reap it as an orphan), and is force-removed at the end whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from app.sandbox.docker.engine import LABEL_MANAGED, LABEL_OWNER, DockerEngine, owner_id
from app.sandbox.runtimes import DEFAULT_RUNTIME
from app.sandbox.service import default_specs
from app.settings import Settings
from tests.bench.common import now

LABEL_BENCH = "sce.bench"
BENCH_OWNER = owner_id()
BENCH_LABELS = {LABEL_MANAGED: "true", LABEL_BENCH: "true", LABEL_OWNER: BENCH_OWNER}


def engine_config(settings: Settings) -> dict[str, Any]:
    """The engine's container configuration for one sandbox of the default runtime, read from the engine itself."""
    engine = DockerEngine(settings, owner=BENCH_OWNER)
    body = engine.container_body(default_specs(settings)[DEFAULT_RUNTIME], False)
    # as docker-py's create_container takes it (the host config passes through unchanged)
    return {
        "image": body["Image"],
        "command": body["Cmd"],
        "network_disabled": body["NetworkDisabled"],
        "user": body["User"],
        "working_dir": body["WorkingDir"],
        "environment": dict(item.split("=", 1) for item in body["Env"]),
        "stdin_open": True,
        "detach": False,
        "tty": False,
        "labels": body["Labels"],
        "host_config": body["HostConfig"],
    }


def _seccomp_file(profile: str) -> str:
    """``docker run --security-opt seccomp=`` takes a file: the engine's inline profile, written once."""
    path = Path(tempfile.gettempdir()) / f"sce-bench-seccomp-{hashlib.sha256(profile.encode()).hexdigest()[:16]}.json"
    if not path.exists():
        path.write_text(profile)
    return str(path)


def _host_flags(hc: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for key, value in hc.items():
        match key:
            case "NetworkMode":
                flags += ["--network", value]
            case "Memory":
                flags += ["--memory", f"{value}b"]
            case "MemorySwap":
                flags += ["--memory-swap", f"{value}b"]
            case "PidsLimit":
                flags += ["--pids-limit", str(value)]
            case "NanoCpus":
                flags += ["--cpus", f"{value / 1e9:g}"]
            case "Ulimits":
                flags += [arg for u in value for arg in ("--ulimit", f"{u['Name']}={u['Soft']}:{u['Hard']}")]
            case "ReadonlyRootfs":
                flags += ["--read-only"] if value else []
            case "Tmpfs":
                flags += [arg for path, opts in value.items() for arg in ("--tmpfs", f"{path}:{opts}")]
            case "ShmSize":
                flags += ["--shm-size", f"{value}b"]
            case "IpcMode":
                flags += ["--ipc", value]
            case "CapDrop":
                flags += [arg for cap in value for arg in ("--cap-drop", cap)]
            case "CapAdd":
                flags += [arg for cap in value for arg in ("--cap-add", cap)]
            case "SecurityOpt":
                for opt in value:
                    if opt.startswith("seccomp=") and opt[len("seccomp=") :].lstrip().startswith("{"):
                        opt = "seccomp=" + _seccomp_file(opt[len("seccomp=") :])
                    flags += ["--security-opt", opt]
            case "CgroupParent" | "Labels":
                pass  # the server's own accounting and bookkeeping, not a protection
            case "Init":
                flags += ["--init"] if value else []
            case "LogConfig":
                flags += ["--log-driver", value["Type"]]
                flags += [arg for k, v in (value.get("Config") or {}).items() for arg in ("--log-opt", f"{k}={v}")]
            case "Runtime":
                flags += ["--runtime", value]
            case _:
                raise RuntimeError(f"the engine sets host config {key}={value!r}, which the bench does not mirror")
    return flags


def docker_run_args(config: dict[str, Any], command: list[str]) -> list[str]:
    """``docker run --rm -i`` with the engine's flags, running ``command`` instead of the bootstrap."""
    args = ["docker", "run", "--rm", "-i", *_host_flags(config["host_config"])]
    args += ["--user", config["user"], "--workdir", config["working_dir"]]
    if "hostname" in config:
        args += ["--hostname", config["hostname"]]
    for key, value in config["environment"].items():
        args += ["--env", f"{key}={value}"]
    for key, value in BENCH_LABELS.items():
        args += ["--label", f"{key}={value}"]
    return [*args, config["image"], *command]


@dataclass
class ProcResult:
    first_byte_s: float | None
    exit_s: float
    stdout_bytes: int
    returncode: int


async def run_process(args: list[str]) -> ProcResult:
    """Spawn, read stdout to EOF (counting bytes), wait: times from spawn to first byte and to exit."""
    t0 = now()
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    assert proc.stdout is not None
    first: float | None = None
    total = 0
    try:
        while chunk := await proc.stdout.read(1 << 16):
            if first is None:
                first = now() - t0
            total += len(chunk)
        code = await proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return ProcResult(first, now() - t0, total, code)


@functools.cache
def host_python() -> str:
    """The host's real ``python3`` binary: Debian's if present (the image's own build), else the resolved one.

    Resolved once, so a shim on PATH (pyenv's is a shell script, ~400 ms) is not part of the floor.
    """
    if os.path.exists("/usr/bin/python3"):
        return "/usr/bin/python3"
    found = shutil.which("python3") or "python3"
    real = subprocess.run(
        [found, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True, check=False
    )
    return real.stdout.strip() or found


class SdkChurn:
    """Bare engine churn: create, start, wait, remove one container per run, ``c`` at a time."""

    def __init__(self, api: docker.APIClient, config: dict[str, Any], command: list[str]) -> None:
        self.api = api
        self.config = dict(config)
        self.config.update(
            command=command,
            labels=dict(BENCH_LABELS),
            stdin_open=False,
            detach=True,
            tty=False,
            host_config=config["host_config"],
        )

    def _one(self) -> None:
        cid = self.api.create_container(**self.config)["Id"]
        try:
            self.api.start(cid)
            status = self.api.wait(cid, timeout=60)["StatusCode"]
            if status != 0:
                raise RuntimeError(f"bare container exited {status}")
        finally:
            self.api.remove_container(cid, force=True)

    def run(self, total: int, concurrency: int, stop: threading.Event) -> float:
        """Seconds for ``total`` runs with ``concurrency`` workers; ``stop`` ends them early."""
        remaining = [total]
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    if remaining[0] <= 0 or stop.is_set():
                        return
                    remaining[0] -= 1
                self._one()

        t0 = now()
        with ThreadPoolExecutor(concurrency, thread_name_prefix="bench-churn") as pool:
            for future in [pool.submit(worker) for _ in range(concurrency)]:
                future.result()
        return now() - t0


class AttachChurn(SdkChurn):
    """The least any streaming client asks of the engine per run: create a container with stdin open,
    attach to its stdin and output, start it, write the program, read the output to its end, remove.

    The service's extra engine work over bare churn (stdin's pipe and the attach stream) without the
    service: the floor for a design that hands each program to a fresh container and streams what it
    prints, driven from threads through the SDK as bare churn is.
    """

    PROGRAM_READER = "import sys; exec(sys.stdin.readline())"

    def __init__(self, api: docker.APIClient, config: dict[str, Any], program: str, expected: bytes) -> None:
        super().__init__(api, config, ["python3", "-c", self.PROGRAM_READER])
        self.config.update(stdin_open=True)
        self.program = program.encode() + b"\n"
        self.expected = expected

    def _one(self) -> None:
        cid = self.api.create_container(**self.config)["Id"]
        try:
            raw = self.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            sock = getattr(raw, "_sock", raw)
            sock.settimeout(60)  # as bare churn's wait: a hung container fails the batch, not the bench
            try:
                self.api.start(cid)
                sock.sendall(self.program)
                out = bytearray()
                while chunk := sock.recv(1 << 16):
                    out += chunk
            finally:
                raw.close()
            if self.expected not in out:  # framed (no tty): the text sits after an 8-byte header
                raise RuntimeError(f"attached container printed {bytes(out[:200])!r}")
        finally:
            self.api.remove_container(cid, force=True)


def remove_bench_containers(api: docker.APIClient, owner: str = BENCH_OWNER) -> int:
    """Force-remove every container this benchmark process (or a server it started) owns."""
    removed = 0
    for c in api.containers(all=True, filters={"label": [f"{LABEL_OWNER}={owner}"]}):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            api.remove_container(c["Id"], force=True)
            removed += 1
    return removed


def kill_anatomy(api: docker.APIClient, config: dict[str, Any], code: str, after_s: float) -> dict[str, Any]:
    """What the engine alone costs at a deadline: a busy container, killed ``after_s`` after its start.

    Times (seconds from the kill call): the kill call's return, a ``wait`` already in flight
    returning, and the ``inspect`` the server makes for an exit status of 137; plus the container
    id and the wall-clock time of the call, to find the engine's own kill and die events.
    """
    cfg = dict(config)
    cfg.update(command=["python3", "-c", code], labels=dict(BENCH_LABELS), stdin_open=False, detach=True)
    cid = api.create_container(**cfg)["Id"]
    try:
        api.start(cid)
        result: dict[str, Any] = {}
        waiter = threading.Thread(target=lambda: result.update(api.wait(cid, timeout=60), t=now()))
        waiter.start()
        time.sleep(after_s)
        t0, wall0 = now(), time.time()
        api.kill(cid)
        t_kill = now() - t0
        waiter.join(60)
        t_wait = result["t"] - t0
        api.inspect_container(cid)
        t_inspect = now() - t0
        return {"kill_call": t_kill, "wait_returns": t_wait, "inspect_done": t_inspect, "id": cid, "called_at": wall0}
    finally:
        api.remove_container(cid, force=True)
