"""``GET /run`` over WebSocket: one connection, one run, as an explicit state machine.

    AWAITING_FIRST --run--> QUEUED --started--> RUNNING --exit/error--> ENDED --> CLOSED
          |                   \\____________________________________/       ^
          \\------------------------- bad frame, busy, engine gone ---------/

The state is read, not just written: it decides what a client frame means (``stdin`` before
``run`` is a violation, ``kill`` while queued ends the run before it starts, anything after the
end is ignored) and every move is checked against ``TRANSITIONS``. The session talks to a
``Connection`` (three coroutines), so it runs without Quart's globals in unit tests.

The run itself belongs to the server (``LiveRun``), not to this connection: the session pumps
the run's frames out while a receiver reads the client's frames in. The receiver never waits on
the program: stdin is buffered (bounded) so a ``kill`` or an ``eof`` is always read at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from typing import Any, Protocol

from quart import Response, websocket

from app.errors import BadMessage, Busy, Internal, SCEError
from app.protocol import KillFrame, ResumeFrame, RunRequest, StdinFrame, WatchFrame, parse_client_frame
from app.server.context import ServerContext
from app.server.frames import error_frame
from app.server.guards import check_origin, check_token, client_key
from app.server.responses import error_response
from app.server.runs import LiveRun, check_session


class State(enum.Enum):
    AWAITING_FIRST = "awaiting_first"
    QUEUED = "queued"
    RUNNING = "running"
    ENDED = "ended"
    CLOSED = "closed"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.AWAITING_FIRST: frozenset({State.QUEUED, State.RUNNING, State.ENDED, State.CLOSED}),
    State.QUEUED: frozenset({State.RUNNING, State.ENDED, State.CLOSED}),
    State.RUNNING: frozenset({State.ENDED, State.CLOSED}),
    State.ENDED: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


DISCONNECT_CODE_KEY = "sce.disconnect_code"  # set in the ASGI scope by the app's connection class
CLIENT_CLOSE_KEY = "sce.client_close_code"  # set by the server (serve.py) when a close frame arrives
CLOSE_ABNORMAL = 1006  # what the server reports when the TCP stream ended without a close frame


class IllegalTransition(RuntimeError):
    pass


class ClientStalled(Exception):
    """The client did not accept a frame within the send timeout: it is treated as gone."""


class Connection(Protocol):
    async def receive(self) -> str | bytes: ...
    async def send(self, text: str) -> None: ...
    async def close(self, code: int) -> None: ...

    def dropped(self) -> bool:
        """True once the client went away without a close frame (a network drop)."""
        ...


class WebSocketSession:
    def __init__(self, ctx: ServerContext, connection: Connection, client: str) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.connection = connection
        self.client = client
        self.state = State.AWAITING_FIRST
        self.live: LiveRun | None = None
        self.watching = False  # a watcher reads the run; it never drives it
        self.taken_over = asyncio.Event()  # a resume on another connection took the run over
        self.sent_seq: int | None = None  # the last ``seq`` this connection has had (0: ``started``)

    def move(self, to: State) -> None:
        if to is self.state:
            return
        if to not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"{self.state.value} -> {to.value}")
        self.state = to

    # -- frames out ---------------------------------------------------------------------------
    async def send_text(self, text: str) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that lands
        # as the send completes (a vanished client), and the run would go on to its timeout
        try:
            async with asyncio.timeout(self.settings.send_timeout_s):
                await self.connection.send(text)
        except TimeoutError:
            raise ClientStalled() from None

    async def close(self, code: int) -> None:
        if self.state is State.CLOSED:
            return
        self.move(State.CLOSED)
        with contextlib.suppress(Exception):
            await self.connection.close(code)

    async def fail(self, error: SCEError) -> None:
        """This connection's own error (its frame broke the protocol...). After ``started`` it
        carries the next ``seq`` of this connection, as every frame after ``started`` does."""
        self.ctx.metrics.errors.labels(error.code).inc()
        if self.state is not State.CLOSED:
            seq = None if self.sent_seq is None else self.sent_seq + 1
            with contextlib.suppress(Exception):
                await self.send_text(error_frame(error, seq).model_dump_json())
        await self.close(error.close_code)

    # -- frames in -----------------------------------------------------------------------------
    async def receive(self) -> Any:
        message = await self.connection.receive()
        if not isinstance(message, str):
            raise BadMessage("frames must be JSON text, not binary")
        return parse_client_frame(message, self.settings)

    async def first_frame(self) -> Any:
        try:
            async with asyncio.timeout(self.settings.run_frame_timeout_s):
                return await self.receive()
        except TimeoutError:
            raise BadMessage(f"no run frame within {self.settings.run_frame_timeout_s:g} s") from None

    def on_frame(self, frame: Any) -> None:
        """What a client frame means depends on the state (the run exists from QUEUED on)."""
        live = self.live
        if self.state in (State.ENDED, State.CLOSED):
            return  # the run is over; late frames change nothing
        if isinstance(frame, RunRequest | ResumeFrame | WatchFrame):
            raise BadMessage("only one run frame per connection (or resume/watch, as the first frame)")
        if self.watching:
            raise BadMessage("a watcher cannot send stdin or kill")
        assert live is not None
        if isinstance(frame, StdinFrame):
            live.write_stdin(frame.data, eof=frame.eof)
        elif isinstance(frame, KillFrame):
            live.kill()

    async def receiver(self) -> None:
        """From the run frame to the end; raises on a protocol violation."""
        while True:
            self.on_frame(await self.receive())

    async def pump(self, live: LiveRun, after: int | None) -> None:
        """The run's frames out, in order, moving the state as they pass."""
        async for entry in live.frames(after=after, watcher=self.watching):
            if entry.kind == "queued":
                self.move(State.QUEUED)
            elif entry.kind == "started":
                self.move(State.RUNNING)
            await self.send_text(entry.text)
            if entry.seq is not None:
                self.sent_seq = entry.seq
        self.move(State.ENDED)

    # -- the session ---------------------------------------------------------------------------------
    async def serve(self) -> None:
        try:
            live, after = self.open(await self.first_frame())
            await self._until_done(live, after)
            if self.taken_over.is_set():
                await self.close(1008)  # a resume elsewhere drives the run now
            else:
                assert live.close_code is not None
                await self.close(live.close_code)
        except SCEError as error:
            await self.fail(error)
        except ClientStalled:
            await self.close(1008)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: the client still gets the protocol's answer
            await self.fail(Internal(f"internal error: {type(exc).__name__}"))
            raise
        finally:
            await self.leave()

    def open(self, first: Any) -> tuple[LiveRun, int | None]:
        """The first frame decides the connection's role: a new run, a resume, or a watch."""
        registry = self.ctx.registry
        if isinstance(first, RunRequest):
            check_session(first)
            live = self.ctx.new_run(first, self.client, "websocket")
            live.attach_driver(self)
            self.live = live
            live.start()
            return live, None
        if isinstance(first, ResumeFrame):
            live = registry.lookup(first.id, first.token, watch=False)
            previous = live.attach_driver(self)
            self.live = live
            if isinstance(previous, WebSocketSession):
                previous.taken_over.set()
            self.sent_seq = first.after
            self.move(State.ENDED if live.done else State.RUNNING)
            return live, first.after
        if isinstance(first, WatchFrame):
            live = registry.lookup(first.id, first.token, watch=True)
            if live.watchers >= self.settings.watchers_max:
                raise Busy(f"this run already has {live.watchers} watcher(s), the most it may have")
            live.watchers += 1
            self.watching = True
            self.live = live
            return live, None
        raise BadMessage("the first frame must be a run, resume or watch frame")

    async def leave(self) -> None:
        """The connection is over: what that means for the run depends on this session's role."""
        live = self.live
        if live is None:
            return
        if self.watching:
            live.watchers -= 1
        elif not live.done:
            # dropped without a close frame: the run waits for a resume; otherwise it ends now,
            # and this handler returns once its sandbox is gone
            live.driver_left(self, dropped=self.connection.dropped())
            if live.driver is None and live.killing:
                await live.wait_done()

    async def _until_done(self, live: LiveRun, after: int | None) -> None:
        loop = asyncio.get_running_loop()
        pumping = loop.create_task(self.pump(live, after))
        receiving = loop.create_task(self.receiver())
        kicked = loop.create_task(self.taken_over.wait())
        try:
            done, _ = await asyncio.wait({pumping, receiving, kicked}, return_when=asyncio.FIRST_COMPLETED)
            if kicked in done:
                return
            if receiving in done and not pumping.done():
                receiving.result()  # raises the violation (or the connection's end)
            await pumping
        finally:
            for task in (receiving, pumping, kicked):
                task.cancel()
            for task in (receiving, pumping, kicked):
                with contextlib.suppress(BaseException):
                    await task


class QuartConnection:
    """The session's ``Connection`` over Quart's request-bound ``websocket`` global."""

    async def receive(self) -> str | bytes:
        message: str | bytes = await websocket.receive()
        return message

    async def send(self, text: str) -> None:
        await websocket.send(text)

    async def close(self, code: int) -> None:
        await websocket.close(code)

    def dropped(self) -> bool:
        return websocket.scope.get(DISCONNECT_CODE_KEY) == CLOSE_ABNORMAL


async def websocket_run(ctx: ServerContext) -> Response | None:
    """The route: refuse before the upgrade (HTTP 401/403), else accept and serve one run."""
    try:
        check_origin(websocket.headers, ctx.settings)
        check_token(websocket.headers, websocket.args, ctx.settings)
    except SCEError as error:
        ctx.metrics.errors.labels(error.code).inc()
        return error_response(error)
    await websocket.accept()
    ctx.metrics.websockets.inc()
    try:
        client = client_key(websocket.headers, websocket.args, websocket.remote_addr, ctx.settings)
        await WebSocketSession(ctx, QuartConnection(), client).serve()
    finally:
        ctx.metrics.websockets.dec()
    return None
