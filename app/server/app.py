"""The Quart app factory: routes, lifecycle and the shared server context.

The sandbox service is injected (``create_app(settings, service)``) so tests can hand in one
bound to any engine; by default it is built from the settings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Quart, Response, jsonify, redirect, request, send_file
from quart.asgi import ASGIWebsocketConnection
from quart.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from app.core.events import Output
from app.errors import Internal, SCEError
from app.protocol import RunRequest
from app.sandbox.service import SandboxService
from app.server.context import ServerContext
from app.server.http_run import http_run
from app.server.responses import error_response
from app.server.ws import websocket_run
from app.settings import Settings

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
CLIENT_QUEUE_DEPTH = 8
PROBE_CODE = "print(2 + 2)"
PROBE_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


class BoundedWebsocketConnection(ASGIWebsocketConnection):
    """Quart's receive queue is unbounded; a bounded one makes a flooding client wait in TCP."""

    def __init__(self, app: Quart, scope: Any) -> None:
        super().__init__(app, scope)
        self.queue = asyncio.Queue(CLIENT_QUEUE_DEPTH)


def create_app(settings: Settings | None = None, service: SandboxService | None = None) -> Quart:
    settings = settings or Settings()
    service = service or SandboxService(settings)
    ctx = ServerContext.build(settings, service)

    app = Quart(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    app.asgi_websocket_class = BoundedWebsocketConnection
    app.config["MAX_CONTENT_LENGTH"] = None  # the run handler enforces its own limit with our error shape
    app.extensions["sce"] = ctx

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

    @app.before_serving
    async def _start() -> None:
        await service.start()

    @app.after_serving
    async def _stop() -> None:
        await ctx.drain()
        await service.stop()

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
        response = await send_file(STATIC_DIR / "index.html", mimetype="text/html")
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/healthz")
    async def _healthz() -> ResponseReturnValue:
        return await health(ctx, deep=request.args.get("deep", "") not in ("", "0", "false"))

    @app.get("/metrics")
    async def _metrics() -> ResponseReturnValue:
        return Response(generate_latest(ctx.metrics.registry), content_type=CONTENT_TYPE_LATEST)

    return app


async def health(ctx: ServerContext, *, deep: bool) -> Response:
    """200 while the engine answers and the image is there; 503 otherwise. ``deep`` runs a probe."""
    engine = ctx.service.engine
    engine_ok = await engine.ping()
    image_ok = False
    if engine_ok:
        try:
            image_ok = await engine.image_present()
        except SCEError:
            engine_ok = False
    body: dict[str, Any] = {
        "status": "ok" if engine_ok and image_ok else "unavailable",
        "engine": engine_ok,
        "image": ctx.settings.image,
        "image_present": image_ok,
        "runtime": ctx.settings.runtime,
        "pool": ctx.service.pool.state(),
        "active_runs": len(ctx.runs),
        "queued": ctx.admission.queued,
        "draining": ctx.draining,
    }
    if deep and body["status"] == "ok":
        body["probe"] = await _probe(ctx)
        if not body["probe"]["ok"]:
            body["status"] = "unavailable"
    response = jsonify(body)
    response.status_code = 200 if body["status"] == "ok" else 503
    return response


async def _probe(ctx: ServerContext) -> dict[str, Any]:
    started = time.monotonic()
    output = []
    try:
        async with ctx.service.run(RunRequest(PROBE_CODE, timeout=PROBE_TIMEOUT_S)) as run:
            async for event in run.events():
                if isinstance(event, Output):
                    output.append(event.data)
        ok = "".join(output) == "4\n" and run.exit is not None and run.exit.exit_code == 0
        return {"ok": ok, "ms": round((time.monotonic() - started) * 1000)}
    except SCEError as exc:
        return {"ok": False, "error": exc.message}
