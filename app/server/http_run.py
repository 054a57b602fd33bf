"""``POST /run``: the same run as the WebSocket, answered once it ends."""

from __future__ import annotations

from typing import Any

from quart import Response, jsonify, request

from app.core.events import Output
from app.errors import MessageTooLarge, SCEError, Unavailable, UnsupportedMediaType
from app.protocol import load_json_object, parse_run_fields
from app.sandbox.run import StdinQueue
from app.server.context import ServerContext
from app.server.guards import check_origin, check_token, client_key
from app.server.responses import error_response


async def _read_body(ctx: ServerContext) -> bytes:
    """The body, refused as soon as it is known to be too large (never buffered past the limit)."""
    limit = ctx.settings.max_message_bytes
    if request.content_length is not None and request.content_length > limit:
        raise MessageTooLarge(f"body is {request.content_length} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in request.body:
        body += chunk
        if len(body) > limit:
            raise MessageTooLarge(f"body is over the limit of {limit} bytes")
    return bytes(body)


async def http_run(ctx: ServerContext) -> Response:
    settings = ctx.settings
    try:
        check_origin(request.headers, settings)
        check_token(request.headers, request.args, settings)
        if request.mimetype != "application/json":
            raise UnsupportedMediaType(f"the body must be application/json, not {request.mimetype or 'nothing'!r}")
        run_request = parse_run_fields(load_json_object(await _read_body(ctx), settings), settings)
        client = client_key(request.headers, request.args, request.remote_addr, settings)
        async with ctx.admission.slot(client):
            if ctx.draining:
                raise Unavailable("the server is shutting down")
            # nothing can follow the body's stdin: the program reads it, then end of file
            stdin = StdinQueue()
            await stdin.close()
            async with ctx.service.run(run_request, ctx.new_run_id(), stdin) as run:
                ctx.add_run(run)
                output: list[str] = []
                streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
                try:
                    async for event in run.events():
                        if isinstance(event, Output):
                            output.append(event.data)
                            streams[event.stream].append(event.data)
                finally:
                    ctx.remove_run(run)
                    ctx.record(run, client, "http", run_request)
        exit_ = run.exit
        assert exit_ is not None
        body: dict[str, Any] = {
            "output": "".join(output),
            "stdout": "".join(streams["stdout"]),
            "stderr": "".join(streams["stderr"]),
            "exit_code": exit_.exit_code,
            "signal": exit_.signal,
            "reason": exit_.reason,
            "duration_ms": exit_.duration_ms,
            "truncated": exit_.truncated,
        }
        sentence = exit_.sentence(run.limits)
        if sentence:
            body["error"] = sentence
        return jsonify(body)
    except SCEError as error:
        ctx.metrics.errors.labels(error.code).inc()
        return error_response(error, settings.retry_after_s)
