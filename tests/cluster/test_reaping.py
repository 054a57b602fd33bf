"""Sandboxes of servers on other hosts: removed once their lease has run out, never before.

On an engine shared by servers on several hosts, a server cannot see the others' processes. Two
containers stand for another host's sandboxes (an owner naming another host, which is assumed
alive): one whose lease (``sce.lease_s``) ran out by the engine's clock, one whose lease has hours
left. A server starting on that engine removes the first and leaves the second.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import pytest

from tests.cluster.conftest import engines_env, sce_cluster
from tests.conftest import ServerProcess, until

pytestmark = [pytest.mark.docker, pytest.mark.cluster]


def foreign_sandbox(engine2: Any, image: str, lease_s: int) -> str:
    """A stopped container labelled as a sandbox of a server on another host."""
    done = subprocess.run(
        [
            "docker", "-H", engine2.url, "create", "--network", "none",
            "--label", "sce.managed=true", "--label", "sce.owner=another-host:4242:1",
            "--label", "sce.instance=0123456789abcdef", "--label", f"sce.lease_s={lease_s}",
            image, "true",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def exists(engine2: Any, cid: str) -> bool:
    return any(str(c["Id"]) == cid for c in sce_cluster.containers(engine2.socket, ["sce.managed=true"]))


def remove(engine2: Any, ids: list[str]) -> None:
    for cid in ids:
        subprocess.run(["docker", "-H", engine2.url, "rm", "-f", cid], capture_output=True, timeout=60)


@pytest.mark.timeout(120)
async def test_expired_lease_reaped_live_lease_kept(engine2: Any) -> None:
    image = engine2.images[0]
    expired = foreign_sandbox(engine2, image, lease_s=1)
    current = foreign_sandbox(engine2, image, lease_s=3600)
    created = time.time()
    server: ServerProcess | None = None
    try:
        await asyncio.sleep(max(0.0, created + 2.5 - time.time()))  # the 1 s lease runs out (engine's clock)
        server = ServerProcess(engines_env(engine2, SCE_POOL_SIZE="0"))

        async def reaped() -> bool | str:
            return not exists(engine2, expired) or "the expired sandbox is still there"

        took = await until(reaped, 15, "the expired foreign sandbox removed", step=0.1)
        assert exists(engine2, current), "a sandbox with a live lease of another host's server was removed"
        print(f"expired foreign sandbox removed {took:.2f} s after the server was ready; the live one kept")
    finally:
        if server is not None:
            server.stop()
        await asyncio.to_thread(remove, engine2, [expired, current])
