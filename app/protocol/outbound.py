"""What the server sends: every WebSocket frame and the HTTP answers, as models.

The server builds each frame as a model and sends ``frame.wire()`` (or ``model_dump_json()``,
which is the same); the Python client reads frames back with ``parse_server_frame``. Fields the
contract says are *left out* when they do not apply (``seq`` before ``started``, ``token`` in a
watcher's copy of ``started``, ``data`` of an omitted image or file, ``error`` of a plain exit)
are named in each model's ``OMIT_WHEN_NONE`` and dropped from the output when ``None``; fields
the contract shows as ``null`` (``exit_code``, ``signal``, ``cpu_ms``) are always sent.
``files_truncated`` is sent only when true, as the contract says; ``exception`` and
``session_alive`` (v3) only where they apply.

Reading is lenient, as the contract asks of clients: unknown fields are ignored, and a frame
of an unknown type is skipped (``parse_server_frame`` answers ``None``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    field_serializer,
    model_serializer,
)

from app.protocol._errors import require_type

ExitReason = Literal["exit", "timeout", "oom", "output_limit", "killed"]
ErrorCode = Literal[
    "bad_message",
    "code_too_large",
    "message_too_large",
    "busy",
    "unavailable",
    "internal",
    "not_found",
    "unsupported_media_type",
    "unauthorized",
    "forbidden",
    "session_busy",
]
Seq = Annotated[int, Field(ge=1, description="counts from 1 with no gaps, on every frame after `started` (v2)")]
Count = Annotated[int, Field(ge=0)]


class _Wire(BaseModel):
    """A frame or answer as sent: ``None`` in an ``OMIT_WHEN_NONE`` field means 'not sent'."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=require_type)

    OMIT_WHEN_NONE: ClassVar[frozenset[str]] = frozenset()
    # a field sent only alongside another (``result`` of a run in a session, null or not)
    ONLY_WITH: ClassVar[dict[str, str]] = {}

    @model_serializer(mode="wrap")
    def _omit(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        # ``type`` first and ``seq`` last, for people reading frames in a log
        data = {"type": dumped.pop("type")} if "type" in dumped else {}
        seq = dumped.pop("seq", None)
        data.update(dumped)
        if seq is not None:
            data["seq"] = seq
        for name in self.OMIT_WHEN_NONE:
            if data.get(name, 0) is None:
                del data[name]
        for name, other in self.ONLY_WITH.items():
            if other not in data:
                data.pop(name, None)
        return data

    def wire(self) -> dict[str, Any]:
        """The JSON object to send."""
        return self.model_dump(mode="json")


class Limits(_Wire):
    timeout_s: float = Field(description="seconds of wall clock; a whole number is sent as one (10, not 10.0)")
    memory_mb: int
    output_bytes: int
    pids: int

    @field_serializer("timeout_s")
    def _whole(self, value: float) -> float | int:
        return int(value) if float(value).is_integer() else value


class QueuedFrame(_Wire):
    """Zero or more, before ``started``, while every sandbox is busy."""

    type: Literal["queued"] = "queued"
    position: Annotated[int, Field(ge=1, description="place in the queue, counting from 1")]


class StartedFrame(_Wire):
    """The program runs under ``limits``. ``token``/``watch_token`` (v2) are absent for watchers / v1."""

    OMIT_WHEN_NONE = frozenset({"token", "watch_token"})

    type: Literal["started"] = "started"
    id: str
    limits: Limits
    token: str | None = Field(None, description="lets its holder resume the run, send stdin and kill (v2)")
    watch_token: str | None = Field(None, description="lets its holder watch the run (v2)")


class _Sequenced(_Wire):
    """A frame after ``started``: it carries ``seq`` (v2; absent from a version-1 server)."""

    OMIT_WHEN_NONE = frozenset({"seq"})

    seq: Seq | None = None


class StdoutFrame(_Sequenced):
    type: Literal["stdout"] = "stdout"
    data: str = Field(description="whole lines of the stream, or a partial line held too long")


class StderrFrame(_Sequenced):
    type: Literal["stderr"] = "stderr"
    data: str = Field(description="whole lines of the stream, or a partial line held too long")


class ImageFrame(_Sequenced):
    """A figure the program showed (v2). Without ``data``, ``omitted`` says why."""

    OMIT_WHEN_NONE = frozenset({"seq", "data", "omitted", "width", "height"})

    type: Literal["image"] = "image"
    mime: Literal["image/png", "image/svg+xml"]
    data: str | None = Field(None, description="the image's bytes in base64")
    width: int | None = None
    height: int | None = None
    omitted: Literal["too_large"] | None = None


class FileFrame(_Sequenced):
    """A file the program created or changed (v2), sent after it ends by itself."""

    OMIT_WHEN_NONE = frozenset({"seq", "data", "omitted"})

    type: Literal["file"] = "file"
    path: str
    size: Count
    mime: str
    data: str | None = Field(None, description="the file's bytes in base64")
    omitted: Literal["too_large"] | None = None


class StatsFrame(_Sequenced):
    """About twice a second while the program runs, when the run frame asked with ``stats`` (v2)."""

    type: Literal["stats"] = "stats"
    memory_bytes: Count
    memory_limit_bytes: Count
    cpu_ms: Count
    pids: Count


class InputFrame(_Sequenced):
    """Standard input the server accepted for the run, echoed to every connection (v3).

    It follows the output that was read before the input was written, so a watcher or a resumed
    driver sees what was typed where it was typed."""

    type: Literal["input"] = "input"
    data: str = Field(description="the text written to the program's standard input (may be empty)")
    eof: bool = Field(description="true when standard input was closed after `data`")


class ResultFrame(_Sequenced):
    """In a session, the ``repr`` of the run's last expression when it is not ``None`` (v3)."""

    type: Literal["result"] = "result"
    text: str = Field(description="the value's repr, cut to the output limit")


class ExceptionInfo(_Wire):
    """The uncaught exception a program ended by (v3)."""

    name: str = Field(description="the exception's type name, e.g. `ZeroDivisionError`")
    value: str = Field(description="its message (`str(exc)`)")
    line: int | None = Field(description="the line of the run's own code where it was raised; null if none is")


class ExitFrame(_Sequenced):
    """The run is over; exactly one after ``started`` unless the sandbox itself failed."""

    OMIT_WHEN_NONE = frozenset({"seq", "files_truncated", "exception", "session_alive"})

    type: Literal["exit"] = "exit"
    reason: ExitReason
    exit_code: int | None
    signal: str | None
    duration_ms: Count
    stdout_bytes: Count
    stderr_bytes: Count
    truncated: bool
    cpu_ms: Count | None = Field(None, description="CPU time the program used; null if unknown (v2)")
    memory_peak_bytes: Count | None = Field(None, description="the sandbox's peak memory; null if unknown (v2)")
    files_truncated: bool | None = Field(
        None, description="sent, as true, only when files out were cut at the count limit (v2)"
    )
    exception: ExceptionInfo | None = Field(
        None, description="the uncaught exception the program ended by; left out for any other end (v3)"
    )
    session_alive: bool | None = Field(
        None, description="on a run in a session only: false once the session is gone (v3)"
    )


class ErrorFrame(_Sequenced):
    """The request or the run failed; the connection then closes."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str


ServerFrame = Annotated[
    QueuedFrame
    | StartedFrame
    | StdoutFrame
    | StderrFrame
    | ImageFrame
    | FileFrame
    | StatsFrame
    | InputFrame
    | ResultFrame
    | ExitFrame
    | ErrorFrame,
    Field(discriminator="type"),
]
SERVER_FRAME_TYPES: tuple[str, ...] = (
    "queued", "started", "stdout", "stderr", "image", "file", "stats", "input", "result", "exit", "error",
)  # fmt: skip
_SERVER_FRAME: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)


def parse_server_frame(raw: str | bytes | dict[str, Any]) -> ServerFrame | None:
    """A frame the server sent; ``None`` for a type this client does not know (to be ignored).

    Raises ``ValueError`` (pydantic's ``ValidationError`` is one) for a known type that breaks
    the contract, or for text that is not a JSON object.
    """
    obj = json.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(obj, dict):
        raise ValueError("a server frame must be a JSON object")
    if obj.get("type") not in SERVER_FRAME_TYPES:
        return None
    return _SERVER_FRAME.validate_python(obj)


# --- HTTP ------------------------------------------------------------------------------------


class AnswerImage(_Wire):
    OMIT_WHEN_NONE = frozenset({"data", "omitted", "width", "height"})

    mime: str
    data: str | None = None
    width: int | None = None
    height: int | None = None
    omitted: Literal["too_large"] | None = None


class AnswerFile(_Wire):
    OMIT_WHEN_NONE = frozenset({"data", "omitted"})

    path: str
    size: Count
    mime: str
    data: str | None = None
    omitted: Literal["too_large"] | None = None


class RunAnswer(_Wire):
    """``POST /run``'s 200 answer: the program ran, whatever its outcome."""

    OMIT_WHEN_NONE = frozenset({"error", "files_truncated", "exception", "session_alive"})
    ONLY_WITH = {"result": "session_alive"}  # a run in a session: ``result`` is there, null or not

    output: str = Field(description="stdout and stderr interleaved in the order they were read")
    stdout: str
    stderr: str
    exit_code: int | None
    signal: str | None
    reason: ExitReason
    duration_ms: Count
    truncated: bool
    error: str | None = Field(None, description="a sentence for people when `reason` is not `exit`")
    images: list[AnswerImage] = Field(default_factory=list, description="(v2)")
    files: list[AnswerFile] = Field(default_factory=list, description="(v2)")
    cpu_ms: Count | None = Field(None, description="(v2)")
    memory_peak_bytes: Count | None = Field(None, description="(v2)")
    files_truncated: bool | None = Field(None, description="as on the `exit` frame: sent only when true (v2)")
    exception: ExceptionInfo | None = Field(None, description="as on the `exit` frame; left out when none (v3)")
    result: str | None = Field(None, description="on a run in a session only: the `result` frame's text, or null (v3)")
    session_alive: bool | None = Field(None, description="on a run in a session only (v3)")


class ErrorAnswer(_Wire):
    """Every other HTTP answer: 4xx/5xx with the protocol's code."""

    error: str
    code: ErrorCode


class RuntimeLimits(_Wire):
    """A runtime's own limits (this server's addition to v2's list)."""

    memory_mb: int
    pids: int


class RuntimeInfo(_Wire):
    """One entry of ``GET /runtimes`` (v2). A runtime whose image is missing on the engine is
    listed too, with ``available`` false and ``python`` null: its versions cannot be read."""

    name: str
    default: bool
    python: str | None = Field(description="the interpreter's version; null when the image is missing")
    description: str
    packages: dict[str, str] = Field(description="importable beyond the standard library, with versions")
    available: bool = Field(True, description="false when the runtime's image is missing on the engine")
    limits: RuntimeLimits | None = Field(None, description="this runtime's memory and process limits")


# --- sessions (v3) ----------------------------------------------------------------------------


class SessionLimits(Limits):
    """A session's limits: ``memory_mb`` is the whole session's, ``timeout_s`` each run's."""

    idle_timeout_s: float
    max_lifetime_s: float


class SessionCreated(_Wire):
    """``POST /sessions``'s 201 answer (v3)."""

    id: str = Field(description="names the session, and the server that holds it")
    token: str = Field(description="a secret of at least 128 random bits; send it with every use")
    runtime: str
    limits: SessionLimits
    expires_at: str = Field(description="RFC 3339, UTC: the earlier of idle and lifetime ends")


class SessionInfo(_Wire):
    """``GET /sessions/{id}``'s 200 answer (v3)."""

    id: str
    runtime: str
    state: Literal["idle", "running"]
    runs: Count
    created_at: str = Field(description="RFC 3339, UTC")
    expires_at: str = Field(description="RFC 3339, UTC")
    memory_bytes: Count | None = Field(description="the session's memory now; null if unknown")
