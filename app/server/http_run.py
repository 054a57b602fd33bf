"""``POST /run``: the same run as the WebSocket, answered once it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

from quart import Response, request

from app.errors import MessageTooLarge, SCEError, UnsupportedMediaType
from app.protocol import (
    AnswerFile,
    AnswerImage,
    FileFrame,
    ImageFrame,
    ResultFrame,
    StderrFrame,
    StdoutFrame,
    load_json_object,
    parse_run_fields,
    parse_server_frame,
)
from app.server import frames
from app.server.context import ServerContext
from app.server.guards import check_origin, check_token, client_key
from app.server.responses import error_response
from app.server.runs import check_session

# A request refused before its body was read must not be answered with an unread body left in
# the socket: closing then makes the kernel reset the connection and the client loses the answer
# (a 413 for a large body, typically). So the answer is sent at once, with `Connection: close`,
# and the rest of the body is read and dropped (up to this much) before the connection closes.
DISCARD_MAX_BYTES = 64 * 1024 * 1024
ANSWERED = frozenset({"stdout", "stderr", "image", "file", "result"})  # the frames the answer gathers


async def _read_body(ctx: ServerContext) -> bytes:
    """The body, never buffered past the limit."""
    limit = ctx.settings.max_message_bytes
    if request.content_length is not None and request.content_length > limit:
        raise MessageTooLarge(f"body is {request.content_length} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in request.body:
        body += chunk
        if len(body) > limit:
            raise MessageTooLarge(f"body is over the limit of {limit} bytes")
    return bytes(body)


async def _refuse(ctx: ServerContext, error: SCEError, body_read: bool) -> Response:
    response = error_response(error, ctx.settings.retry_after_s)
    if body_read:
        return response
    response.headers["Connection"] = "close"
    if "100-continue" in request.headers.get("Expect", "").lower():
        return response  # the client waits for our word before sending its body: it will not
    payload = await response.get_data(as_text=False)
    body = request.body

    async def answer_then_discard() -> AsyncIterator[bytes]:
        yield payload
        seen = 0
        async for chunk in body:
            seen += len(chunk)
            if seen > DISCARD_MAX_BYTES:
                break

    streamed = Response(answer_then_discard(), status=response.status_code, headers=response.headers)
    streamed.headers["Content-Length"] = str(len(payload))
    return streamed


async def http_run(ctx: ServerContext) -> Response:
    settings = ctx.settings
    body_read = False
    live = None
    try:
        check_origin(request.headers, settings)
        check_token(request.headers, request.args, settings)
        if request.mimetype != "application/json":
            raise UnsupportedMediaType(f"the body must be application/json, not {request.mimetype or 'nothing'!r}")
        raw = await _read_body(ctx)
        body_read = True
        run_request = parse_run_fields(load_json_object(raw, settings), settings)
        check_session(run_request)
        client = client_key(request.headers, request.args, request.remote_addr, settings)
        live = ctx.new_run(run_request, client, "http")
        live.write_stdin(None, eof=True)  # nothing can follow the body's stdin: the program reads it, then end of file
        live.start()
        output: list[str] = []
        streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        images: list[AnswerImage] = []
        files: list[AnswerFile] = []
        result: str | None = None
        async for entry in live.frames():
            if entry.kind not in ANSWERED:
                continue  # queued, started, stats, input (the caller sent it), exit, error
            frame = parse_server_frame(entry.text)
            if isinstance(frame, StdoutFrame | StderrFrame):
                output.append(frame.data)
                streams[frame.type].append(frame.data)
            elif isinstance(frame, ImageFrame):
                images.append(frames.answer_image(frame))
            elif isinstance(frame, FileFrame):
                files.append(frames.answer_file(frame))
            elif isinstance(frame, ResultFrame):
                result = frame.text
        if live.error is not None:
            raise live.error
        exit_ = live.exit
        assert exit_ is not None and live.run is not None
        answer = frames.run_answer(
            exit_,
            live.run.limits,
            output="".join(output),
            stdout="".join(streams["stdout"]),
            stderr="".join(streams["stderr"]),
            images=images,
            files=files,
            result=result,
        )
        return Response(answer.model_dump_json(), content_type="application/json")
    except SCEError as error:
        if live is None:
            ctx.metrics.errors.labels(error.code).inc()  # a run's own errors are counted by the run
        return await _refuse(ctx, error, body_read)
    finally:
        if live is not None and not live.done:
            live.kill()  # the client went away: its run ends now
            await live.wait_done()
