"""Load: 100 clients at once against 4 sandboxes and a queue of 16.

Every client gets an answer: its program's exit, or busy at once. None hangs, and afterwards
the server is back where it started: no run active or queued, no WebSocket open, no container
beyond its warm pool.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, server_containers
from tests.wsclient import WsResult, run_ws

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

CLIENTS = 100
CONCURRENCY = 4
QUEUE = 16
POOL = 2
CODE = "import time\ntime.sleep(0.2)\nprint('ok')"
ALL_ANSWERED_WITHIN_S = 150.0
SETTLE_S = 30.0


@pytest.fixture(scope="module")
def loaded() -> Iterator[ServerProcess]:
    proc = ServerProcess(
        {
            "SCE_MAX_CONCURRENT_RUNS": str(CONCURRENCY),
            "SCE_QUEUE_SIZE": str(QUEUE),
            "SCE_PER_CLIENT_RUNS": "1000",  # every client is 127.0.0.1: the share must not be the limit
            "SCE_POOL_SIZE": str(POOL),
        }
    )
    yield proc
    proc.stop()


# --- the server's state, from outside -------------------------------------------------------------


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def settled(server: ServerProcess) -> tuple[dict[str, Any], str]:
    """Wait until nothing runs, waits or stays open, and no container beyond the pool is left."""
    async with asyncio.timeout(SETTLE_S), httpx.AsyncClient(timeout=10) as http:
        while True:
            health = (await http.get(server.url + "/healthz")).json()
            metrics = (await http.get(server.url + "/metrics")).text
            containers = await asyncio.to_thread(server_containers, server.proc.pid)
            if (
                health["active_runs"] == 0
                and health["queued"] == 0
                and metric(metrics, "sce_open_websockets") == 0
                and len(containers) <= POOL
            ):
                return health, metrics
            await asyncio.sleep(0.2)  # runs are cleaned up in the server's background


async def current_metrics(server: ServerProcess) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        return (await http.get(server.url + "/metrics")).text


def classify_ws(result: WsResult | BaseException) -> str:
    """ "ok", "busy", or a description of what went wrong."""
    if isinstance(result, BaseException):
        return f"raised {type(result).__name__}: {result}"
    kinds = [f["type"] for f in result.frames]
    if kinds == ["error"]:
        error = result.frames[0]
        if error["code"] == "busy" and result.close_code == 1013:
            return "busy"
        return f"error {error} close {result.close_code}"
    queued = [f["position"] for f in result.of("queued")]
    if (
        kinds == ["queued"] * len(queued) + ["started", "stdout", "exit"]
        and result.text() == "ok\n"
        and result.exit["reason"] == "exit"
        and result.exit["exit_code"] == 0
        and result.close_code == 1000
    ):
        if queued and (queued != sorted(set(queued), reverse=True) or not 1 <= queued[-1] <= queued[0] <= QUEUE):
            return f"odd queue positions {queued}"
        return "ok"
    return f"unexpected {result.frames} close {result.close_code}"


async def test_100_websocket_clients_get_exit_or_busy(loaded: ServerProcess) -> None:
    before = await current_metrics(loaded)
    async with asyncio.timeout(ALL_ANSWERED_WITHIN_S):
        results = await asyncio.gather(
            *(run_ws(loaded.ws_url, CODE, within=ALL_ANSWERED_WITHIN_S) for _ in range(CLIENTS)),
            return_exceptions=True,
        )
    outcomes = Counter(classify_ws(r) for r in results)
    assert set(outcomes) <= {"ok", "busy"}, outcomes
    # the first CONCURRENCY + QUEUE to arrive are always admitted
    assert outcomes["ok"] >= CONCURRENCY + QUEUE, outcomes
    assert outcomes["ok"] + outcomes["busy"] == CLIENTS

    _, after = await settled(loaded)
    assert (
        metric(after, "sce_runs_total", '{reason="exit"}') - metric(before, "sce_runs_total", '{reason="exit"}')
        == (outcomes["ok"])
    )
    assert (
        metric(after, "sce_errors_total", '{code="busy"}') - metric(before, "sce_errors_total", '{code="busy"}')
        == (outcomes["busy"])
    )
    assert "Traceback" not in loaded.log()


async def test_100_http_clients_get_200_or_busy(loaded: ServerProcess) -> None:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=ALL_ANSWERED_WITHIN_S, limits=limits) as http:

        async def one() -> str:
            response = await http.post(loaded.url + "/run", json={"code": CODE})
            body = response.json()
            if response.status_code == 503 and body.get("code") == "busy" and response.headers.get("Retry-After"):
                return "busy"
            if (
                response.status_code == 200
                and body["stdout"] == "ok\n"
                and body["reason"] == "exit"
                and body["exit_code"] == 0
            ):
                return "ok"
            return f"unexpected {response.status_code} {body}"

        async with asyncio.timeout(ALL_ANSWERED_WITHIN_S):
            results = await asyncio.gather(*(one() for _ in range(CLIENTS)), return_exceptions=True)
    outcomes = Counter(r if isinstance(r, str) else f"raised {type(r).__name__}: {r}" for r in results)
    assert set(outcomes) <= {"ok", "busy"}, outcomes
    assert outcomes["ok"] >= CONCURRENCY + QUEUE, outcomes

    health, _ = await settled(loaded)
    assert health["status"] == "ok"
    assert "Traceback" not in loaded.log()
