"""Sandboxes for the integration tests, made with the engine's own container config.

``sandbox_config`` asks ``DockerEngine.container_body`` (read-only root, a UID of its own, no network,
the runtime's memory, pids and tmpfs, all capabilities dropped...) rather than restating those
flags, so a test runs exactly what production runs, plus the test's own labels for cleanup.
"""

from __future__ import annotations

import secrets
import socket
import time

import docker

from app.sandbox.bootstrap import preamble
from app.sandbox.docker.engine import DockerEngine, owner_id
from app.sandbox.docker.framing import FrameParser
from app.sandbox.runtimes import RuntimeSpec
from app.sandbox.service import default_specs
from app.settings import Settings


def sandbox_config(settings: Settings, spec: RuntimeSpec, labels: dict[str, str]) -> dict[str, object]:
    """The production container config for ``spec``, with ``labels`` added (and, as the engine
    gives every sandbox, a random UID:GID from the range that the image's /etc/passwd does not name)."""
    engine = DockerEngine(settings, owner=owner_id())
    uid = settings.sandbox_uid_base + secrets.randbelow(settings.sandbox_uid_count)
    body = engine.container_body(default_specs(settings)[spec.name], False, None, uid)
    return {  # as docker-py's create_container takes it (the host config passes through unchanged)
        "image": body["Image"],
        "command": body["Cmd"],
        "network_disabled": body["NetworkDisabled"],
        "user": body["User"],
        "working_dir": body["WorkingDir"],
        "environment": dict(item.split("=", 1) for item in body["Env"]),
        "stdin_open": True,
        "detach": False,
        "tty": False,
        "labels": {**body["Labels"], **labels},
        "host_config": body["HostConfig"],
    }


def run_program(
    api: docker.APIClient, config: dict[str, object], payload: bytes, *, timeout: float = 60
) -> list[tuple[float, str, bytes]]:
    """Start a sandbox, send the bootstrap (as the engine does) and ``payload`` then EOF, and
    return (arrival time, stream, bytes) as the output came, until the container's output ends."""
    container_id = api.create_container(**config)["Id"]
    try:
        raw = api.attach_socket(container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        sock: socket.socket = getattr(raw, "_sock", raw)
        api.start(container_id)
        sock.sendall(preamble(rich="--rich" in str(config.get("command"))) + payload)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(timeout)
        parser, got = FrameParser(), []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            got += [(time.monotonic(), stream, chunk) for stream, chunk in parser.feed(data)]
        sock.close()
        raw.close()
        return got
    finally:
        api.remove_container(container_id, force=True)
