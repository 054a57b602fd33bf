"""Sessions behind HAProxy (deploy/haproxy.cfg): every request for a session reaches the server
that holds it, whatever ``leastconn`` would choose (#25.4).

Two servers on the host's engine, named ``server1`` and ``server2`` (``SCE_SERVER_NAME``, as on
HAProxy's server lines), one session on each. Their runs are interleaved through HAProxy, over
the WebSocket (the client adds ``?session=ID`` to the URL) and ``POST /run`` (the body's
``session``), while a long run held open on one server makes ``leastconn`` prefer the other for
everything new: each session counts its own runs, so a run that reached the other server would be
``not_found`` and the count would break. Then a server dies: its session is gone (404), the other
lives on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from app.client import AsyncClient
from app.client.session import AsyncSession
from tests.cluster.conftest import LONG_PROGRAM, Balancer, frames_until, open_run
from tests.conftest import ServerProcess, until

pytestmark = [pytest.mark.docker, pytest.mark.cluster, pytest.mark.timeout(240)]

RUNS = 10


def server_env(name: str) -> dict[str, str]:
    return {
        "SCE_SERVER_NAME": name,
        "SCE_TRUSTED_PROXIES": "127.0.0.1",
        "SCE_POOL_SIZE": "0",
        "SCE_SCIENTIFIC_POOL_SIZE": "0",
        "SCE_SESSIONS_PER_CLIENT": "6",
        "SCE_SESSIONS_MAX": "6",
        "SCE_PER_CLIENT_RUNS": "8",
    }


@contextlib.asynccontextmanager
async def two_servers() -> AsyncIterator[tuple[list[ServerProcess], Balancer]]:
    servers: list[ServerProcess] = []
    balancer: Balancer | None = None
    try:
        for name in ("server1", "server2"):  # the names sce_cluster gives HAProxy's server lines
            servers.append(await asyncio.to_thread(ServerProcess, server_env(name)))
        balancer = Balancer(servers, inter_ms=500, fall=2, rise=1)

        async def up() -> bool | str:
            assert balancer is not None
            states = await asyncio.to_thread(balancer.states)
            return (len(states) == 2 and all(s == "UP" for s in states.values())) or str(states)

        await until(up, 20, "HAProxy sees both servers UP")
        yield servers, balancer
    finally:
        if balancer is not None:
            balancer.stop()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(server.stop)


async def one_on_each(client: AsyncClient) -> dict[str, AsyncSession]:
    """Sessions made through HAProxy until each server holds one (leastconn spreads them)."""
    held: dict[str, AsyncSession] = {}
    for _ in range(6):
        session = await client.session().open()
        assert session.id is not None
        name = session.id.split(".")[0]
        if name in held:
            await session.close()
        else:
            held[name] = session
        if len(held) == 2:
            return held
    raise AssertionError(f"every session landed on {set(held)}")


async def test_a_sessions_runs_all_reach_its_server() -> None:
    async with two_servers() as (servers, balancer), AsyncClient(balancer.url) as client:
        sessions = await one_on_each(client)
        assert set(sessions) == {"server1", "server2"}
        for session in sessions.values():
            await session.run("count = 0")
        # a long run held open: leastconn now sends every new request to the other server
        held = await open_run(balancer.ws_url, LONG_PROGRAM)
        assert (await frames_until(held, {"stdout"}))[-1]["type"] == "stdout"
        for i in range(1, RUNS + 1):
            for name, session in sessions.items():
                code = f"count += 1\nassert count == {i}, count\n(count, {name!r})"
                if i % 2:  # the WebSocket: routed by ?session= in the upgrade's URL
                    result = await session.run(code)
                    text = result.result
                else:  # POST /run: routed by the body's "session"
                    made = session.created
                    assert made is not None
                    body = {"code": code, "session": made.id, "session_token": made.token}
                    response = await client.http().post("/run", json=body, timeout=60)
                    assert response.status_code == 200, response.text
                    text = response.json()["result"]
                assert text == repr((i, name)), f"run {i} of {name}'s session: {text!r}"
        for name, session in sessions.items():
            info = await session.info()  # GET /sessions/ID: routed by the path
            assert info.runs == RUNS + 1, name

        # server1 dies: its session is gone (a 404 from the survivor), server2's lives on
        servers[0].proc.kill()
        await asyncio.to_thread(servers[0].proc.wait, 10)
        dead = sessions["server1"].created
        assert dead is not None
        body = {"code": "count", "session": dead.id, "session_token": dead.token}
        response = await client.http().post("/run", json=body, timeout=60)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
        alive = await sessions["server2"].run("count")
        assert alive.result == str(RUNS)
        await sessions["server2"].close()
        await held.close()
        assert (await client.http().get("/healthz", timeout=10)).status_code == 200  # the survivor serves


async def test_an_mcp_sessions_requests_and_kept_state_stay_on_its_server() -> None:
    """The handshake era's MCP session lives on the server that opened it: HAProxy learns its id
    from the answer and sends every later request there, so keep_state counts across calls."""
    async with two_servers() as (_, balancer):
        http = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=60))
        transport = streamable_http_client(balancer.url + "/mcp", http_client=http)
        async with http, Client(transport, mode="legacy") as client:
            await client.call_tool("run_python", {"code": "count = 0", "keep_state": True})
            for i in range(1, RUNS + 1):
                assert len((await client.list_tools()).tools) == 3
                result = await client.call_tool("run_python", {"code": "count += 1\ncount", "keep_state": True})
                assert result.is_error is False, result.content
                assert result.structured_content is not None and result.structured_content["result"] == str(i)
            reset = await client.call_tool("reset_state", {})
        assert reset.structured_content == {"reset": True}
