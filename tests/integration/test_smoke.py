"""The shortest path through the real stack: hypercorn, WebSocket, engine, container."""

from __future__ import annotations

import pytest

from tests.conftest import ServerProcess
from tests.wsclient import run_ws

pytestmark = [pytest.mark.docker, pytest.mark.timeout(60)]


async def test_hello_world_over_websocket(server: ServerProcess) -> None:
    result = await run_ws(server.ws_url, "print(2 + 2)")
    assert [f["type"] for f in result.frames] == ["started", "stdout", "exit"]
    assert result.text() == "4\n"
    assert result.exit["reason"] == "exit" and result.exit["exit_code"] == 0
    assert result.close_code == 1000
