"""The core of PROTOCOL.md through Quart's own test app (startup hooks and all), against the real engine.

No hypercorn here: the same app object, driven in-process, must answer exactly as it does over
the wire (see test_protocol_ws.py / test_protocol_http.py for the full tables).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from quart.testing import QuartClient, connections
from quart.testing.connections import WebsocketDisconnectError, WebsocketResponseError

from app.server.app import create_app
from app.settings import Settings

pytestmark = [pytest.mark.docker, pytest.mark.timeout(90)]

WAIT_S = 30.0
CODE_MAX_BYTES = 1000


@pytest.fixture
async def client() -> AsyncIterator[QuartClient]:
    settings = Settings(pool_size=0, code_max_bytes=CODE_MAX_BYTES, run_frame_timeout_s=5)
    app = create_app(settings)
    async with app.test_app() as test_app:  # runs before_serving/after_serving: engine, pool, cleanup
        yield test_app.test_client()


@dataclass
class Frames:
    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]

    def text(self, stream: str = "stdout") -> str:
        return "".join(f["data"] for f in self.of(stream))

    @property
    def exit(self) -> dict[str, Any]:
        (exit_,) = self.of("exit")
        return exit_


async def receive(ws: connections.TestWebsocketConnection, into: Frames) -> dict[str, Any] | None:
    """The next frame, or None once the app closed the connection (its close code is kept)."""
    try:
        async with asyncio.timeout(WAIT_S):  # the test websocket's receive() never times out by itself
            message = await ws.receive()
    except WebsocketDisconnectError as closed:
        into.close_code = closed.args[0] if closed.args else None
        return None
    frame: dict[str, Any] = json.loads(message)
    into.frames.append(frame)
    return frame


async def receive_all(ws: connections.TestWebsocketConnection, into: Frames | None = None) -> Frames:
    into = into or Frames()
    while await receive(ws, into) is not None:
        pass
    return into


async def run(client: QuartClient, code: str, *extra: dict[str, Any] | str) -> Frames:
    async with client.websocket("/run") as ws:
        await ws.send(json.dumps({"type": "run", "code": code}))
        for frame in extra:
            await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
        return await receive_all(ws)


async def test_hello_world(client: QuartClient) -> None:
    result = await run(client, "print(2 + 2)")
    assert [f["type"] for f in result.frames] == ["started", "stdout", "exit"]
    assert set(result.frames[0]["limits"]) == {"timeout_s", "memory_mb", "output_bytes", "pids"}
    assert result.text() == "4\n"
    assert result.exit["reason"] == "exit" and result.exit["exit_code"] == 0
    assert result.close_code == 1000


async def test_stdin_then_eof(client: QuartClient) -> None:
    code = "import sys\nprint(repr(sys.stdin.read()))"
    result = await run(client, code, {"type": "stdin", "data": "one\n"}, {"type": "stdin", "data": "two", "eof": True})
    assert result.text() == "'one\\ntwo'\n"
    assert result.exit["exit_code"] == 0 and result.close_code == 1000


async def test_bad_message(client: QuartClient) -> None:
    async with client.websocket("/run") as ws:
        await ws.send("this is not json")
        result = await receive_all(ws)
    assert [(f["type"], f["code"]) for f in result.frames] == [("error", "bad_message")]
    assert result.close_code == 1008


async def test_stdin_before_run_is_bad_message(client: QuartClient) -> None:
    async with client.websocket("/run") as ws:
        await ws.send(json.dumps({"type": "stdin", "data": "early"}))
        result = await receive_all(ws)
    assert [(f["type"], f["code"]) for f in result.frames] == [("error", "bad_message")]
    assert result.close_code == 1008


async def test_code_too_large(client: QuartClient) -> None:
    result = await run(client, "#" * (CODE_MAX_BYTES + 1))
    assert [(f["type"], f["code"]) for f in result.frames] == [("error", "code_too_large")]
    assert result.close_code == 1009


async def test_kill(client: QuartClient) -> None:
    result = Frames()
    async with client.websocket("/run") as ws:
        await ws.send(json.dumps({"type": "run", "code": "import time\nprint('ready', flush=True)\ntime.sleep(30)"}))
        while "ready\n" not in result.text():
            assert await receive(ws, result) is not None, result.frames
        await ws.send(json.dumps({"type": "kill"}))
        await receive_all(ws, result)
    assert result.exit["reason"] == "killed"
    assert result.exit["exit_code"] is None and result.exit["signal"] is None
    assert result.close_code == 1000


async def test_foreign_origin_is_refused_before_the_upgrade(client: QuartClient) -> None:
    with pytest.raises(WebsocketResponseError) as caught:
        async with client.websocket("/run", headers={"Origin": "http://evil.test"}) as ws:
            async with asyncio.timeout(WAIT_S):
                await ws.receive()
    assert caught.value.response.status_code == 403


async def test_http_post_run(client: QuartClient) -> None:
    async with asyncio.timeout(WAIT_S):
        response = await client.post("/run", json={"code": "import sys\nprint(input())\nsys.exit(2)", "stdin": "hi\n"})
    assert response.status_code == 200
    body = await response.get_json()
    assert body["stdout"] == body["output"] == "hi\n"
    assert body["exit_code"] == 2 and body["reason"] == "exit" and body["signal"] is None
    assert "error" not in body


async def test_http_post_timeout_sentence(client: QuartClient) -> None:
    async with asyncio.timeout(WAIT_S):
        response = await client.post("/run", json={"code": "while True: pass", "timeout": 1})
    body = await response.get_json()
    assert response.status_code == 200
    assert body["reason"] == "timeout"
    assert body["error"] == "Execution timed out after 1 second."


async def test_http_post_refusals(client: QuartClient) -> None:
    bad = await client.post("/run", json={"code": 5})
    assert bad.status_code == 400 and (await bad.get_json())["code"] == "bad_message"
    large = await client.post("/run", json={"code": "#" * (CODE_MAX_BYTES + 1)})
    assert large.status_code == 413 and (await large.get_json())["code"] == "code_too_large"
    plain = await client.post("/run", data="print(1)", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415


async def test_healthz(client: QuartClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "ok" and body["image"] == Settings().image
