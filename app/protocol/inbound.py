"""What clients send: the WebSocket's frames and the HTTP body, as models, and their parsing.

The models are the one description of the client side of PROTOCOL.md: the server validates
with them, the Python client builds its frames from them, and ``app.protocol.schema`` derives
the JSON Schema from them. Limits that depend on the server's settings (code size, files) are
checked only when a ``Settings`` is passed in the validation context, so a client can build
and check a frame without knowing the server's limits.

Every refusal is an ``SCEError`` with the protocol's code and a sentence for people
(``'code' must be a string``), never pydantic's own wording.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from app.errors import BadMessage, MessageTooLarge
from app.protocol._errors import bad, require_type, too_large, translate
from app.protocol.files import FileIn, InFile, check_files, filename_problem, shown
from app.settings import Settings


class _ClientModel(BaseModel):
    """Strict types (``"5"`` is not a number, ``1`` is not ``true``); unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, json_schema_extra=require_type)


def _settings(info: ValidationInfo) -> Settings | None:
    context = info.context
    found = context.get("settings") if isinstance(context, dict) else None
    return found if isinstance(found, Settings) else None


class RunFields(_ClientModel):
    """A run as asked for: the ``run`` frame's fields, and the whole ``POST /run`` body."""

    code: str = Field(description="the program, at most the server's code size in UTF-8 bytes")
    stdin: str | None = Field(None, description="written to the program's standard input first")
    timeout: float | None = Field(
        None, gt=0, description="wall-clock limit in seconds, clamped to the server's maximum"
    )
    runtime: str | None = Field(None, description="a runtime's name from GET /runtimes; default: the default one")
    files: list[FileIn] | None = Field(None, description="files written into the working directory before start")
    stats: bool = Field(False, description="also send `stats` frames while the program runs (WebSocket only)")
    filename: str | None = Field(
        None, description="the name tracebacks use for the code, a plain name such as `hottest.py` (v3)"
    )
    session: str | None = Field(None, description="run in this session, from POST /sessions (v3)")
    session_token: str | None = Field(None, description="the session's `token`; required with `session` (v3)")

    @field_validator("filename")
    @classmethod
    def _plain_filename(cls, name: str | None) -> str | None:
        if name is None:
            return None  # not given (or null): tracebacks say main.py
        problem = filename_problem(name)
        if problem is not None:
            raise bad(f"filename {shown(name)}: {problem}")
        return name

    @field_validator("timeout", mode="before")
    @classmethod
    def _finite_timeout(cls, value: object) -> object:
        """Checked before the type so an integer too large for a float reads as 'not finite'."""
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                value = math.inf
        if isinstance(value, float) and (not math.isfinite(value) or value <= 0):
            raise bad("'timeout' must be a positive, finite number of seconds")
        return value

    @field_validator("stats", mode="before")
    @classmethod
    def _null_stats(cls, value: object) -> object:
        return False if value is None else value

    @field_validator("code")
    @classmethod
    def _code_size(cls, code: str, info: ValidationInfo) -> str:
        settings = _settings(info)
        if settings is not None:
            size = len(code.encode("utf-8", "surrogatepass"))
            if size > settings.code_max_bytes:
                raise too_large(f"code is {size} bytes; the limit is {settings.code_max_bytes}")
        return code

    @model_validator(mode="after")
    def _files(self, info: ValidationInfo) -> RunFields:
        check_files(self.files or [], _settings(info))
        return self

    @model_validator(mode="after")
    def _session_pair(self) -> RunFields:
        if (self.session is None) != (self.session_token is None):
            raise bad("'session' and 'session_token' go together: send both or neither")
        return self


class RunFrame(RunFields):
    """``{"type": "run", ...}``: the first frame of a driving connection."""

    type: Literal["run"] = "run"


class StdinFrame(_ClientModel):
    """``{"type": "stdin", "data"?, "eof"?}``: input for the program, in order."""

    type: Literal["stdin"] = "stdin"
    data: str | None = Field(None, description="written to the program's standard input")
    eof: bool = Field(False, description="close the program's standard input after `data`")

    @field_validator("eof", mode="before")
    @classmethod
    def _null_eof(cls, value: object) -> object:
        return False if value is None else value


class KillFrame(_ClientModel):
    """``{"type": "kill"}``: stop the program now."""

    type: Literal["kill"] = "kill"


class ResumeFrame(_ClientModel):
    """``{"type": "resume", ...}`` (v2): take a run over after a dropped connection."""

    type: Literal["resume"] = "resume"
    id: str = Field(description="the run's id, from `started`")
    token: str = Field(description="the run's `token`, from `started`")
    after: Annotated[int, Field(ge=0)] = Field(description="the last `seq` received; 0 for all that is kept")


class WatchFrame(_ClientModel):
    """``{"type": "watch", ...}`` (v2): follow a run without driving it."""

    type: Literal["watch"] = "watch"
    id: str = Field(description="the run's id, from `started`")
    token: str = Field(description="the run's `watch_token` (or its `token`)")


@dataclass(frozen=True)
class RunRequest:
    """A validated run, as the server executes it: files decoded, limits checked.

    A plain dataclass rather than the wire model, so the server can build one positionally
    (``RunRequest(code, timeout=5)``) and hold decoded bytes rather than base64 text.
    """

    code: str
    stdin: str | None = None
    timeout: float | None = None
    runtime: str | None = None
    files: tuple[InFile, ...] = ()
    stats: bool = False
    filename: str | None = None  # v3: what tracebacks call the code (None: ``main.py``)
    session: str | None = None  # v3: the session to run in, with its token
    session_token: str | None = None

    @classmethod
    def from_fields(cls, fields: RunFields) -> RunRequest:
        return cls(
            code=fields.code,
            stdin=fields.stdin,
            timeout=fields.timeout,
            runtime=fields.runtime,
            files=tuple(InFile(path=f.path, content=f.decoded()) for f in fields.files or ()),
            stats=fields.stats,
            filename=fields.filename,
            session=fields.session,
            session_token=fields.session_token,
        )


class SessionRequest(_ClientModel):
    """``POST /sessions``'s body (v3); ``{}`` asks for the default runtime and no files."""

    runtime: str | None = Field(None, description="a runtime's name from GET /runtimes; default: the default one")
    files: list[FileIn] | None = Field(None, description="files written into the session's working directory")

    @model_validator(mode="after")
    def _files(self, info: ValidationInfo) -> SessionRequest:
        check_files(self.files or [], _settings(info))
        return self


def parse_session_request(obj: dict[str, Any], settings: Settings) -> SessionRequest:
    """A ``POST /sessions`` body, checked against the server's limits for files."""
    return _validate(SessionRequest, obj, settings)


ClientFrame = RunRequest | StdinFrame | KillFrame | ResumeFrame | WatchFrame

# The frame models by ``type``, as they appear on the wire (``run`` is a RunFrame there).
CLIENT_FRAME_MODELS: dict[str, type[_ClientModel]] = {
    "run": RunFrame,
    "stdin": StdinFrame,
    "kill": KillFrame,
    "resume": ResumeFrame,
    "watch": WatchFrame,
}


_M = TypeVar("_M", bound=BaseModel)


def _reject_constant(name: str) -> Any:
    raise BadMessage(f"{name} is not valid JSON")


def load_json_object(raw: str | bytes, settings: Settings) -> dict[str, Any]:
    """Size first (cheap), then JSON, then 'is it an object'."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > settings.max_message_bytes:
        raise MessageTooLarge(f"message is {size} bytes; the limit is {settings.max_message_bytes}")
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except BadMessage:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadMessage(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadMessage("a message must be a JSON object")
    return value


def _validate(model: type[_M], obj: dict[str, Any], settings: Settings) -> _M:
    try:
        return model.model_validate(obj, context={"settings": settings})
    except ValidationError as exc:
        raise translate(exc) from None


def parse_run_fields(obj: dict[str, Any], settings: Settings) -> RunRequest:
    """A run frame's fields, or a ``POST /run`` body (a run frame without ``type``)."""
    return RunRequest.from_fields(_validate(RunFields, obj, settings))


def parse_client_frame(raw: str | bytes, settings: Settings) -> ClientFrame:
    """One WebSocket frame from a client. Binary frames are refused by the caller."""
    obj = load_json_object(raw, settings)
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise BadMessage("a message needs a string 'type'")
    model = CLIENT_FRAME_MODELS.get(kind)
    if model is None:
        raise BadMessage(f"unknown message type {kind!r}")
    if model is RunFrame:
        return parse_run_fields(obj, settings)
    frame = _validate(model, obj, settings)
    assert isinstance(frame, StdinFrame | KillFrame | ResumeFrame | WatchFrame)
    return frame


def effective_timeout(requested: float | None, settings: Settings) -> float:
    """The client's wish, clamped to the server's maximum; the default when it names none."""
    if requested is None:
        return settings.timeout_s
    return min(requested, settings.timeout_max_s)
