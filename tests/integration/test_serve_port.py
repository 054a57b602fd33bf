"""A second server on a port already in use: one clear line, a failure status, no containers started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import docker
import httpx
import pytest

from app.sandbox.docker.engine import LABEL_MANAGED, LABEL_OWNER
from tests.conftest import ROOT, ServerProcess, free_port, server_containers

pytestmark = pytest.mark.timeout(60)

EXIT_TIMEOUT_S = 10


@dataclass
class Exited:
    status: int
    stdout: str
    stderr: str
    pid: int
    seconds: float


def serve_on(port: int) -> Exited:
    """Run ``python -m app serve --bind 127.0.0.1:PORT`` (as a user would) until it exits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCE_") or k == "SCE_RUNTIME"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.communicate(timeout=30)
        pytest.fail(f"the second server was still running after {EXIT_TIMEOUT_S} s")
    return Exited(proc.returncode, out, err, proc.pid, time.monotonic() - started)


def assert_one_clear_line(result: Exited, port: int) -> None:
    assert result.status != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert f"127.0.0.1:{port}" in line
    assert "already listens there" in line
    assert "--bind HOST:PORT" in line and "SCE_BIND" in line
    assert "Traceback" not in line


def containers_created(pid: int, since: float) -> list[dict[str, Any]]:
    """Project containers the process ``pid`` created since then (from the engine's event log)."""
    client = docker.from_env(timeout=30)
    try:
        events = client.events(
            since=int(since) - 1,
            until=int(time.time()) + 1,
            decode=True,
            filters={"type": "container", "event": "create", "label": f"{LABEL_MANAGED}=true"},
        )
        prefix = f"{socket.gethostname()}:{pid}:"
        return [e for e in events if e.get("Actor", {}).get("Attributes", {}).get(LABEL_OWNER, "").startswith(prefix)]
    finally:
        client.close()


@pytest.mark.docker
def test_second_server_on_a_taken_port_says_so_and_starts_no_container() -> None:
    first = ServerProcess({})
    try:
        since = time.time()
        second = serve_on(first.port)
        assert_one_clear_line(second, first.port)
        assert containers_created(second.pid, since) == []
        assert server_containers(second.pid) == []
        # the first server is untouched and still serves
        assert httpx.get(first.url + "/healthz", timeout=5).status_code == 200
    finally:
        assert first.stop() == 0


def test_port_taken_by_another_program() -> None:
    port = free_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        second = serve_on(port)
    assert_one_clear_line(second, port)
