"""One exception tree for the whole service, mapped to protocol codes in one place.

Every failure a client can see is an ``SCEError`` subclass. Its ``code`` is the protocol's
``error.code``; ``ERROR_TABLE`` says which WebSocket close code and HTTP status follow it, so
the transports never decide that themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class ErrorMapping:
    close_code: int
    http_status: int


ERROR_TABLE: dict[str, ErrorMapping] = {
    "bad_message": ErrorMapping(1008, 400),
    "code_too_large": ErrorMapping(1009, 413),
    "message_too_large": ErrorMapping(1009, 413),
    "busy": ErrorMapping(1013, 503),
    "unavailable": ErrorMapping(1011, 503),
    "internal": ErrorMapping(1011, 500),
    "not_found": ErrorMapping(1008, 404),  # v2: resume/watch of an unknown or expired run, or a wrong token
    "session_busy": ErrorMapping(1013, 409),  # v3: a run for a session that is already running one
    # HTTP-only refusals before any run (no WebSocket is accepted for these)
    "unsupported_media_type": ErrorMapping(1008, 415),
    "unauthorized": ErrorMapping(1008, 401),
    "forbidden": ErrorMapping(1008, 403),
}


class SCEError(Exception):
    """Base of every error the service reports to a client."""

    code: ClassVar[str] = "internal"
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message

    @property
    def close_code(self) -> int:
        return ERROR_TABLE[self.code].close_code

    @property
    def http_status(self) -> int:
        return ERROR_TABLE[self.code].http_status


class BadMessage(SCEError):
    code = "bad_message"


class CodeTooLarge(SCEError):
    code = "code_too_large"


class MessageTooLarge(SCEError):
    code = "message_too_large"


class Busy(SCEError):
    code = "busy"
    default_message = "all sandboxes are busy; try again shortly"

    def __init__(self, message: str = "", retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # when the refusal knows when to come back (rate limits)


class Unavailable(SCEError):
    """The engine cannot be reached, or the sandbox itself failed."""

    code = "unavailable"
    default_message = "the sandbox engine is unavailable"


class NotFound(SCEError):
    """``resume``/``watch`` of a run that is unknown, expired, or not this token's."""

    code = "not_found"
    default_message = "no such run (unknown, expired, or the token does not match)"


class SessionBusy(SCEError):
    """A run for a session that is already running one (v3); the run in progress goes on."""

    code = "session_busy"
    default_message = "this session is already running a program; wait for its exit, then run again"


class Internal(SCEError):
    code = "internal"


class UnsupportedMediaType(SCEError):
    code = "unsupported_media_type"
    default_message = "the body must be application/json"


class Unauthorized(SCEError):
    code = "unauthorized"
    default_message = "a valid API token is required"


class Forbidden(SCEError):
    code = "forbidden"
    default_message = "this origin is not allowed"
