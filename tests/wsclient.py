"""A small protocol client for tests: run code over the real WebSocket, collect every frame."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


@dataclass
class WsResult:
    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]

    @property
    def exit(self) -> dict[str, Any]:
        exits = self.of("exit")
        assert len(exits) == 1, self.frames
        return exits[0]

    @property
    def error(self) -> dict[str, Any]:
        errors = self.of("error")
        assert len(errors) == 1, self.frames
        return errors[0]

    def text(self, stream: str = "stdout") -> str:
        return "".join(f["data"] for f in self.of(stream))


async def collect(ws: ClientConnection, result: WsResult | None = None) -> WsResult:
    """Read frames until the server closes the connection."""
    result = result or WsResult()
    try:
        async for message in ws:
            result.frames.append(json.loads(message))
    except websockets.ConnectionClosed:
        pass
    result.close_code = ws.close_code
    return result


async def run_ws(
    ws_url: str,
    code: str,
    *,
    stdin: str | None = None,
    run_timeout: float | None = None,
    extra: list[dict[str, Any]] | None = None,
    within: float = 60,
    **connect_kwargs: Any,
) -> WsResult:
    """Send one run frame (and any ``extra`` frames right after it) and collect the whole run."""
    frame: dict[str, Any] = {"type": "run", "code": code}
    if stdin is not None:
        frame["stdin"] = stdin
    if run_timeout is not None:
        frame["timeout"] = run_timeout
    async with asyncio.timeout(within):
        async with websockets.connect(ws_url, max_size=None, **connect_kwargs) as ws:
            await ws.send(json.dumps(frame))
            for f in extra or []:
                await ws.send(json.dumps(f))
            return await collect(ws)
