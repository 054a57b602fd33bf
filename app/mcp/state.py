"""``keep_state``: which code session belongs to which MCP session.

A code session (v3 sessions: one sandbox kept for a sequence of runs) is made on an MCP
session's first ``keep_state`` call and is that MCP session's alone. It is found by the pair
(client, MCP session id): the id alone is not an authority, so a client that learns another's
MCP session id still reaches only its own state (and the SDK refuses the request anyway, as
the session was opened by another client). It ends with ``reset_state``, when the MCP session
ends (the client's DELETE), after the MCP session's idle timeout with no request, or when the
server's sessions end it (``session_alive`` false); past that a ``keep_state`` call starts afresh.

The server's sessions are reached through ``SessionBackend``: ``RegistrySessions`` on the
server's session registry (``app/server/sessions.py``); ``NoSessions`` (a server built without
sessions) refuses ``keep_state`` with a clear sentence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from app.errors import SCEError
from app.protocol import SessionRequest

if TYPE_CHECKING:
    from app.server.sessions import SessionRegistry

log = logging.getLogger(__name__)

Owner = tuple[str, str]  # (client key, MCP session id)
NO_SESSIONS = "state between calls is not available on this server yet: run without keep_state"


class StateUnavailable(SCEError):
    """``keep_state`` where it cannot be kept: no sessions on this server, or no MCP session."""

    code = "bad_message"


@dataclass(frozen=True)
class SessionHandle:
    """A code session as its owner holds it: what a run in it names (``session``, ``session_token``)."""

    id: str
    token: str
    runtime: str | None = None


class SessionBackend(Protocol):
    """What ``keep_state`` needs of the server's sessions; errors are ``SCEError`` (busy...)."""

    async def create(self, client: str, runtime: str | None) -> SessionHandle: ...

    async def close(self, handle: SessionHandle) -> None: ...

    def alive(self, handle: SessionHandle) -> bool:
        """Whether the session still lives (it may have ended by its own idle timeout)."""
        ...


class NoSessions:
    """This server keeps no state between runs: every ``keep_state`` is refused."""

    async def create(self, client: str, runtime: str | None) -> SessionHandle:
        raise StateUnavailable(NO_SESSIONS)

    async def close(self, handle: SessionHandle) -> None:
        return None

    def alive(self, handle: SessionHandle) -> bool:
        return False


class RegistrySessions:
    """``keep_state`` on the server's own sessions: made for the MCP client's key, so they count
    against its share of sessions (``SCE_SESSIONS_PER_CLIENT``) like any ``POST /sessions``."""

    def __init__(self, registry: SessionRegistry) -> None:
        self.registry = registry

    async def create(self, client: str, runtime: str | None) -> SessionHandle:
        session = await self.registry.create(client, SessionRequest(runtime=runtime))
        return SessionHandle(session.id, session.token, session.runtime)

    async def close(self, handle: SessionHandle) -> None:
        self.registry.end(self.registry.lookup(handle.id, handle.token), "its MCP session reset or ended it")

    def alive(self, handle: SessionHandle) -> bool:
        return handle.id in self.registry.sessions


@dataclass
class _Kept:
    handle: SessionHandle
    last_seen: float


class KeptState:
    """The code sessions MCP sessions own, each ended with its owner."""

    def __init__(
        self, backend: SessionBackend, idle_timeout_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.backend = backend
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self._kept: dict[Owner, _Kept] = {}
        self._making: dict[Owner, asyncio.Lock] = {}

    @property
    def available(self) -> bool:
        """Whether this server keeps state at all."""
        return not isinstance(self.backend, NoSessions)

    def __len__(self) -> int:
        return len(self._kept)

    def touch(self, owner: Owner) -> None:
        """A request of this MCP session: its state is not idle."""
        kept = self._kept.get(owner)
        if kept is not None:
            kept.last_seen = self.clock()

    async def session_for(self, owner: Owner, runtime: str | None) -> SessionHandle:
        """The owner's code session, made now if it has none (one at a time per owner)."""
        lock = self._making.setdefault(owner, asyncio.Lock())
        async with lock:
            kept = self._kept.get(owner)
            if kept is not None and not self.backend.alive(kept.handle):
                kept = None  # it ended by itself (its own idle timeout, its lifetime): start afresh
            if kept is None:
                kept = _Kept(await self.backend.create(owner[0], runtime), self.clock())
                self._kept[owner] = kept
            kept.last_seen = self.clock()
            return kept.handle

    def forget(self, owner: Owner, handle: SessionHandle) -> None:
        """The session is gone by itself (``session_alive`` false): nothing to close."""
        kept = self._kept.get(owner)
        if kept is not None and kept.handle == handle:
            del self._kept[owner]

    async def end(self, owner: Owner) -> bool:
        """End the owner's code session; False when it had none."""
        kept = self._kept.pop(owner, None)
        self._making.pop(owner, None)
        if kept is None:
            return False
        try:
            await self.backend.close(kept.handle)
        except SCEError as error:  # already gone: ended is what was asked
            log.info("closing a kept session: %s", error.message)
        return True

    async def sweep(self) -> None:
        """End the state of MCP sessions idle past the timeout (the SDK ends those sessions then)."""
        cutoff = self.clock() - self.idle_timeout_s
        for owner in [owner for owner, kept in self._kept.items() if kept.last_seen < cutoff]:
            await self.end(owner)

    async def end_all(self) -> None:
        for owner in list(self._kept):
            await self.end(owner)

    async def sweep_forever(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            with contextlib.suppress(Exception):
                await self.sweep()
