"""Graceful shutdown: runs finish within the grace, the rest are killed and told, nothing is left."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
import websockets

from tests.conftest import ServerFactory, server_containers
from tests.wsclient import WsResult, collect

pytestmark = [pytest.mark.docker, pytest.mark.timeout(90)]


async def start_run(url: str, code: str) -> tuple[websockets.ClientConnection, WsResult]:
    ws = await websockets.connect(url)
    await ws.send(json.dumps({"type": "run", "code": code}))
    result = WsResult()
    while not result.of("stdout"):  # the program is running once it has printed
        result.frames.append(json.loads(await ws.recv()))
    return ws, result


async def test_sigterm_lets_short_runs_finish_and_kills_long_ones(server_factory: ServerFactory) -> None:
    server = server_factory(SCE_SHUTDOWN_GRACE_S="3")
    async with asyncio.timeout(60):
        short_ws, short = await start_run(
            server.ws_url, "import time\nprint('a', flush=True)\ntime.sleep(1)\nprint('b')"
        )
        long_ws, long = await start_run(server.ws_url, "import time\nprint('a', flush=True)\ntime.sleep(600)")
        server.proc.send_signal(signal.SIGTERM)
        short, long = await asyncio.gather(collect(short_ws, short), collect(long_ws, long))
        code = await asyncio.to_thread(server.proc.wait, 30)
    assert short.exit["reason"] == "exit" and short.text() == "a\nb\n"
    assert long.exit["reason"] == "killed"
    assert short.close_code == long.close_code == 1000
    assert code == 0
    assert server_containers(server.proc.pid) == []


async def test_sigterm_drains_once_and_the_log_says_each_thing_once(server_factory: ServerFactory) -> None:
    notice = 3.0
    server = server_factory(SCE_DRAIN_NOTICE_S=f"{notice:g}")
    loop = asyncio.get_running_loop()
    began = loop.time()
    server.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(server.proc.wait, 30)
    took = loop.time() - began
    log = server.log()
    assert code == 0
    assert log.count("shutting down: draining") == 1, log  # serve.py and the app's shutdown: one drain
    assert notice <= took < 2 * notice, took  # the notice waited once, not twice
    assert log.count("Running on http://") == 1, log
