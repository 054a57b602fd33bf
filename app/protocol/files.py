"""Files in (v2): the ``files`` of a run frame or ``POST /run`` body, checked and decoded.

The sandbox writes these paths under the program's working directory, so a path must not be
able to name anything outside it, whatever the code that later joins it does: relative, ``/``
only, no ``..``, ``.`` or empty part, no NUL, no backslash (a Windows habit that would create a
file literally named ``a\\b``), and short enough for any Linux filesystem. Every refusal names
the file and says why, as PROTOCOL.md asks.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from app.protocol._errors import bad, too_large

if TYPE_CHECKING:
    from app.settings import Settings

# NAME_MAX on Linux filesystems is 255 bytes a part; a whole path is kept well under PATH_MAX
# (4096, which also has to hold the working directory's own path).
MAX_PART_BYTES = 255
MAX_PATH_BYTES = 1024
_SHOWN_CHARS = 60


def shown(path: str) -> str:
    """A path quoted for a message, cut short: the message must stay readable."""
    return repr(path if len(path) <= _SHOWN_CHARS else path[:_SHOWN_CHARS] + "…")


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a file in the working directory, or None if it can."""
    if path == "":
        return "the path is empty"
    if "\x00" in path:
        return "the path contains a NUL character"
    if "\\" in path:
        return "the path contains a backslash; use '/' between folders"
    if path.startswith("/"):
        return "the path must be relative (no leading '/')"
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "the path is not valid Unicode (a lone surrogate)"
    if size > MAX_PATH_BYTES:
        return f"the path is {size} bytes long; the limit is {MAX_PATH_BYTES}"
    for part in path.split("/"):
        if part == "":
            return "the path has an empty part ('//' or a trailing '/')"
        if part == ".":
            return "the path has a '.' part"
        if part == "..":
            return "the path has a '..' part"
        if len(part.encode("utf-8")) > MAX_PART_BYTES:
            return f"a part of the path is over {MAX_PART_BYTES} bytes long"
    return None


def filename_problem(name: str) -> str | None:
    """Why ``name`` cannot be the code's file name (v3: a plain name, no folders), or None."""
    if name in ("", ".", ".."):
        return "it must be a plain file name such as 'main.py'"
    if "/" in name or "\\" in name:
        return "it must be a plain file name, without folders"
    if "\x00" in name:
        return "it contains a NUL character"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid Unicode (a lone surrogate)"
    if size > MAX_PART_BYTES:
        return f"it is {size} bytes long; the limit is {MAX_PART_BYTES}"
    return None


class FileIn(BaseModel):
    """``{"path", "content", "encoding"?}`` as sent; ``decoded()`` gives the bytes."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    path: str = Field(description="relative, '/'-separated, no '..', '.' or empty part", examples=["data/in.csv"])
    content: str = Field(description="the file's text (utf-8) or its bytes in base64")
    encoding: Literal["utf-8", "base64"] = Field("utf-8", description="how `content` is encoded")

    _bytes: bytes = PrivateAttr(b"")

    @field_validator("encoding", mode="before")
    @classmethod
    def _null_encoding(cls, value: object) -> object:
        return "utf-8" if value is None else value

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        problem = path_problem(path)
        if problem is not None:
            raise bad(f"file {shown(path)}: {problem}")
        return path

    @model_validator(mode="after")
    def _decode(self) -> FileIn:
        if self.encoding == "base64":
            try:
                data = base64.b64decode(self.content, validate=True)
            except (binascii.Error, ValueError):
                data = None
            # strict: the one canonical spelling only (no stray bits after the last byte)
            if data is None or base64.b64encode(data).decode("ascii") != self.content:
                raise bad(f"file {shown(self.path)}: content is not valid base64")
        else:
            try:
                data = self.content.encode("utf-8")
            except UnicodeEncodeError:
                raise bad(f"file {shown(self.path)}: content is not valid UTF-8 text (a lone surrogate)") from None
        self._bytes = data
        return self

    def decoded(self) -> bytes:
        return self._bytes


@dataclass(frozen=True)
class InFile:
    """A file to write before the program starts, decoded."""

    path: str
    content: bytes


def check_files(files: Sequence[FileIn], settings: Settings | None) -> None:
    """The rules about the set of files: duplicates always; count and sizes against ``settings``.

    Count is checked first: it is cheap and bounds the rest.
    """
    if settings is not None and len(files) > settings.files_in_max_count:
        raise bad(f"{len(files)} files sent; the limit is {settings.files_in_max_count}")
    seen: set[str] = set()
    for file in files:
        if file.path in seen:
            raise bad(f"file {shown(file.path)} is sent twice")
        seen.add(file.path)
    folders = {"/".join(f.path.split("/")[:i]) for f in files for i in range(1, f.path.count("/") + 1)}
    for file in files:
        if file.path in folders:
            raise bad(f"file {shown(file.path)} is also a folder of another file")
    if settings is None:
        return
    total = 0
    for file in files:
        size = len(file.decoded())
        if size > settings.files_in_max_bytes:
            raise too_large(
                f"file {shown(file.path)} is {size} bytes; the limit per file is {settings.files_in_max_bytes}"
            )
        total += size
    if total > settings.files_in_total_bytes:
        raise too_large(f"the files are {total} bytes in all; the limit is {settings.files_in_total_bytes}")
