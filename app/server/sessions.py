"""Sessions on the server (v3): the registry, their lifetimes and limits, and their HTTP routes.

A session keeps one sandbox (``app.sandbox.session``) for a sequence of runs. It holds one of the
server's run slots for its whole life (``Admission.reserve``) and one of its engine's capacity, so
sessions and runs together never ask more of an engine than it is sized for; its runs therefore
skip the run queue. Its id begins with the server's name (``SCE_SERVER_NAME``, the host name by
default), so a balancer can send every request for it here. It ends when deleted, when idle past
``session_idle_timeout_s`` (from its last run's end), at ``session_max_lifetime_s`` (a run then in
progress is killed), when its sandbox dies (an OOM, a program that ignored an interrupt), or when
the server stops; its sandbox is removed then, and a sandbox left by a crashed server is reaped
like any orphan once its lease (which covers the maximum lifetime) has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hmac
import logging
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from quart import Quart, Response, request
from quart.typing import ResponseReturnValue

from app.errors import BadMessage, Busy, MessageTooLarge, NotFound, SCEError, SessionBusy, Unavailable
from app.protocol import (
    InFile,
    SessionCreated,
    SessionInfo,
    SessionLimits,
    SessionRequest,
    load_json_object,
    parse_session_request,
)
from app.sandbox.session import SandboxSession, SessionRun, open_session
from app.server.guards import check_origin, check_token, client_key
from app.server.responses import error_response

if TYPE_CHECKING:
    from app.server.context import ServerContext
    from app.server.runs import LiveRun

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Session-Token"
SWEEP_EVERY_S = 1.0
USAGE_WAIT_S = 0.5


def server_name(configured: str | None) -> str:
    """The session ids' prefix: the setting, or the host name made safe for an id."""
    if configured:
        return configured
    name = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-")
    return name[:32] or "sce"


def rfc3339(wall: float) -> str:
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(eq=False)
class Session:
    id: str
    token: str
    runtime: str
    client: str
    sandbox: SandboxSession
    files: tuple[InFile, ...]  # from POST /sessions: written before the first run's own
    created_wall: float = field(default_factory=time.time)
    created: float = field(default_factory=time.monotonic)
    last_end: float = field(default_factory=time.monotonic)
    runs: int = 0
    live: LiveRun | None = None

    @property
    def running(self) -> bool:
        return self.live is not None and not self.live.done

    def expires(self, idle_s: float, lifetime_s: float) -> float:
        """When it ends (monotonic): idle from its last run's end, or at its maximum lifetime."""
        return min(self.last_end + idle_s, self.created + lifetime_s)

    def wall(self, monotonic: float) -> float:
        return self.created_wall + (monotonic - self.created)


class SessionRegistry:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.prefix = server_name(ctx.settings.server_name)
        self.sessions: dict[str, Session] = {}
        self._starting: list[str] = []  # clients whose session's sandbox is starting now
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="session-sweeper")

    async def close(self) -> None:
        """The server stops: so do its sessions (a run in progress is killed)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(BaseException):
                await self._sweeper
        for session in list(self.sessions.values()):
            self.end(session, "the server stopped")

    async def _sweep(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(min(SWEEP_EVERY_S, s.session_idle_timeout_s / 4))
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if not session.sandbox.alive and not session.running:
                    self.end(session, "its sandbox ended")
                elif now >= session.created + s.session_max_lifetime_s:
                    self.end(session, "it reached its maximum lifetime")
                elif not session.running and now >= session.expires(s.session_idle_timeout_s, s.session_max_lifetime_s):
                    self.end(session, "it was idle past its timeout")

    # -- making, finding, ending ----------------------------------------------------------------------
    async def create(self, client: str, body: SessionRequest) -> Session:
        s, ctx = self.settings, self.ctx
        if ctx.refusing or ctx.draining:
            raise Unavailable("the server is shutting down")
        held = sum(1 for x in self.sessions.values() if x.client == client) + self._starting.count(client)
        if held >= s.sessions_per_client:
            raise Busy(f"this client already holds {s.sessions_per_client} session(s); end one first")
        if len(self.sessions) + len(self._starting) >= s.sessions_max:
            raise Busy(f"this server holds its maximum of {s.sessions_max} session(s)")
        if not ctx.admission.reserve():
            raise Busy("all sandboxes are busy")
        self._starting.append(client)  # counted while its sandbox starts: concurrent requests see it
        try:
            sandbox = await open_session(ctx.service, body.runtime)
        except BaseException:
            ctx.admission.unreserve()
            raise
        finally:
            self._starting.remove(client)
        files = tuple(InFile(path=f.path, content=f.decoded()) for f in body.files or ())
        session = Session(
            id=f"{self.prefix}.{secrets.token_hex(16)}",
            token=secrets.token_urlsafe(24),
            runtime=sandbox.sandbox.spec.runtime,
            client=client,
            sandbox=sandbox,
            files=files,
        )
        self.sessions[session.id] = session
        log.info("session %s made (%s) for %s", session.id, session.runtime, client)
        return session

    def lookup(self, session_id: str, token: str | None) -> Session:
        """The session this id and token open, or ``NotFound`` (unknown, ended, wrong token alike)."""
        session = self.sessions.get(session_id)
        given = (token or "").encode("utf-8", "surrogatepass")
        if session is None or not hmac.compare_digest(given, session.token.encode()):
            raise NotFound("no such session (unknown, ended, or the wrong token)")
        return session

    def end(self, session: Session, why: str) -> None:
        if self.sessions.pop(session.id, None) is None:
            return
        log.info("session %s ended: %s", session.id, why)
        if session.live is not None and not session.live.done:
            session.live.kill()  # its run ends as killed; the sandbox goes right after
        session.sandbox.close()
        self.ctx.admission.unreserve()

    # -- runs -----------------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def run(self, live: LiveRun) -> AsyncIterator[SessionRun]:
        """The run ``live`` asks for, in its session: one at a time (``SessionBusy``)."""
        req = live.request
        assert req.session is not None
        session = self.lookup(req.session, req.session_token)
        if req.runtime is not None and req.runtime != session.runtime:
            raise BadMessage(f"this session runs the {session.runtime!r} runtime, not {req.runtime!r}")
        if session.running:
            raise SessionBusy()
        if not session.sandbox.alive:
            self.end(session, "its sandbox ended")
            raise NotFound("no such session (its sandbox has ended)")
        if self.ctx.refusing:
            raise Unavailable("the server is shutting down")
        session.live = live
        files, session.files = session.files + req.files, ()
        request = replace(req, runtime=session.runtime, files=files)
        service = self.ctx.service
        session.sandbox.in_run = True
        try:
            yield SessionRun(
                session.sandbox,
                request,
                service.limits_for(request),
                max_line_chars=self.settings.max_line_chars,
                flush_interval_s=self.settings.flush_interval_ms / 1000,
                rich_limits=service.rich_limits,
                run_id=live.id,
                stdin=live.stdin,
            )
        finally:
            session.sandbox.in_run = False
            session.live = None
            session.runs += 1
            session.last_end = time.monotonic()
            if not session.sandbox.alive:
                self.end(session, "its sandbox ended")

    # -- answers ----------------------------------------------------------------------------------------------
    def created(self, session: Session) -> SessionCreated:
        s = self.settings
        spec = self.ctx.service.specs[session.runtime]
        return SessionCreated(
            id=session.id,
            token=session.token,
            runtime=session.runtime,
            limits=SessionLimits(
                timeout_s=s.timeout_s,
                memory_mb=spec.memory_mb,
                output_bytes=s.output_bytes,
                pids=spec.pids,
                idle_timeout_s=s.session_idle_timeout_s,
                max_lifetime_s=s.session_max_lifetime_s,
            ),
            expires_at=rfc3339(session.wall(session.expires(s.session_idle_timeout_s, s.session_max_lifetime_s))),
        )

    async def info(self, session: Session) -> SessionInfo:
        s = self.settings
        memory: int | None = None
        with contextlib.suppress(TimeoutError, SCEError, OSError):
            async with asyncio.timeout(USAGE_WAIT_S):
                memory = (await session.sandbox.sandbox.usage(final=False)).memory_bytes
        return SessionInfo(
            id=session.id,
            runtime=session.runtime,
            state="running" if session.running else "idle",
            runs=session.runs,
            created_at=rfc3339(session.created_wall),
            expires_at=rfc3339(session.wall(session.expires(s.session_idle_timeout_s, s.session_max_lifetime_s))),
            memory_bytes=memory,
        )


async def _body(max_bytes: int) -> bytes:
    body = bytearray()
    async for chunk in request.body:
        body += chunk
        if len(body) > max_bytes:
            raise MessageTooLarge(f"body is over the limit of {max_bytes} bytes")
    return bytes(body)


def _json(model: SessionCreated | SessionInfo, status: int) -> Response:
    return Response(model.model_dump_json(), status=status, content_type="application/json")


def register_session_routes(app: Quart, ctx: ServerContext) -> None:
    """``POST /sessions``, ``GET``/``DELETE /sessions/{id}`` (API tokens and Origin as for /run)."""
    settings = ctx.settings

    def sessions() -> SessionRegistry:
        assert ctx.sessions is not None
        return ctx.sessions

    @app.post("/sessions")
    async def _create() -> ResponseReturnValue:
        try:
            check_origin(request.headers, settings)
            check_token(request.headers, request.args, settings)
            raw = await _body(settings.max_message_bytes)
            body = parse_session_request(load_json_object(raw or b"{}", settings), settings)
            client = client_key(request.headers, request.args, request.remote_addr, settings)
            session = await sessions().create(client, body)
            return _json(sessions().created(session), 201)
        except SCEError as error:
            return error_response(error, settings.retry_after_s)

    @app.get("/sessions/<session_id>")
    async def _get(session_id: str) -> ResponseReturnValue:
        try:
            check_origin(request.headers, settings)
            check_token(request.headers, request.args, settings)
            session = sessions().lookup(session_id, request.headers.get(TOKEN_HEADER))
            return _json(await sessions().info(session), 200)
        except SCEError as error:
            return error_response(error, settings.retry_after_s)

    @app.delete("/sessions/<session_id>")
    async def _delete(session_id: str) -> ResponseReturnValue:
        try:
            check_origin(request.headers, settings)
            check_token(request.headers, request.args, settings)
            registry = sessions()
            session = registry.lookup(session_id, request.headers.get(TOKEN_HEADER))
            live = session.live
            registry.end(session, "deleted")
            if live is not None:
                await live.wait_done()  # its exit (killed) is out before the 204
            return Response(status=204)
        except SCEError as error:
            return error_response(error, settings.retry_after_s)
