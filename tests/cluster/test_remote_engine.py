"""A remote engine reached the only ways docs/DEPLOY.md allows: Docker's TLS with client certificates.

The tests' second engine also listens on tcp://127.0.0.1:PORT with ``--tlsverify`` and certificates
made for the session (a throw-away CA; scripts/sce_cluster.py ``make_tls``). Loopback stands in for
the network between a server and an engine host.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import ServerProcess
from tests.wsclient import collect, run_ws

pytestmark = [pytest.mark.docker, pytest.mark.cluster]


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


# these machines (and many hosts) export them: a CA they name must never replace the TLS directory's
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
OPERATOR_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

LINES = 2000
FILES_OUT = "print(open('data/in.txt').read().upper(), end='')\nopen('out.txt', 'w').write('made on the remote engine')"


@pytest.fixture(scope="module", params=["inherited", "cleared"])
def tls_server(request: pytest.FixtureRequest, engine2: Any) -> Iterator[ServerProcess]:
    """A server whose only engine is engine2 over TCP with mutual TLS: with the CA variables as an
    operator's environment has them (set to the system bundle), or cleared."""
    env = {
        "SCE_DOCKER_HOSTS": engine2.tls_url,
        "SCE_DOCKER_TLS_DIR": str(engine2.tls_dir),
        "SCE_SCIENTIFIC_POOL_SIZE": "0",
        "SCE_POOL_SIZE": "1",
    }
    if request.param == "inherited":
        env |= dict.fromkeys(("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"), OPERATOR_BUNDLE)
    else:
        env |= dict.fromkeys(CA_BUNDLE_VARIABLES, "")
    server = ServerProcess(env)  # ready: healthy, its warm sandbox started on engine2
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(120)
async def test_hello_world_over_tls(tls_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=tls_server.url, timeout=10) as http:
        health = (await http.get("/healthz")).json()
    assert health["status"] == "ok", health
    result = await run_ws(tls_server.ws_url, "print(2 + 2)", within=60)
    assert result.text() == "4\n" and result.exit["exit_code"] == 0, result.frames


@pytest.mark.timeout(120)
async def test_input_reads_stdin_to_its_end_over_tls(tls_server: ServerProcess) -> None:
    """stdin's end crosses TLS (a close_notify half-close): input() then EOFError, output still flows."""
    code = "import sys\nprint(input().upper())\ntry:\n    input()\nexcept EOFError:\n    print('eof')\nprint('after')"
    extra = [{"type": "stdin", "data": "ada\n", "eof": True}]
    result = await run_ws(tls_server.ws_url, code, extra=extra, within=60)
    assert result.text() == "ADA\neof\nafter\n" and result.exit["exit_code"] == 0, result.frames


@pytest.mark.timeout(120)
async def test_kill_and_timeout_over_tls(tls_server: ServerProcess) -> None:
    killed = await run_ws(
        tls_server.ws_url, "import time\nprint('up', flush=True)\ntime.sleep(60)", extra=[{"type": "kill"}]
    )
    assert killed.exit["reason"] == "killed", killed.frames
    started = time.monotonic()
    timed = await run_ws(tls_server.ws_url, "while True: pass", run_timeout=1, within=60)
    assert timed.exit["reason"] == "timeout" and time.monotonic() - started < 20, timed.frames


@pytest.mark.timeout(120)
async def test_files_in_and_out_over_tls(tls_server: ServerProcess) -> None:
    async with asyncio.timeout(60):
        async with websockets.connect(tls_server.ws_url, max_size=None) as ws:
            files = [{"path": "data/in.txt", "content": "sent in"}]
            await ws.send(json.dumps({"type": "run", "code": FILES_OUT, "files": files}))
            result = await collect(ws)
    assert result.text() == "SENT IN" and result.exit["exit_code"] == 0, result.frames
    out = {f["path"]: f for f in result.of("file")}
    assert base64.b64decode(out["out.txt"]["data"]) == b"made on the remote engine"


@pytest.mark.timeout(120)
async def test_many_lines_arrive_whole_and_in_order_over_tls(tls_server: ServerProcess) -> None:
    result = await run_ws(tls_server.ws_url, f"for i in range({LINES}):\n    print(i)", within=60)
    assert result.text() == "".join(f"{i}\n" for i in range(LINES)) and result.exit["exit_code"] == 0


@pytest.mark.timeout(120)
async def test_memory_limit_is_an_oom_over_tls(tls_server: ServerProcess) -> None:
    result = await run_ws(tls_server.ws_url, "b = b'\\x01' * (512 << 20)", within=60)
    assert result.exit["reason"] == "oom", result.frames


@pytest.mark.timeout(120)
async def test_server_without_certificates_cannot_use_a_tls_engine(engine2: Any) -> None:
    """tcp:// without SCE_DOCKER_TLS_DIR fails closed: the engine is never used, nothing runs."""
    server = ServerProcess({"SCE_DOCKER_HOSTS": engine2.tls_url, "SCE_SCIENTIFIC_POOL_SIZE": "0"}, healthy=False)
    assert "SCE_DOCKER_TLS_DIR" in server.log(), server.log()  # the log says what is missing
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            health = await http.get("/healthz")
        assert health.status_code == 503 and not health.json()["engines"][0]["ok"], health.text
        result = await run_ws(server.ws_url, "print(2 + 2)", within=60)
        assert result.error["code"] == "unavailable", result.frames
    finally:
        server.stop()
