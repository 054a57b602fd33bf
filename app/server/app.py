"""The Quart app factory: routes, lifecycle and the shared server context.

The sandbox service is injected (``create_app(settings, service)``) so tests can hand in one
bound to any engine; by default it is built from the settings.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Quart, Response, jsonify, redirect, request, send_file, websocket
from quart.asgi import ASGIWebsocketConnection
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from app.errors import Internal, SCEError
from app.mcp.mount import mount_mcp
from app.mcp.state import RegistrySessions
from app.protocol import RuntimeInfo
from app.sandbox.service import SandboxService
from app.schema import json_schema, openapi
from app.server.context import ServerContext
from app.server.cookies import COOKIE_MAX_AGE_S, COOKIE_NAME
from app.server.guards import check_admin, check_host
from app.server.health import Prober, health_body
from app.server.http_run import http_run
from app.server.responses import add_security_headers, error_response
from app.server.sessions import register_session_routes
from app.server.ui import FIX, locate, missing_page
from app.server.ws import CLIENT_CLOSE_KEY, CLOSE_ABNORMAL, DISCONNECT_CODE_KEY, websocket_run
from app.settings import Settings

CLIENT_QUEUE_DEPTH = 8

log = logging.getLogger(__name__)


class BoundedWebsocketConnection(ASGIWebsocketConnection):
    """Quart's WebSocket connection with two changes the protocol needs.

    The receive queue is bounded, so a flooding client waits in TCP. And the disconnect's close
    code is kept in the scope: Quart drops it, and it is the only way to tell a network drop
    (1006: the run waits for a resume) from a client that closed (the run ends at once).
    """

    def __init__(self, app: Quart, scope: Any) -> None:
        super().__init__(app, scope)
        self.queue = asyncio.Queue(CLIENT_QUEUE_DEPTH)

    async def handle_messages(self, receive: Any) -> None:
        while True:
            event = await receive()
            if event["type"] == "websocket.receive":
                message = event.get("bytes") or event.get("text")
                await self.queue.put(message)
            elif event["type"] == "websocket.disconnect":
                # hypercorn says 1006 for any close the app did not start; the close frame's own
                # code, when the client sent one, is recorded by serve.py's hook
                code = self.scope.get(CLIENT_CLOSE_KEY) or event.get("code", CLOSE_ABNORMAL)
                self.scope[DISCONNECT_CODE_KEY] = code  # type: ignore[literal-required]
                return


def create_app(settings: Settings | None = None, service: SandboxService | None = None) -> Quart:
    settings = settings or Settings()
    service = service or SandboxService(settings)
    ctx = ServerContext.build(settings, service)
    prober = Prober(ctx, settings.health_probe_interval_s)
    schema_documents = {"frames": json_schema(), "openapi": openapi()}  # built once: they never change

    ui = locate()  # the package's UI (a wheel), or the checkout's static/ folder
    app = Quart(__name__, static_folder=str(ui.root), static_url_path="/static")
    app.asgi_websocket_class = BoundedWebsocketConnection
    app.config["MAX_CONTENT_LENGTH"] = None  # the run handler enforces its own limit with our error shape
    app.extensions["sce"] = ctx
    app.extensions["sce_prober"] = prober

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> ResponseReturnValue:
        response = jsonify({"error": exc.description or exc.name, "code": exc.name.lower().replace(" ", "_")})
        response.status_code = exc.code or 500
        return response

    @app.errorhandler(Exception)
    async def _internal(exc: Exception) -> ResponseReturnValue:
        log.exception("unhandled error", exc_info=exc)
        ctx.metrics.errors.labels("internal").inc()
        return error_response(Internal(f"internal error: {type(exc).__name__}"))

    @app.before_request
    async def _known_host() -> ResponseReturnValue | None:
        try:
            check_host(request.headers, settings)
        except SCEError as error:
            return error_response(error)
        return None

    @app.before_websocket
    async def _known_host_ws() -> ResponseReturnValue | None:
        try:
            check_host(websocket.headers, settings)
        except SCEError as error:
            ctx.metrics.errors.labels(error.code).inc()
            return error_response(error)
        return None

    @app.after_request
    async def _headers(response: Response) -> Response:
        return add_security_headers(response)

    def admin_refusal() -> Response | None:
        try:
            check_admin(request.headers, request.remote_addr, settings)
        except SCEError as error:
            return error_response(error)
        return None

    @app.before_serving
    async def _start() -> None:
        if not ui.complete:
            log.warning("%s (looked in %s)", FIX, ui.root)
        await service.start()
        assert ctx.sessions is not None
        ctx.sessions.start()

    @app.after_serving
    async def _stop() -> None:
        await ctx.drain()
        assert ctx.sessions is not None
        await ctx.sessions.close()
        await service.stop()

    # /mcp: the same runs and sessions as tools for AI agents (app/mcp); keep_state on this registry
    assert ctx.sessions is not None
    mount_mcp(app, ctx, RegistrySessions(ctx.sessions))
    register_session_routes(app, ctx)

    @app.websocket("/run")
    async def _ws_run() -> ResponseReturnValue | None:
        return await websocket_run(ctx)

    @app.post("/run")
    async def _post_run() -> ResponseReturnValue:
        return await http_run(ctx)

    @app.get("/")
    async def _root() -> ResponseReturnValue:
        return redirect("/ui")

    @app.get("/ui")
    async def _ui() -> ResponseReturnValue:
        if not ui.complete:
            return Response(missing_page(), status=503, mimetype="text/html", headers={"Cache-Control": "no-cache"})
        response = await send_file(ui.index, mimetype="text/html")
        response.headers["Cache-Control"] = "no-cache"
        if ctx.cookies.client_id(request.headers) is None:  # each browser its own share (see cookies.py)
            response.set_cookie(
                COOKIE_NAME,
                ctx.cookies.issue(),
                max_age=COOKIE_MAX_AGE_S,
                httponly=True,
                samesite="Lax",
                secure=request.scheme == "https",
            )
        return response

    @app.get("/healthz")
    async def _healthz() -> ResponseReturnValue:
        def flag(name: str) -> bool:
            return request.args.get(name, "") not in ("", "0", "false")

        refusal = admin_refusal()
        if refusal is not None and flag("deep"):
            return refusal
        status, body = await health_body(
            ctx, prober, deep=flag("deep"), balancer=flag("balancer"), details=refusal is None
        )
        response = jsonify(body)
        response.status_code = status
        return response

    @app.get("/runtimes")
    async def _runtimes() -> ResponseReturnValue:
        listing = [RuntimeInfo.model_validate(item).wire() for item in await service.runtime_list()]
        return jsonify(listing)  # through the protocol's model: what is sent is what the schema says

    @app.get("/schema/frames.json")
    async def _frames_schema() -> ResponseReturnValue:
        return jsonify(schema_documents["frames"])

    @app.get("/openapi.json")
    async def _openapi() -> ResponseReturnValue:
        return jsonify(schema_documents["openapi"])

    @app.get("/metrics")
    async def _metrics() -> ResponseReturnValue:
        refusal = admin_refusal()
        if refusal is not None:
            return refusal
        return Response(generate_latest(ctx.metrics.registry), content_type=CONTENT_TYPE_LATEST)

    return app
