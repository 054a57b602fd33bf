"""``/mcp`` beside the Quart app: the SDK's Streamable HTTP transport behind the server's guards.

One ASGI app serves both, in one process and event loop: a thin dispatcher in front of Quart's
``asgi_app`` sends ``/mcp`` to the SDK's session manager, everything else to Quart. Before the
SDK sees a request, the same checks as ``POST /run`` apply (Origin: 403; API token: 401), and
the client's key (its token's hash, or its address) is put in the scope as the SDK's
authenticated user: the SDK then refuses (404) a request for an MCP session another client
opened, and the tools count runs against that key's share and rate like any run.

The session manager's ``run()`` context (its task group) lives in a task of its own, started
with the app's startup and ended at its shutdown, so it works the same whether hypercorn or a
test drives the lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import parse_qsl

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from quart import Quart
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from werkzeug.datastructures import Headers, MultiDict

from app.errors import SCEError
from app.mcp.server import MCP_SESSION_HEADER, McpTools
from app.mcp.state import KeptState, NoSessions, SessionBackend
from app.server.context import ServerContext
from app.server.guards import check_host, check_origin, check_token, client_key
from app.server.responses import SECURITY_HEADERS

PATH = "/mcp"
SWEEP_EVERY_S = 30.0

log = logging.getLogger(__name__)


def _headers(scope: Scope) -> Headers:
    return Headers([(key.decode("latin-1"), value.decode("latin-1")) for key, value in scope["headers"]])


def _args(scope: Scope) -> MultiDict[str, str]:
    query = scope.get("query_string", b"").decode("latin-1")
    return MultiDict(parse_qsl(query, keep_blank_values=True))


class McpEndpoint:
    """The SDK's session manager for this server's tools, and the guards in front of it."""

    def __init__(self, ctx: ServerContext, backend: SessionBackend) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.state = KeptState(backend, settings.mcp_idle_timeout_s)
        self.manager = StreamableHTTPSessionManager(
            McpTools(ctx, self.state).server(),
            security_settings=None,  # Origin and token are checked here, as for /run
            max_request_body_size=settings.max_message_bytes,
            session_idle_timeout=settings.mcp_idle_timeout_s,
            max_sessions=settings.mcp_max_sessions,
        )
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        ready = asyncio.Event()

        async def hold() -> None:
            async with self.manager.run():
                ready.set()
                await self._stop.wait()

        self._task = asyncio.create_task(hold(), name="mcp-sessions")
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():
            await self._task  # it failed to start: say why
        self._sweeper = asyncio.create_task(self.state.sweep_forever(SWEEP_EVERY_S), name="mcp-sweeper")

    async def stop(self) -> None:
        """At the end of the drain (the runs are over) and again at shutdown: it stops once."""
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self._stop_now())
        await asyncio.shield(self._stopping)

    async def _stop_now(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.state.end_all()
        self._stop.set()
        if self._task is not None:
            await self._task

    # -- requests --------------------------------------------------------------------------------
    def wrap(self, inner: ASGIApp) -> ASGIApp:
        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].rstrip("/") == PATH:
                await self.serve(scope, receive, send)
            else:
                await inner(scope, receive, send)

        return dispatch

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.ctx.settings
        headers = _headers(scope)
        args = _args(scope)
        send = _with_security_headers(send)
        try:
            check_host(headers, settings)
            check_origin(headers, settings)
            check_token(headers, args, settings)
        except SCEError as error:
            self.ctx.metrics.errors.labels(error.code).inc()
            response = JSONResponse({"error": error.message, "code": error.code}, status_code=error.http_status)
            await response(scope, receive, send)
            return
        peer = scope.get("client")
        client = client_key(headers, args, peer[0] if peer else None, settings, self.ctx.cookies)
        # the SDK ties each MCP session to the user that opened it: here, the client's key
        scope["user"] = AuthenticatedUser(AccessToken(token="", client_id=client, scopes=[]))
        mcp_session = headers.get(MCP_SESSION_HEADER)
        owner = (client, mcp_session) if mcp_session else None
        if owner is not None:
            self.state.touch(owner)
        status: int | None = None

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.manager.handle_request(scope, receive, noting_status)
        if owner is not None:
            self.state.touch(owner)
            if scope["method"] == "DELETE" and status is not None and status < 300:
                await self.state.end(owner)  # the client ended its MCP session: its state goes with it


def _with_security_headers(send: Send) -> Send:
    """The SDK's answers carry the same security headers as every other answer of the server."""
    extra = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            message = {**message, "headers": [*message.get("headers", []), *(h for h in extra if h[0] not in present)]}
        await send(message)

    return sending


def mount_mcp(app: Quart, ctx: ServerContext, backend: SessionBackend | None = None) -> McpEndpoint | None:
    """Serve ``/mcp`` from ``app`` (unless ``SCE_MCP_ENABLED`` is off); ``backend``: the server's
    sessions for ``keep_state`` (``RegistrySessions``; without one ``keep_state`` is refused)."""
    if not ctx.settings.mcp_enabled:
        return None
    endpoint = McpEndpoint(ctx, backend or NoSessions())
    app.asgi_app = endpoint.wrap(app.asgi_app)  # type: ignore[method-assign,arg-type,assignment]
    app.before_serving(endpoint.start)
    app.after_serving(endpoint.stop)
    ctx.after_drain.append(endpoint.stop)  # open event streams would hold hypercorn's graceful stop
    app.extensions["sce_mcp"] = endpoint
    return endpoint


__all__ = ["PATH", "McpEndpoint", "mount_mcp"]
