"""Resume and watch (protocol v2) over real hypercorn, through a proxy that drops connections.

The proxy aborts both TCP sockets (no close frame either way): what a train tunnel does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from tests.conftest import ServerProcess, module_server, project_containers
from tests.tcpproxy import TcpProxy
from tests.wsclient import WsResult, collect

pytestmark = [pytest.mark.docker, pytest.mark.timeout(90)]

COUNTER = "import time\nfor i in range(40):\n    print(i, flush=True)\n    time.sleep(0.1)"
short_grace = module_server({"SCE_RESUME_GRACE_S": "2", "SCE_PER_CLIENT_RUNS": "16", "SCE_WATCHERS_MAX": "2"})


def ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/run"


async def frames_until(connection: Any, count: int) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while len([f for f in frames if f["type"] == "stdout"]) < count:
        frames.append(json.loads(await connection.recv()))
    return frames


async def test_a_run_survives_a_drop_and_a_resume_gets_every_line_once(short_grace: ServerProcess) -> None:
    async with asyncio.timeout(60), TcpProxy(short_grace.port) as proxy:
        connection = await websockets.connect(ws(proxy.url))
        await connection.send(json.dumps({"type": "run", "code": COUNTER, "timeout": 20}))
        first = await frames_until(connection, 8)
        proxy.cut()
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                first.append(json.loads(await connection.recv()))
        started = first[0]
        last = max(f["seq"] for f in first if "seq" in f)
        # the client is away while the program prints on: a watcher sees five more lines go by
        async with websockets.connect(ws(short_grace.url)) as watcher:
            await watcher.send(json.dumps({"type": "watch", "id": started["id"], "token": started["watch_token"]}))
            while json.loads(await watcher.recv()).get("seq", 0) < last + 5:
                pass
        async with websockets.connect(ws(short_grace.url)) as back:
            await back.send(
                json.dumps({"type": "resume", "id": started["id"], "token": started["token"], "after": last})
            )
            rest = await collect(back)
    lines = [f["data"] for f in first + rest.frames if f["type"] == "stdout"]
    assert "".join(lines) == "".join(f"{i}\n" for i in range(40))  # each line once, in order
    assert rest.frames[0]["seq"] == last + 1
    assert rest.exit["reason"] == "exit" and rest.close_code == 1000


async def test_past_the_grace_the_run_is_gone_and_so_is_its_sandbox(short_grace: ServerProcess) -> None:
    async with asyncio.timeout(60), TcpProxy(short_grace.port) as proxy:
        connection = await websockets.connect(ws(proxy.url))
        code = "import socket, time\nprint(socket.gethostname(), flush=True)\ntime.sleep(60)"
        await connection.send(json.dumps({"type": "run", "code": code, "timeout": 50}))
        started = json.loads(await connection.recv())
        short_id = json.loads(await connection.recv())["data"].strip()
        async with websockets.connect(ws(short_grace.url)) as watcher:
            await watcher.send(json.dumps({"type": "watch", "id": started["id"], "token": started["watch_token"]}))
            proxy.cut()
            watched = await collect(watcher)  # ends when the grace is over and the run is killed
        assert watched.exit["reason"] == "killed"
        # then the finished run is kept for its own grace; a watch (which never drives) asks until it is gone
        for _ in range(100):  # polling a deadline on the server, which sends no event for it
            gone = await watch(short_grace, started["id"], started["watch_token"])
            if gone.of("error"):
                break
            await asyncio.sleep(0.1)
        assert gone.error["code"] == "not_found"
        result = await resume(short_grace, started["id"], started["token"])
    assert gone.close_code == 1008
    assert result.error["code"] == "not_found" and result.close_code == 1008
    assert not [c for c in project_containers() if c["Id"].startswith(short_id)]


async def resume(server: ServerProcess, run_id: str, token: str, after: int = 0) -> WsResult:
    async with websockets.connect(ws(server.url)) as connection:
        await connection.send(json.dumps({"type": "resume", "id": run_id, "token": token, "after": after}))
        return await collect(connection)


async def watch(server: ServerProcess, run_id: str, token: str) -> WsResult:
    async with websockets.connect(ws(server.url)) as connection:
        await connection.send(json.dumps({"type": "watch", "id": run_id, "token": token}))
        return await collect(connection)


async def test_a_wrong_token_is_not_found(short_grace: ServerProcess) -> None:
    async with asyncio.timeout(30), websockets.connect(ws(short_grace.url)) as driver:
        await driver.send(json.dumps({"type": "run", "code": "import time\ntime.sleep(30)", "timeout": 20}))
        started = json.loads(await driver.recv())
        wrong = await resume(short_grace, started["id"], started["watch_token"])
        await driver.send(json.dumps({"type": "kill"}))
        await collect(driver)
    assert wrong.error["code"] == "not_found" and wrong.close_code == 1008


async def test_a_clean_close_still_kills_at_once(short_grace: ServerProcess) -> None:
    async with asyncio.timeout(30):
        async with websockets.connect(ws(short_grace.url)) as driver:
            await driver.send(json.dumps({"type": "run", "code": "import time\ntime.sleep(30)", "timeout": 20}))
            started = json.loads(await driver.recv())
        result = await resume(short_grace, started["id"], started["token"])  # the finished run is still kept
    assert result.exit["reason"] == "killed"


async def test_two_watchers_see_what_the_driver_sees_and_cannot_drive(short_grace: ServerProcess) -> None:
    async with asyncio.timeout(60), websockets.connect(ws(short_grace.url)) as driver:
        await driver.send(json.dumps({"type": "run", "code": COUNTER.replace("40", "15"), "timeout": 20}))
        started = json.loads(await driver.recv())
        watch = {"type": "watch", "id": started["id"], "token": started["watch_token"]}
        watchers = [await websockets.connect(ws(short_grace.url)) for _ in range(3)]
        for w in watchers:
            await w.send(json.dumps(watch))
        third = await collect(watchers[2])  # the limit is 2
        first_frame = json.loads(await watchers[1].recv())
        await watchers[1].send(json.dumps({"type": "kill"}))
        refused = await collect(watchers[1])
        mine, theirs = await asyncio.gather(collect(driver), collect(watchers[0]))
    assert third.error["code"] == "busy" and third.close_code == 1013
    assert refused.error["code"] == "bad_message" and refused.close_code == 1008
    assert "token" not in first_frame and first_frame["id"] == started["id"]
    assert theirs.frames[1:] == mine.frames and mine.exit["reason"] == "exit"


ASKS = "print('got', input('more? '))\nprint('and', input('again? '))"


def after_prompt(frames: list[dict[str, Any]], prompt: str) -> dict[str, Any]:
    """The frame that follows the one whose output ends with ``prompt``."""
    at = next(i for i, f in enumerate(frames) if f["type"] == "stdout" and f["data"].endswith(prompt))
    return frames[at + 1]


async def test_a_watcher_sees_what_the_driver_typed_where_it_was_typed(short_grace: ServerProcess) -> None:
    async with asyncio.timeout(60), websockets.connect(ws(short_grace.url)) as driver:
        await driver.send(json.dumps({"type": "run", "code": ASKS, "timeout": 20}))
        started = json.loads(await driver.recv())
        async with websockets.connect(ws(short_grace.url)) as watcher:
            await watcher.send(json.dumps({"type": "watch", "id": started["id"], "token": started["watch_token"]}))
            seen = [json.loads(await driver.recv())]
            while not seen[-1].get("data", "").endswith("more? "):
                seen.append(json.loads(await driver.recv()))
            await driver.send(json.dumps({"type": "stdin", "data": "yes\n"}))
            while not seen[-1].get("data", "").endswith("again? "):
                seen.append(json.loads(await driver.recv()))
            await driver.send(json.dumps({"type": "stdin", "data": "no\n", "eof": True}))
            mine, theirs = await asyncio.gather(collect(driver), collect(watcher))
    driven = [started, *seen, *mine.frames]
    # the input follows the prompt it answers, for the driver and the watcher alike, with its seq
    assert after_prompt(driven, "more? ") == {"type": "input", "data": "yes\n", "eof": False, "seq": 2}
    assert after_prompt(driven, "again? ")["type"] == "input" and after_prompt(driven, "again? ")["eof"] is True
    assert theirs.frames[1:] == driven[1:]
    assert "got yes\n" in theirs.text() and "and no\n" in theirs.text()


async def test_a_resumed_driver_sees_the_input_that_reached_the_program_before_the_drop(
    short_grace: ServerProcess,
) -> None:
    async with asyncio.timeout(60), TcpProxy(short_grace.port) as proxy:
        connection = await websockets.connect(ws(proxy.url))
        code = "print('got', input('more? '))\nimport time\ntime.sleep(0.5)\nprint('done')"
        await connection.send(json.dumps({"type": "run", "code": code, "stdin": "first\n", "timeout": 20}))
        started = json.loads(await connection.recv())
        assert json.loads(await connection.recv()) == {"type": "input", "data": "first\n", "eof": False, "seq": 1}
        proxy.cut()
        result = await resume(short_grace, started["id"], started["token"])
    assert result.frames[0] == {"type": "input", "data": "first\n", "eof": False, "seq": 1}
    assert result.text() == "more? got first\ndone\n" and result.exit["reason"] == "exit"
