"""The service's side: runs over the real WebSocket, timed from the client."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import websockets

from tests.bench.common import now

# websockets offers permessage-deflate by default, as every browser does (and hypercorn accepts it);
# "plain" refuses it, as a minimal non-browser client might.
COMPRESSION = {"deflate": "deflate", "plain": None}


@dataclass
class WsRun:
    connect_s: float
    first_byte_s: float | None  # run frame sent -> first stdout frame
    exit_s: float  # run frame sent -> exit frame
    stdout_chars: int
    exit: dict[str, Any]
    frames: int
    first_text: str = ""
    sent_at: float = 0.0  # wall-clock time the run frame was sent
    started_s: float | None = None  # run frame sent -> started frame
    extra: dict[str, Any] = field(default_factory=dict)


async def ws_run(
    url: str,
    code: str,
    *,
    run_timeout: float | None = None,
    mode: str = "deflate",
    within: float = 120,
    fields: dict[str, Any] | None = None,
) -> WsRun:
    """One run over its own WebSocket; ``fields`` go into the run frame (a session's, for one)."""
    frame: dict[str, Any] = {"type": "run", "code": code, **(fields or {})}
    if run_timeout is not None:
        frame["timeout"] = run_timeout
    first: float | None = None
    first_text = ""
    chars = 0
    frames = 0
    exit_frame: dict[str, Any] | None = None
    started: float | None = None
    async with asyncio.timeout(within):
        t0 = now()
        async with websockets.connect(url, max_size=None, compression=COMPRESSION[mode], open_timeout=30) as ws:
            t1 = now()
            await ws.send(json.dumps(frame))
            t_send, sent_at = now(), time.time()
            async for message in ws:
                frames += 1
                msg = json.loads(message)
                kind = msg["type"]
                if kind == "started" and started is None:
                    started = now() - t_send
                elif kind == "stdout":
                    if first is None:
                        first = now() - t_send
                        first_text = msg["data"]
                    chars += len(msg["data"])
                elif kind == "exit":
                    exit_s = now() - t_send
                    exit_frame = msg
                elif kind == "error":
                    raise RuntimeError(f"server error frame: {msg}")
    if exit_frame is None:
        raise RuntimeError("the connection closed without an exit frame")
    return WsRun(t1 - t0, first, exit_s, chars, exit_frame, frames, first_text, sent_at, started)


async def open_idle(url: str, count: int) -> list[Any]:
    """``count`` connected WebSockets that never send a run frame."""
    return list(await asyncio.gather(*(websockets.connect(url, max_size=None, open_timeout=60) for _ in range(count))))


@dataclass
class HttpRun:
    """``POST /run``: the answer comes once, at the end (``first_byte_s`` == ``exit_s``)."""

    first_byte_s: float
    exit_s: float
    exit: dict[str, Any]
    first_text: str
    connect_s: float = 0.0


async def http_run(url: str, code: str, *, client: Any = None, run_timeout: float | None = None) -> HttpRun:
    import httpx

    body: dict[str, Any] = {"code": code}
    if run_timeout is not None:
        body["timeout"] = run_timeout
    own = client is None
    http = client or httpx.AsyncClient(base_url=url, timeout=120)
    try:
        t0 = now()
        resp = await http.post("/run", json=body)
        took = now() - t0
    finally:
        if own:
            await http.aclose()
    answer = resp.json()
    if resp.status_code != 200:
        raise RuntimeError(f"POST /run answered {resp.status_code}: {answer}")
    return HttpRun(took, took, answer, answer.get("stdout", ""))


async def ws_cut(url: str, code: str, *, kill: bool) -> None:
    """A run left at its first stdout frame: with a ``kill`` frame (then read to the exit), or by
    closing the connection without a word (a client that goes away)."""
    async with asyncio.timeout(60):
        async with websockets.connect(url, max_size=None, open_timeout=30) as ws:
            await ws.send(json.dumps({"type": "run", "code": code}))
            async for message in ws:
                kind = json.loads(message)["type"]
                if kind == "stdout":
                    if not kill:
                        return  # the context manager closes the socket
                    await ws.send(json.dumps({"type": "kill"}))
                    kill = False
                elif kind == "exit":
                    return
