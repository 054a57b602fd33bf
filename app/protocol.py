"""The run protocol's client side, parsed and validated without I/O.

Both transports share this: the WebSocket's frames (``run``, ``stdin``, ``kill``) and the HTTP
body (a ``run`` frame without ``type``). Every rejection is an ``SCEError`` with the protocol's
code, decided here and nowhere else.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from app.errors import BadMessage, CodeTooLarge, MessageTooLarge
from app.settings import Settings


@dataclass(frozen=True)
class RunRequest:
    code: str
    stdin: str | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class StdinFrame:
    data: str | None = None
    eof: bool = False


@dataclass(frozen=True)
class KillFrame:
    pass


ClientFrame = RunRequest | StdinFrame | KillFrame


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


def _optional_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadMessage(f"'{key}' must be a string")
    return value


def parse_run_fields(obj: dict[str, Any], settings: Settings) -> RunRequest:
    code = obj.get("code")
    if not isinstance(code, str):
        raise BadMessage("'code' must be a string")
    size = len(code.encode("utf-8", "surrogatepass"))
    if size > settings.code_max_bytes:
        raise CodeTooLarge(f"code is {size} bytes; the limit is {settings.code_max_bytes}")
    stdin = _optional_str(obj, "stdin")
    timeout = obj.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise BadMessage("'timeout' must be a number of seconds")
        try:
            timeout = float(timeout)  # an integer too large for a float overflows here
        except OverflowError:
            timeout = math.inf
        if not math.isfinite(timeout) or timeout <= 0:
            raise BadMessage("'timeout' must be a positive, finite number of seconds")
    return RunRequest(code=code, stdin=stdin, timeout=timeout)


def parse_client_frame(raw: str | bytes, settings: Settings) -> ClientFrame:
    """One WebSocket frame from a client. Binary frames are refused by the caller."""
    obj = load_json_object(raw, settings)
    kind = obj.get("type")
    if kind == "run":
        return parse_run_fields(obj, settings)
    if kind == "stdin":
        eof = obj.get("eof", False)
        if eof is None:
            eof = False
        if not isinstance(eof, bool):
            raise BadMessage("'eof' must be true or false")
        return StdinFrame(data=_optional_str(obj, "data"), eof=eof)
    if kind == "kill":
        return KillFrame()
    if not isinstance(kind, str):
        raise BadMessage("a message needs a string 'type'")
    raise BadMessage(f"unknown message type {kind!r}")


def effective_timeout(requested: float | None, settings: Settings) -> float:
    """The client's wish, clamped to the server's maximum; the default when it names none."""
    if requested is None:
        return settings.timeout_s
    return min(requested, settings.timeout_max_s)
