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


async def test_websocket_compression_is_not_negotiated(server: ServerProcess) -> None:
    """Browsers always offer permessage-deflate; it costs first-byte latency and CPU for small lines."""
    import websockets

    async with websockets.connect(server.ws_url, compression="deflate") as ws:
        assert ws.request is not None and "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
        assert ws.response is not None and ws.response.headers.get("Sec-WebSocket-Extensions") is None
