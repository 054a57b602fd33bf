"""``client.session()`` against the real server (PROTOCOL.md "Sessions (v3)"): what the client
was written to from the contract, checked on real sessions, real hypercorn and real containers."""

from __future__ import annotations

import asyncio

import pytest

from app.client import AsyncClient, Client, ClientError, SessionBusy
from app.protocol import StdoutFrame
from tests.conftest import ServerProcess, module_server

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]

served = module_server({"SCE_POOL_SIZE": "0", "SCE_PER_CLIENT_RUNS": "8", "SCE_SESSIONS_PER_CLIENT": "4"})


async def test_state_result_exception_and_info_on_a_real_session(served: ServerProcess) -> None:
    async with asyncio.timeout(60), AsyncClient(served.url) as client, client.session(files={"in.txt": "7"}) as session:
        assert session.id is not None and session.runtime == "python" and session.alive
        assert session.limits is not None and session.limits.idle_timeout_s > 0
        first = await session.run("import math\nx = int(open('in.txt').read())\nprint('set')")
        second = await session.run("math.factorial(x)")
        failed = await session.run("y = 1\n\nx / 0")
        info = await session.info()
        session_id, token = session.id, session.created.token if session.created else ""
    assert first.ok and first.stdout == "set\n" and first.result is None and first.session_alive is True
    assert second.ok and second.result == "5040"
    assert failed.exception is not None and (failed.exception.name, failed.exception.line) == ("ZeroDivisionError", 3)
    assert failed.session_alive is True and failed.exit_code == 1
    assert (info.runs, info.state) == (3, "idle")
    # leaving the block ended it: the id and token open nothing now
    async with AsyncClient(served.url) as client:
        response = await client.http().get(f"/sessions/{session_id}", headers={"X-Session-Token": token})
    assert response.status_code == 404


async def test_a_second_run_at_once_is_session_busy_and_kill_keeps_the_session(served: ServerProcess) -> None:
    async with asyncio.timeout(60), AsyncClient(served.url) as client, client.session() as session:
        await session.run("n = 1")
        run = session.run("import time\nprint('up', flush=True)\ntime.sleep(30)")
        async for frame in run:
            if isinstance(frame, StdoutFrame):
                with pytest.raises(SessionBusy):
                    await session.run("n")
                await run.kill()
        assert run.exit is not None and run.exit.reason == "killed" and run.exit.session_alive is True
        after = await session.run("n + 1")
    assert after.result == "2"


async def test_a_closed_session_is_gone_for_the_client_and_the_server(served: ServerProcess) -> None:
    async with asyncio.timeout(60), AsyncClient(served.url) as client:
        session = await client.session().open()
        made = session.created
        assert made is not None
        await session.close()
        await session.close()  # twice is fine
        with pytest.raises(ClientError, match="has ended"):
            session.run("1")
        response = await client.http().post("/run", json={"code": "1", "session": made.id, "session_token": made.token})
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_the_blocking_session_on_a_real_server(served: ServerProcess) -> None:
    with Client(served.url) as client, client.session() as session:
        session.run("words = ['a']")
        session.run("words.append('b')")
        result = session.run("print(len(words))\nwords")
    assert result.stdout == "2\n" and result.result == "['a', 'b']"
