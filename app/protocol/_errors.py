"""Pydantic's validation errors turned into the protocol's codes and sentences.

The models in this package carry the rules; this module decides what the client reads when a
rule is broken. Validators raise ``PydanticCustomError`` whose type is a protocol code
(``bad_message``, ``code_too_large``) and whose message is already the sentence to send; plain
type errors are worded from ``MUST_BE`` so a client reads ``'code' must be a string`` rather
than pydantic's ``Input should be a valid string``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from app.errors import BadMessage, CodeTooLarge, SCEError

BAD_MESSAGE = "bad_message"
CODE_TOO_LARGE = "code_too_large"

# What each client field must be, in words (the last part of an error's location).
MUST_BE: dict[str, str] = {
    "code": "a string",
    "stdin": "a string",
    "timeout": "a number of seconds",
    "runtime": "a string",
    "stats": "true or false",
    "files": "a list of {path, content, encoding} objects",
    "path": "a string",
    "content": "a string",
    "encoding": "'utf-8' or 'base64'",
    "data": "a string",
    "eof": "true or false",
    "id": "a string",
    "token": "a string",
    "after": "a whole number, 0 or more",
    "filename": "a string",
    "session": "a string",
    "session_token": "a string",
}


def require_type(schema: dict[str, Any]) -> None:
    """Every frame's ``type`` is required on the wire, although the models default it for building."""
    if "type" in schema.get("properties", {}):
        required = schema.setdefault("required", [])
        if "type" not in required:
            required.insert(0, "type")


def bad(message: str) -> PydanticCustomError:
    """A ``bad_message`` refusal from inside a validator, with the sentence the client reads."""
    return PydanticCustomError(BAD_MESSAGE, message)


def too_large(message: str) -> PydanticCustomError:
    """A ``code_too_large`` refusal from inside a validator."""
    return PydanticCustomError(CODE_TOO_LARGE, message)


def _place(loc: Sequence[int | str]) -> str:
    """``('files', 2)`` -> ``files[2]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _sentence(err: ErrorDetails) -> str:
    if err["type"] in (BAD_MESSAGE, CODE_TOO_LARGE):
        return err["msg"]
    loc = tuple(err["loc"])
    if not loc or isinstance(loc[-1], int):  # the thing itself, or an item of a list: files[3]
        return f"{_place(loc) or 'a message'} must be an object"
    field = str(loc[-1])
    where = f"{_place(loc[:-1])}: " if len(loc) > 1 else ""
    return f"{where}'{field}' must be {MUST_BE.get(field, 'of the right type')}"


def translate(exc: ValidationError) -> SCEError:
    """The one ``SCEError`` a client gets for a refused frame.

    A malformed request is refused as ``bad_message`` even if something in it is also too
    large: the size of something that cannot be run does not matter. Only a well-formed
    request that is too large is ``code_too_large``.
    """
    errors = exc.errors()
    malformed = [err for err in errors if err["type"] != CODE_TOO_LARGE]
    if malformed:
        return BadMessage(_sentence(malformed[0]))
    return CodeTooLarge(_sentence(errors[0]))
