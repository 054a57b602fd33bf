"""The server's memory over many runs of a mixed workload stays flat (the benchmark's figure is
1,500 runs after 200 with a 6 MiB bound; this is a shorter run with a looser one).

Hello world over WebSockets and POST /run, 100k lines, timeouts, kills and clients that leave,
eight at a time, in a fixed order. RSS is read when the server is idle again and the finished
runs kept for a resume have been let go.
"""

from __future__ import annotations

import asyncio
import itertools
import random

import httpx
import pytest

from tests.bench import programs as P
from tests.bench.client import http_run, ws_cut, ws_run
from tests.bench.common import proc_rss_kb
from tests.conftest import ServerProcess

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

WARMUP = 60
RUNS = 240
BOUND_MIB = 16
GRACE_S = 1.0
SLEEPER = "import time\nprint('up', flush=True)\ntime.sleep(60)"


async def mixed(server: ServerProcess, count: int, seed: int) -> None:
    kinds = ["hello"] * 4 + ["http", "lines", "timeout", "kill", "leave"]
    rng = random.Random(seed)
    plan = [rng.choice(kinds) for _ in range(count)]
    counter = itertools.count()

    async def one(kind: str) -> None:
        if kind == "hello":
            assert (await ws_run(server.ws_url, P.HELLO)).first_text == P.HELLO_OUT
        elif kind == "http":
            assert (await http_run(server.url, P.HELLO)).first_text == P.HELLO_OUT
        elif kind == "lines":
            assert (await ws_run(server.ws_url, P.LINES)).stdout_chars == P.LINES_BYTES
        elif kind == "timeout":
            assert (await ws_run(server.ws_url, P.BUSY, run_timeout=0.3)).exit["reason"] == "timeout"
        else:
            await ws_cut(server.ws_url, SLEEPER, kill=kind == "kill")

    async def worker() -> None:
        while (i := next(counter)) < count:
            await one(plan[i])

    await asyncio.gather(*(worker() for _ in range(8)))


def gauges(server: ServerProcess) -> dict[str, float]:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    return {
        name: float(value)
        for name, _, value in (line.partition(" ") for line in text.splitlines())
        if name in ("sce_active_runs", "sce_runs_resumable", "sce_heap_trims")
    }


async def idle_rss(server: ServerProcess) -> int:
    """RSS once the server is idle, the finished runs kept for a resume are let go, and the heap
    has been trimmed after that (one trim always follows the last forgetting, within ~2 s)."""
    async with asyncio.timeout(60):
        while True:  # the server has no event to wait on; polling its gauges is the condition
            now = await asyncio.to_thread(gauges, server)
            if now["sce_active_runs"] == 0 and now["sce_runs_resumable"] == 0:
                break
            await asyncio.sleep(0.1)
        trims = now["sce_heap_trims"]
        while True:
            if (await asyncio.to_thread(gauges, server))["sce_heap_trims"] > trims:
                break
            await asyncio.sleep(0.1)
    return proc_rss_kb(server.proc.pid)


async def test_server_memory_stays_flat_over_a_mixed_workload() -> None:
    server = ServerProcess(
        {
            "SCE_MAX_CONCURRENT_RUNS": "8",
            "SCE_PER_CLIENT_RUNS": "64",
            "SCE_QUEUE_SIZE": "64",
            "SCE_OUTPUT_BYTES": "20000000",
            "SCE_RESUME_GRACE_S": str(GRACE_S),
            "SCE_SCIENTIFIC_POOL_SIZE": "0",
        }
    )
    try:
        await mixed(server, WARMUP, 1)
        before = await idle_rss(server)
        await mixed(server, RUNS, 2)
        after = await idle_rss(server)
    finally:
        server.stop()
    assert (after - before) / 1024 < BOUND_MIB, f"RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB"
