"""Shared fixtures: a real engine, real servers (hypercorn in a subprocess), real clients.

Docker-marked tests need a running engine and the sandbox image. Locally they are skipped when
no engine answers; in CI (``CI=true``) a missing engine fails the run instead: the suite must
never pass there without having run its containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from app.sandbox.docker.engine import LABEL_MANAGED, LABEL_OWNER, owner_id, owner_is_alive
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SERVER_START_TIMEOUT_S = 60.0  # a loaded 2-core machine starting three servers at once (each imports ~2 s of CPU)


def _engine_ok() -> bool:
    try:
        image = Settings().image
    except ValueError as exc:  # a bad or unknown SCE_* variable: say so, never skip every Docker test
        raise pytest.UsageError(f"the environment's SCE_* settings are refused: {exc}") from exc
    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.images.get(image)
        client.close()
        return True
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _engine_ok():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("CI: the Docker engine or the sandbox image is missing; docker tests must run")
    skip = pytest.mark.skip(reason="no Docker engine / sandbox image (run `make image`)")
    for item in items:
        if "docker" in item.keywords:
            item.add_marker(skip)


def project_containers(owner: str | None = None) -> list[dict[str, Any]]:
    """The project's containers on the engine (all states), optionally only one owner's.

    The low-level list: the high-level one inspects each container and races with removals.
    """
    labels = [f"{LABEL_MANAGED}=true"] + ([f"{LABEL_OWNER}={owner}"] if owner else [])
    client = docker.from_env(timeout=10)
    try:
        found: list[dict[str, Any]] = client.api.containers(all=True, filters={"label": labels})
        return found
    finally:
        client.close()


def server_containers(pid: int) -> list[str]:
    """Ids of the containers a server process owns (its owner label starts ``host:pid:``)."""
    prefix = f"{socket.gethostname()}:{pid}:"
    return [c["Id"] for c in project_containers() if (c.get("Labels") or {}).get(LABEL_OWNER, "").startswith(prefix)]


def managed_containers() -> list[str]:
    """Containers of the project left by servers that no longer run, or by this test process.

    Containers of other live servers on the same engine (a developer's `make run`) are theirs.
    """
    found = project_containers()
    me = owner_id()
    return [
        c["Id"]
        for c in found
        if LABEL_OWNER in c["Labels"]
        and (c["Labels"][LABEL_OWNER] == me or not owner_is_alive(c["Labels"][LABEL_OWNER]))
    ]


@pytest.fixture(scope="session", autouse=True)
def _no_containers_left_behind() -> Iterator[None]:
    """The whole session must end with no container of the project on the engine.

    Orphans of servers killed before this session (a machine reused after a hard stop) are
    removed first, as any starting server would.
    """
    if _engine_ok():
        client = docker.from_env(timeout=30)
        try:
            for cid in managed_containers():
                client.api.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass
        finally:
            client.close()
    yield
    if not _engine_ok():
        return
    deadline = time.monotonic() + 15
    left = managed_containers()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)  # removals run in the background of servers that are just stopping
        left = managed_containers()
    assert not left, f"containers left behind: {left}"


async def until(predicate: Any, within: float, what: str, step: float = 0.05) -> float:
    """Poll ``predicate`` (async; True or a description of what is still wrong); return how long it took.

    For states nothing announces (a container gone, a balancer's view of a server): bounded by
    ``within``, after which the last description is the assertion's message.
    """
    start = time.monotonic()
    while True:
        state = await predicate()
        if state is True:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"{what}: not within {within} s; last seen: {state}")
        await asyncio.sleep(step)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Every client of the suite's servers is 127.0.0.1, and one server serves hundreds of runs: the
# per-client rate limits (on by default for a public playground) are off unless a test sets them.
# The scientific runtime's warm sandbox (0.8 s of CPU to start, 64 MiB) is only kept by servers
# whose tests ask for it; the others start one when a scientific run comes.
SUITE_SERVER_DEFAULTS = {
    "SCE_RATE_RUNS_PER_MINUTE": "0",
    "SCE_RATE_CODE_BYTES_PER_MINUTE": "0",
    "SCE_RATE_ADDRESS_RUNS_PER_MINUTE": "0",
    "SCE_RATE_ADDRESS_CODE_BYTES_PER_MINUTE": "0",
    "SCE_SCIENTIFIC_POOL_SIZE": "0",
}


class ServerProcess:
    """``python -m app serve`` on a free loopback port, with its own ``SCE_*`` environment."""

    def __init__(self, env: dict[str, str], *, healthy: bool = True) -> None:
        self.healthy = healthy  # False: ready once it answers /healthz at all (e.g. a missing image)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/run"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SCE_") or k == "SCE_RUNTIME"}
        full_env.update(SUITE_SERVER_DEFAULTS)
        full_env.update(env)
        full_env["SCE_BIND"] = f"127.0.0.1:{self.port}"
        self.log_path = Path(f"/tmp/sce-test-server-{self.port}.log")
        self._log = self.log_path.open("wb")
        admin = full_env.get("SCE_ADMIN_TOKEN")  # the pool's state is a detail only the operator sees
        self.admin_headers = {"Authorization": f"Bearer {admin}"} if admin else {}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"], cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop(signal.SIGKILL)  # a server that never became ready is not left running
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                r = httpx.get(self.url + "/healthz", timeout=2, headers=self.admin_headers)
                if not self.healthy and r.status_code in (200, 503):
                    return
                if r.status_code == 200 and r.json()["pool"]["ready"] >= r.json()["pool"]["size"]:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling a process we cannot get an event from
        raise RuntimeError(f"server did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


ServerFactory = Callable[..., ServerProcess]


def module_server(env: dict[str, str], *, healthy: bool = True) -> Any:
    """A module-scoped fixture serving with ``env``: ``tight = module_server(TIGHT_ENV)``."""

    @pytest.fixture(scope="module")
    def fixture() -> Iterator[ServerProcess]:
        proc = ServerProcess(env, healthy=healthy)
        yield proc
        proc.stop()

    return fixture


@pytest.fixture
def server_factory() -> Iterator[ServerFactory]:
    """Start servers with extra settings: ``server_factory(SCE_MAX_CONCURRENT_RUNS="1")``."""
    servers: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        server = ServerProcess(env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    """One shared server with the default settings (and generous admission for parallel tests)."""
    proc = ServerProcess({"SCE_PER_CLIENT_RUNS": "64", "SCE_QUEUE_SIZE": "128"})
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def live_server(server: ServerProcess) -> str:
    """The shared server's base URL, for browser tests."""
    return server.url
