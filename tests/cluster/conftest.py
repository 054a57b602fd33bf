"""Fixtures for scale-out tests: a second dockerd, servers on both engines, HAProxy in front.

Built on the same pieces as ``scripts/cluster`` (scripts/sce_cluster.py): the second engine with
its own roots, socket, pid file, containerd namespaces and cgroup parent; HAProxy running
deploy/haproxy.cfg with only its bind/server lines rewritten. Everything listens on loopback; the
host's own engine is used but never stopped. The second engine lives for the session under
``/run/sce-cluster-test-PID`` (data root under /var/lib/sce-cluster-test-PID, removed at the end).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import websockets

from tests.conftest import ROOT, ServerProcess, free_port

MAIN_SOCKET = "/var/run/docker.sock"


def _load_cluster_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sce_cluster", ROOT / "scripts" / "sce_cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sce_cluster"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


sce_cluster = _load_cluster_module()


@pytest.fixture(scope="session")
def engine2() -> Iterator[Any]:
    """A second dockerd for the session, holding the sandbox image (copied from the host's engine)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            raise pytest.UsageError("CI: the cluster tests need root (a second dockerd)")
        pytest.skip("a second dockerd needs root")
    sce_cluster.ensure_haproxy()
    image = os.environ.get("SCE_IMAGE", "sce-sandbox:bookworm")
    base = Path(f"/run/sce-cluster-test-{os.getpid()}")
    data = Path(f"/var/lib/sce-cluster-test-{os.getpid()}") / "engine2"
    # also on tcp://127.0.0.1:PORT with TLS client certificates: the way to reach a remote engine
    engine = sce_cluster.Engine(base, data, images=(image,), tls_port=free_port())
    try:
        engine.start()
        yield engine
    finally:
        with contextlib.suppress(Exception):
            remove_all(engine.socket)
        engine.stop()
        engine.remove_cgroups()
        engine.purge()
        shutil.rmtree(engine.data_root.parent, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def remove_all(sock: str) -> None:
    """Every project container on an engine that only the tests use."""
    for c in sce_cluster.containers(sock, ["sce.managed=true"]):
        sce_cluster.remove_container(sock, str(c["Id"]))


def engines_env(engine2: Any, **extra: str) -> dict[str, str]:
    """A server on both engines, without the scientific pool (one image is copied into engine 2)."""
    return {
        "SCE_DOCKER_HOSTS": f"unix://{MAIN_SOCKET},{engine2.url}",
        "SCE_SCIENTIFIC_POOL_SIZE": "0",
        **extra,
    }


def running_containers(sock: str, owner: str) -> list[str]:
    """Running sandboxes of one server (by its owner label) on one engine."""
    found = sce_cluster.containers(sock, ["sce.managed=true", f"sce.owner={owner}"])
    return [str(c["Id"]) for c in found if c.get("State") == "running"]


def all_containers(sock: str, owner: str) -> list[str]:
    return [str(c["Id"]) for c in sce_cluster.containers(sock, ["sce.managed=true", f"sce.owner={owner}"])]


def owner_label(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{sce_cluster.start_time(pid)}:{sce_cluster.pid_namespace(pid)}"


class Balancer:
    """HAProxy from deploy/haproxy.cfg in front of ``servers``, on a free loopback port."""

    def __init__(self, servers: list[ServerProcess], *, inter_ms: int, fall: int, rise: int) -> None:
        self.dir = Path(f"/run/sce-cluster-test-{os.getpid()}")
        self.dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        records = [sce_cluster.Server(self.dir, i, s.port, {}) for i, s in enumerate(servers, 1)]
        self.haproxy = sce_cluster.Balancer(self.dir, port, records, inter_ms, fall, rise)
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/run"
        self.haproxy.start()

    def states(self) -> dict[str, str]:
        return dict(self.haproxy.server_states())

    def log(self) -> str:
        """Every server state change HAProxy logged, then its last 20 lines."""
        lines = self.haproxy.log.read_text(errors="replace").splitlines()
        changes = [line for line in lines if "Server sce_servers/" in line and not line.startswith("[")]
        return "\n".join([*changes, "...", *lines[-20:]])

    def stop(self) -> None:
        pid = self.haproxy.pid()
        if pid is not None:
            sce_cluster.stop_pid(pid, 10)  # SIGTERM: a hard stop, the tests' clients are done or failed
        self.haproxy.stats_socket.unlink(missing_ok=True)


def _free_port() -> int:
    return free_port()


class PinnedServer(ServerProcess):
    """A server on a given port (a restart behind HAProxy keeps its place): ServerProcess otherwise."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self._pinned = port
        super().__init__(env)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "port" and hasattr(self, "_pinned"):
            value = self._pinned  # ServerProcess.__init__ picks a free port (and builds its URLs from it): ours
        super().__setattr__(name, value)


# --- clients -----------------------------------------------------------------------------------------------


LONG_PROGRAM = "import time\nprint('go', flush=True)\ntime.sleep(60)\n"


async def open_run(
    ws_url: str, code: str = LONG_PROGRAM, *, source: str | None = None, run_timeout: float = 60
) -> websockets.ClientConnection:
    """A WebSocket run, optionally from a chosen loopback source address (127.0.0.N)."""
    kw: dict[str, Any] = {"max_size": None, "open_timeout": 30}
    if source is not None:
        kw["local_addr"] = (source, 0)
    ws = await websockets.connect(ws_url, **kw)
    await ws.send(json.dumps({"type": "run", "code": code, "timeout": run_timeout}))
    return ws


async def frames_until(ws: websockets.ClientConnection, kinds: set[str], within: float = 30) -> list[dict[str, Any]]:
    """Frames up to and including the first one of ``kinds`` (or the end of the connection)."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        try:
            while True:
                frame = json.loads(await ws.recv())
                seen.append(frame)
                if frame["type"] in kinds:
                    return seen
        except websockets.ConnectionClosed:
            return seen
