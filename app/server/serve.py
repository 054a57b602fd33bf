"""Serving with hypercorn from code: one worker (admission is in-process state), graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal

from hypercorn.asyncio import serve
from hypercorn.config import Config

from app.server.app import create_app
from app.server.context import ServerContext
from app.settings import Settings


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.bind = [settings.bind]
    config.workers = 1
    config.accesslog = None
    config.errorlog = "-"
    # above the app's own limit, so oversized frames reach the app and get the protocol's error
    config.websocket_max_message_size = settings.max_message_bytes * 2
    config.graceful_timeout = settings.shutdown_grace_s + 5
    return config


async def serve_forever(settings: Settings) -> None:
    app = create_app(settings)
    ctx: ServerContext = app.extensions["sce"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def shutdown_trigger() -> None:
        await stop.wait()
        logging.getLogger("sce").info("shutting down: draining %d run(s)", len(ctx.runs))
        await ctx.drain()

    await serve(app, hypercorn_config(settings), shutdown_trigger=shutdown_trigger)


def run_server(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve_forever(settings))
