"""Servers sharing one engine: they start, run, reap and stop at the same time, and no run fails.

Every server reaps what dead servers left (containers, and parent cgroups) when it starts, and
removes its own when it stops; on a shared engine none of that may touch a live neighbour's
sandboxes, its warm pool, or the parent cgroups its runs sit in. Real servers (hypercorn), on the
second engine's Unix socket (the engine on this host: parent cgroups in use).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.wsclient import WsResult, run_ws

pytestmark = [pytest.mark.docker, pytest.mark.cluster]

PROGRAM = "import time\nprint('a', flush=True)\ntime.sleep(1.5)\nprint('b')"
ROUNDS = 3
RUNS_PER_SERVER = 2


def server_env(engine2: Any) -> dict[str, str]:
    return {"SCE_DOCKER_HOSTS": engine2.url, "SCE_POOL_SIZE": "2", "SCE_SHUTDOWN_GRACE_S": "20"}


async def start_server(engine2: Any) -> ServerProcess:
    return await asyncio.to_thread(ServerProcess, server_env(engine2))


async def runs_on(server: ServerProcess) -> list[WsResult]:
    return list(await asyncio.gather(*(run_ws(server.ws_url, PROGRAM, within=90) for _ in range(RUNS_PER_SERVER))))


@pytest.mark.timeout(300)
async def test_three_servers_start_run_reap_and_stop_together_and_no_run_fails(engine2: Any) -> None:
    started = await asyncio.gather(*(start_server(engine2) for _ in range(3)), return_exceptions=True)
    servers = [s for s in started if isinstance(s, ServerProcess)]
    if len(servers) < len(started):  # one did not start: the others are stopped, not left running
        for server in servers:
            await asyncio.to_thread(server.stop)
        raise next(s for s in started if isinstance(s, BaseException))
    logs: list[str] = []
    results: list[WsResult] = []
    try:
        for _ in range(ROUNDS):
            # runs in flight on every server while one stops (draining), and a new one starts (reaping)
            in_flight = [asyncio.ensure_future(runs_on(s)) for s in servers]
            await asyncio.sleep(0.3)  # the runs have reached their servers (they last 1.5 s)
            leaving = servers.pop(0)
            stopping = asyncio.to_thread(leaving.stop)
            starting = start_server(engine2)
            _, newcomer = await asyncio.gather(stopping, starting)
            logs.append(leaving.log())
            servers.append(newcomer)
            for batch in await asyncio.gather(*in_flight):
                results += batch
            results += await runs_on(newcomer)  # its warm pool serves while the others run on
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)
            logs.append(server.log())
    failed = [r.frames for r in results if r.text() != "a\nb\n" or r.of("error") or r.exit["exit_code"] != 0]
    assert failed == [], failed[:3]
    engine_failures = [line for log in logs for line in log.splitlines() if re.search(r"engine .*failed", line)]
    assert engine_failures == [], engine_failures[:5]
