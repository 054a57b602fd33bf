"""Serving with hypercorn from code: one worker (admission is in-process state), graceful stop."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
from collections.abc import Generator, Iterable

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.protocol import ws_stream
from hypercorn.utils import wrap_app
from wsproto.connection import Connection
from wsproto.events import CloseConnection, Event

from app.server.context import ServerContext
from app.server.ws import CLIENT_CLOSE_KEY
from app.settings import Settings


def refuse_websocket_compression() -> None:
    """Make hypercorn answer a permessage-deflate offer by not negotiating it.

    Browsers always offer it and hypercorn always accepts, with no setting to refuse. Measured
    here on 2 cores it cost ~1.5x in first-byte latency and ~60 ms of CPU per 600 KB streamed,
    while program output is small text lines. The handshake is the only place to decide, so this
    one method is wrapped (idempotently) rather than forking the server.
    """
    accept = ws_stream.Handshake.accept
    if getattr(accept, "_sce_no_deflate", False):
        return

    def accept_without_extensions(
        self: ws_stream.Handshake, subprotocol: str | None, additional_headers: Iterable[tuple[bytes, bytes]]
    ) -> tuple[int, list[tuple[bytes, bytes]], Connection]:
        self.extensions = None
        return accept(self, subprotocol, additional_headers)

    accept_without_extensions._sce_no_deflate = True  # type: ignore[attr-defined]
    ws_stream.Handshake.accept = accept_without_extensions  # type: ignore[method-assign]


def record_client_close_codes() -> None:
    """Keep the code of a client's close frame where the app can read it (the ASGI scope).

    hypercorn reports every disconnect the app did not start as 1006, whether the client sent a
    close frame or its TCP stream just ended. The protocol needs the difference: a network drop
    leaves the run waiting for a resume, a close ends it. wsproto hands hypercorn the client's
    ``CloseConnection`` event; this wraps the stream's event loop to note its code (idempotently).
    """
    handle_events = ws_stream.WSStream._handle_events
    if getattr(handle_events, "_sce_close_codes", False):
        return

    async def handle_events_noting_close(self: ws_stream.WSStream) -> None:
        connection = self.connection
        if not getattr(connection, "_sce_close_codes", False):
            events = connection.events

            def noting() -> Generator[Event, None, None]:
                for event in events():
                    if isinstance(event, CloseConnection) and self.scope is not None:
                        self.scope[CLIENT_CLOSE_KEY] = int(event.code)  # type: ignore[literal-required]
                    yield event

            connection.events = noting  # type: ignore[method-assign]
            connection._sce_close_codes = True  # type: ignore[attr-defined]
        await handle_events(self)

    handle_events_noting_close._sce_close_codes = True  # type: ignore[attr-defined]
    ws_stream.WSStream._handle_events = handle_events_noting_close  # type: ignore[method-assign]


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.bind = [settings.bind]
    config.workers = 1
    config.accesslog = None
    # hypercorn's own logger, without a handler of its own: its lines reach the root handler once,
    # in the service's format ("-" would add a second handler, and "Running on" would show twice)
    config.errorlog = logging.getLogger("hypercorn.error")
    # above the app's own limit, so oversized frames reach the app and get the protocol's error
    config.websocket_max_message_size = settings.max_message_bytes * 2
    config.graceful_timeout = settings.shutdown_grace_s + 5
    return config


class CannotListen(Exception):
    """The listen address cannot be taken; the message is the one line the user sees."""


def claim_address(config: Config, bind: str) -> Sockets:
    """Bind and listen on the configured address now, before the app starts anything.

    Hypercorn runs the app's startup (which fills the warm pool with containers) before it binds,
    so a taken port would otherwise be found only after containers were started. Listening here,
    not just binding, also closes the race with a second server starting at the same moment
    (Linux lets two SO_REUSEADDR sockets bind one address while neither listens).
    """
    sockets: Sockets | None = None
    try:
        sockets = config.create_sockets()
        for sock in sockets.insecure_sockets:
            sock.listen(config.backlog)
    except OSError as exc:
        if sockets is not None:
            for sock in sockets.insecure_sockets:
                sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(
                f"cannot listen on {bind}: another program already listens there; "
                "choose another address with --bind HOST:PORT or SCE_BIND"
            ) from exc
        reason = exc.strerror or str(exc)
        raise CannotListen(
            f"cannot listen on {bind}: {reason}; choose another address with --bind HOST:PORT or SCE_BIND"
        ) from exc
    return sockets


async def serve_forever(settings: Settings) -> None:
    if not settings.ws_compression:
        refuse_websocket_compression()
    record_client_close_codes()
    config = hypercorn_config(settings)
    sockets = claim_address(config, settings.bind)
    # imported once the address is ours: the app's imports (the MCP SDK's most of all) take about a
    # second of CPU, and a server that cannot listen should say so at once
    from app.server.app import create_app

    app = create_app(settings)
    ctx: ServerContext = app.extensions["sce"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    logging.getLogger("sce").info("event loop: %s", type(loop).__module__.partition(".")[0])
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def shutdown_trigger() -> None:
        await stop.wait()
        await ctx.drain()  # the app's shutdown calls it again: it drains once (ServerContext.drain)

    # hypercorn.asyncio.serve() with the sockets claimed above (it creates its own otherwise)
    await worker_serve(
        wrap_app(app, config.wsgi_max_body_size, "asgi"), config, sockets=sockets, shutdown_trigger=shutdown_trigger
    )


def run_server(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; raises CannotListen, before any container exists, if the address is taken."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if settings.event_loop == "uvloop":
        # libuv's loop, the same asyncio API. Measured here (docs/PERFORMANCE.md): ~9% less server
        # CPU per hello world, but while four 100k-line runs stream an idle connection's ping
        # waits about twice as long at p90; live output is what we serve, so asyncio's is the default.
        import uvloop

        uvloop.run(serve_forever(settings))
    else:
        asyncio.run(serve_forever(settings))
