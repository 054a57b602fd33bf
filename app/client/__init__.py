"""A Python client for the run protocol (PROTOCOL.md v3), built on the protocol's own models.

``Client`` (blocking) and ``AsyncClient`` (asyncio): ``run()`` gives one ``Execution`` (stdout,
stderr, images and files as bytes, the exception, the exit) and calls ``on_stdout``... callbacks
as things arrive; ``start()`` gives the live run, whose frames can be iterated; a dropped
connection is resumed by itself. ``sce run`` / ``sce watch`` is its CLI; docs/CLIENT.md the guide.
Depends on ``websockets``, ``httpx`` and ``pydantic`` only.
"""

from app.client.aio import AsyncClient, AsyncRun, Reconnect
from app.client.errors import (
    Busy,
    CannotResume,
    ClientError,
    ConnectionLost,
    InvalidRequest,
    NotAllowed,
    RunNotFound,
    ServerError,
    SessionBusy,
)
from app.client.requests import parse_watch_link, watch_link
from app.client.result import Callbacks, Execution, File, Image
from app.client.session import AsyncSession
from app.client.sync import Client, Run, Session

__all__ = [
    "AsyncClient",
    "AsyncRun",
    "AsyncSession",
    "Busy",
    "Callbacks",
    "CannotResume",
    "Client",
    "ClientError",
    "ConnectionLost",
    "Execution",
    "File",
    "Image",
    "InvalidRequest",
    "NotAllowed",
    "Reconnect",
    "Run",
    "RunNotFound",
    "ServerError",
    "Session",
    "SessionBusy",
    "parse_watch_link",
    "watch_link",
]
