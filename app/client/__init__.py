"""A Python client for the run protocol (PROTOCOL.md v2), built on the protocol's own models.

``AsyncClient`` (asyncio) and ``Client`` (blocking) run code and yield the server's frames as
typed models; a dropped connection is resumed by itself. ``python -m app run`` is its CLI.
Depends on ``websockets``, ``httpx`` and ``pydantic`` only.
"""

from app.client.aio import AsyncClient, AsyncRun, Reconnect
from app.client.errors import CannotResume, ClientError, ConnectionLost, InvalidRequest, RunNotFound, ServerError
from app.client.sync import Client, Run

__all__ = [
    "AsyncClient",
    "AsyncRun",
    "CannotResume",
    "Client",
    "ClientError",
    "ConnectionLost",
    "InvalidRequest",
    "Reconnect",
    "Run",
    "RunNotFound",
    "ServerError",
]
