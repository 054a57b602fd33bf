"""A remote engine reached the only ways docs/DEPLOY.md allows: Docker's TLS with client certificates.

The tests' second engine also listens on tcp://127.0.0.1:PORT with ``--tlsverify`` and certificates
made for the session (a throw-away CA; scripts/sce_cluster.py ``make_tls``). Loopback stands in for
the network between a server and an engine host.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.wsclient import run_ws

pytestmark = [pytest.mark.docker, pytest.mark.cluster]

NO_TLS_CLIENT = (
    "the server does not use TLS for a tcp:// engine: app/sandbox/docker/engine.py makes "
    "docker.APIClient(base_url=host) without a TLSConfig, and docker-py then speaks plain HTTP to tcp:// "
    "(the engine refuses it). SCE_DOCKER_HOSTS needs TLS from DOCKER_CERT_PATH/DOCKER_TLS_VERIFY (or a "
    "per-engine certificate directory), and should refuse a tcp:// engine without it"
)


def docker_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=30)


def test_engine_socket_demands_a_client_certificate(engine2: Any) -> None:
    """Plain HTTP and TLS without a client certificate are refused; the right certificate is served."""
    certs = engine2.tls_dir
    plain = docker_cli("-H", engine2.tls_url, "version", "--format", "{{.Server.Version}}")
    assert plain.returncode != 0, plain.stdout
    ca = str(certs / "ca.pem")
    version = ("version", "--format", "{{.Server.Version}}")
    anonymous = docker_cli("-H", engine2.tls_url, "--tls", "--tlscacert", ca, *version)
    assert anonymous.returncode != 0, anonymous.stdout
    verified = docker_cli(
        "-H", engine2.tls_url, "--tlsverify",
        "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(certs / "cert.pem"), "--tlskey", str(certs / "key.pem"),
        "version", "--format", "{{.Server.Version}}",
    )  # fmt: skip
    assert verified.returncode == 0 and verified.stdout.strip(), verified.stderr


@pytest.mark.timeout(180)
async def test_server_runs_on_an_engine_over_tls(engine2: Any) -> None:
    env = {
        "SCE_DOCKER_HOSTS": engine2.tls_url,
        "SCE_SCIENTIFIC_POOL_SIZE": "0",
        "DOCKER_CERT_PATH": str(engine2.tls_dir),
        "DOCKER_TLS_VERIFY": "1",
    }
    server = ServerProcess(env, healthy=False)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            deadline = time.monotonic() + 20
            health: dict[str, Any] = {}
            while time.monotonic() < deadline:
                health = (await http.get("/healthz")).json()
                if health.get("status") == "ok":
                    break
                await asyncio.sleep(0.2)  # polling the server's view of its engine
            if health.get("status") != "ok":
                pytest.xfail(f"{NO_TLS_CLIENT}; /healthz: {health.get('engines')}")
        result = await run_ws(server.ws_url, "print(2 + 2)", within=60)
        assert result.text() == "4\n" and result.exit["exit_code"] == 0, result.frames
    finally:
        server.stop()
