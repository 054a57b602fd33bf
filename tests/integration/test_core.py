"""The core under an operator's settings, on the real engine and real hypercorn.

Many concurrent runs ending on time, secrets kept out of logs, deep probes that cannot amplify,
a server started before its engine, and a sandbox removed under a running program.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import websockets

from app.server.runs import token_hash
from tests.conftest import ServerFactory, ServerProcess
from tests.wsclient import collect, run_ws

pytestmark = [pytest.mark.docker]

CROWD = 64
LIMIT_S = 3.0
# gVisor's kill of 64 sandboxes at once takes the sentries longer on 2 cores: measured 1.5-2.9 s late
# at load ~3-10, on 4043c3e as now (the thread starvation this guards against left runs hung for good)
SLACK_S = 3.0 if os.environ.get("SCE_RUNTIME") == "runsc" else 1.5


async def timed_run(url: str, code: str, limit_s: float) -> tuple[float, dict[str, Any]]:
    """Seconds from ``started`` to ``exit`` as this client saw them, and the exit frame."""
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "run", "code": code, "timeout": limit_s}))
        started_at = None
        async for message in ws:
            frame = json.loads(message)
            if frame["type"] == "started":
                started_at = time.monotonic()
            elif frame["type"] in ("exit", "error"):
                assert started_at is not None, frame
                return time.monotonic() - started_at, frame
    raise AssertionError("closed without exit")


@pytest.mark.timeout(240)
async def test_sixty_four_sleepers_all_time_out_within_their_limit(server_factory: ServerFactory) -> None:
    """More live runs than the old executor had threads: every kill must still get through."""
    server = server_factory(
        SCE_MAX_CONCURRENT_RUNS=str(CROWD),
        SCE_PER_CLIENT_RUNS=str(CROWD),
        SCE_QUEUE_SIZE=str(CROWD),
        SCE_POOL_SIZE="4",
    )
    async with asyncio.timeout(200):
        results = await asyncio.gather(
            *(timed_run(server.ws_url, "import time\ntime.sleep(600)", LIMIT_S) for _ in range(CROWD))
        )
    reasons = [frame.get("reason", frame.get("code")) for _, frame in results]
    assert reasons == ["timeout"] * CROWD
    late = sorted(round(seconds - LIMIT_S, 2) for seconds, _ in results if seconds > LIMIT_S + SLACK_S)
    assert not late, f"runs that ended more than {SLACK_S} s past their limit (s late): {late}"


async def test_the_api_token_never_reaches_the_log(server_factory: ServerFactory) -> None:
    secret = "tok-" + os.urandom(8).hex()
    server = server_factory(SCE_API_TOKENS=secret, SCE_POOL_SIZE="0")
    result = await run_ws(server.ws_url, "print(1)", additional_headers={"Authorization": f"Bearer {secret}"})
    assert result.exit["exit_code"] == 0
    async with httpx.AsyncClient() as client:
        answer = await client.post(server.url + f"/run?token={secret}", json={"code": "print(2)"})
    assert answer.status_code == 200
    log = server.log()
    assert secret not in log
    run_lines = [json.loads(line.split(" sce.run ", 1)[1]) for line in log.splitlines() if " sce.run " in line]
    assert [entry["client"] for entry in run_lines] == [f"token:{token_hash(secret)}"] * 2


async def test_concurrent_deep_probes_share_one_sandbox(server_factory: ServerFactory) -> None:
    server = server_factory(SCE_POOL_SIZE="0", SCE_HEALTH_PROBE_INTERVAL_S="30")
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(*(client.get(server.url + "/healthz?deep=1") for _ in range(30)))
    assert {a.status_code for a in answers} == {200}
    assert all(a.json()["probe"]["ok"] is True for a in answers)
    probes = [line for line in server.log().splitlines() if '"transport": "probe"' in line]
    assert len(probes) == 1, probes


# --- a server started before its engine ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def socket_proxy(path: Path, target: str = "/var/run/docker.sock") -> AsyncIterator[None]:
    """A Unix socket at ``path`` that forwards every connection to the engine's socket."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            if writer.can_write_eof():
                writer.write_eof()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(target)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        for w in (writer, up_writer):
            w.close()

    server = await asyncio.start_unix_server(handle, path=str(path))
    try:
        yield
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


async def until_status(url: str, status: int, within: float = 30) -> dict[str, Any]:
    async with asyncio.timeout(within), httpx.AsyncClient(timeout=5) as client:
        while True:
            answer = await client.get(url + "/healthz")
            if answer.status_code == status:
                body: dict[str, Any] = answer.json()
                return body
            await asyncio.sleep(0.1)  # the server's recovery has no event we can see from outside


@pytest.mark.timeout(90)
async def test_a_server_started_before_its_engine_recovers_by_itself(tmp_path: Path) -> None:
    sock = tmp_path / "late-engine.sock"
    server = ServerProcess({"SCE_DOCKER_HOST": f"unix://{sock}", "SCE_POOL_SIZE": "1"}, healthy=False)
    try:
        body = await until_status(server.url, 503)
        assert body["engine"] is False
        refused = await run_ws(server.ws_url, "print(1)")
        assert refused.error["code"] == "unavailable" and refused.close_code == 1011
        async with socket_proxy(sock):
            body = await until_status(server.url, 200)
            assert body["engine"] is True
            result = await run_ws(server.ws_url, "print('back')")
            assert result.text() == "back\n" and result.exit["exit_code"] == 0
            server.stop()  # while the engine is there: its sandboxes are removed on the way out
    finally:
        server.stop()


async def test_a_sandbox_removed_under_a_running_program_is_unavailable(server: ServerProcess) -> None:
    async with asyncio.timeout(60), websockets.connect(server.ws_url) as ws:
        code = "import socket, time\nprint(socket.gethostname(), flush=True)\ntime.sleep(60)"
        await ws.send(json.dumps({"type": "run", "code": code, "timeout": 30}))
        frames: list[dict[str, Any]] = []
        while not any(f["type"] == "stdout" for f in frames):
            frames.append(json.loads(await ws.recv()))
        short_id = frames[-1]["data"].strip()
        client = docker.from_env()
        try:
            client.api.remove_container(short_id, force=True)
        finally:
            client.close()
        result = await collect(ws)
    assert result.error["code"] == "unavailable", result.frames
    assert result.close_code == 1011
