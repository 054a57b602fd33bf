"""``GET /run`` over WebSocket: one connection, one run, as an explicit state machine.

    AWAITING_RUN --run--> QUEUED --slot--> RUNNING --exit--> CLOSED
          \\______________ error (bad frame, busy, engine gone) ______/

Two tasks share a connection: the session sends the run's events; a receiver reads the
client's frames (stdin, eof, kill) and reports protocol violations. Whichever ends first
decides; the other is cancelled. A vanished client cancels the whole handler, which kills and
removes the sandbox on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from typing import Any

from quart import Response, websocket

from app.core.events import Exit
from app.errors import BadMessage, Internal, SCEError, Unavailable
from app.protocol import KillFrame, RunRequest, StdinFrame, parse_client_frame
from app.sandbox.run import Run, StdinQueue
from app.server.context import ServerContext
from app.server.guards import check_origin, check_token, client_key
from app.server.responses import error_response


class State(enum.Enum):
    AWAITING_RUN = "awaiting_run"
    QUEUED = "queued"
    RUNNING = "running"
    CLOSED = "closed"


class ClientStalled(Exception):
    """The client did not accept a frame within the send timeout: it is treated as gone."""


class WebSocketSession:
    def __init__(self, ctx: ServerContext, client: str) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.client = client
        self.state = State.AWAITING_RUN
        self.stdin = StdinQueue()
        self.run: Run | None = None
        self._main: asyncio.Task[None] | None = None
        self._killed_early = False

    # -- frames out ---------------------------------------------------------------------------
    async def send(self, frame: dict[str, Any]) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that lands
        # as the send completes (a vanished client), and the run would go on to its timeout
        try:
            async with asyncio.timeout(self.settings.send_timeout_s):
                await websocket.send(json.dumps(frame))
        except TimeoutError:
            raise ClientStalled() from None

    async def close(self, code: int) -> None:
        self.state = State.CLOSED
        with contextlib.suppress(Exception):
            await websocket.close(code)

    async def fail(self, error: SCEError) -> None:
        self.ctx.metrics.errors.labels(error.code).inc()
        with contextlib.suppress(Exception):
            await self.send(error.to_frame())
        await self.close(error.close_code)

    # -- frames in -----------------------------------------------------------------------------
    async def receive(self) -> Any:
        message = await websocket.receive()
        if not isinstance(message, str):
            raise BadMessage("frames must be JSON text, not binary")
        return parse_client_frame(message, self.settings)

    async def await_run_frame(self) -> RunRequest:
        try:
            async with asyncio.timeout(self.settings.run_frame_timeout_s):
                frame = await self.receive()
        except TimeoutError:
            raise BadMessage(f"no run frame within {self.settings.run_frame_timeout_s:g} s") from None
        if not isinstance(frame, RunRequest):
            raise BadMessage("the first frame must be a run frame")
        return frame

    async def receiver(self) -> None:
        """Runs from the run frame to the end; raises on a protocol violation."""
        while True:
            frame = await self.receive()
            if isinstance(frame, RunRequest):
                raise BadMessage("only one run frame per connection")
            if isinstance(frame, StdinFrame):
                if frame.data:
                    await self.stdin.write(frame.data)
                if frame.eof:
                    await self.stdin.close()
            elif isinstance(frame, KillFrame):
                if self.run is not None:
                    self.run.kill()
                elif self._main is not None:
                    self._killed_early = True
                    self._main.cancel()

    # -- the run ---------------------------------------------------------------------------------
    async def on_position(self, position: int) -> None:
        self.state = State.QUEUED
        await self.send({"type": "queued", "position": position})

    async def execute(self, request: RunRequest) -> None:
        ctx = self.ctx
        async with ctx.admission.slot(self.client, self.on_position):
            if ctx.draining:
                raise Unavailable("the server is shutting down")
            async with ctx.service.run(request, ctx.new_run_id(), self.stdin) as run:
                self.run = run
                self.state = State.RUNNING
                ctx.add_run(run)
                try:
                    async for event in run.events():
                        await self.send(event.to_frame())
                finally:
                    ctx.remove_run(run)
                    ctx.record(run, self.client, "websocket", request)

    async def serve(self) -> None:
        try:
            request = await self.await_run_frame()
            loop = asyncio.get_running_loop()
            self._main = loop.create_task(self.execute(request))
            receiver = loop.create_task(self.receiver())
            try:
                done, _ = await asyncio.wait({self._main, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if receiver in done:
                    self._main.cancel()
                    with contextlib.suppress(BaseException):
                        await self._main
                    receiver.result()  # raises the violation
                try:
                    await self._main
                except asyncio.CancelledError:
                    if not self._killed_early:
                        raise
                    await self.send(_killed_before_start())
            finally:
                receiver.cancel()
                self._main.cancel()
                for task in (receiver, self._main):  # their clean-up (the sandbox) ends before ours
                    with contextlib.suppress(BaseException):
                        await task
            await self.close(1000)
        except SCEError as error:
            await self.fail(error)
        except ClientStalled:
            await self.close(1008)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: the client still gets the protocol's answer
            await self.fail(Internal(f"internal error: {type(exc).__name__}"))
            raise


def _killed_before_start() -> dict[str, Any]:
    return Exit("killed", None, None, 0, 0, 0, False).to_frame()


async def websocket_run(ctx: ServerContext) -> Response | None:
    """The route: refuse before the upgrade (HTTP 401/403), else accept and serve one run."""
    try:
        check_origin(websocket.headers, ctx.settings)
        check_token(websocket.headers, websocket.args, ctx.settings)
    except SCEError as error:
        return error_response(error)
    await websocket.accept()
    ctx.metrics.websockets.inc()
    try:
        client = client_key(websocket.headers, websocket.args, websocket.remote_addr, ctx.settings)
        await WebSocketSession(ctx, client).serve()
    finally:
        ctx.metrics.websockets.dec()
    return None
