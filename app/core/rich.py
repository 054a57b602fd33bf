"""The server's policy for what a program sends on its side channel: images and files out.

The sandbox already keeps to its limits, but it is the program's own process, so nothing it
sends is trusted here: every record is checked again (kind, mime, sizes, the per-run budget),
a PNG's size is read from its own header rather than from the record, and anything past a limit
becomes ``omitted: "too_large"``. Whatever a program writes, it can at most make images or files
appear in its own run. Pure: no clocks, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.core.sidechannel import Record, png_size
from app.protocol.files import path_problem

IMAGE_MIMES = ("image/png", "image/svg+xml")
MAX_DIMENSION = 1_000_000
MAX_PATH_CHARS = 1024
MAX_MIME_CHARS = 128


@dataclass(frozen=True)
class RichLimits:
    image_max_bytes: int
    file_max_bytes: int
    files_max_count: int
    total_bytes: int  # images and files together, per run


@dataclass(frozen=True)
class Image:
    mime: str
    width: int
    height: int
    data: bytes | None
    omitted: str | None = None


@dataclass(frozen=True)
class FileOut:
    path: str
    size: int
    mime: str
    data: bytes | None
    omitted: str | None = None


def _dimension(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(0, min(int(value), MAX_DIMENSION))


def _text(value: object, limit: int, default: str) -> str:
    return value if isinstance(value, str) and 0 < len(value) <= limit else default


class RichOutput:
    """Turns one run's records into ``Image``/``FileOut`` events within its limits."""

    def __init__(self, limits: RichLimits) -> None:
        self.limits = limits
        self.spent = 0
        self.files: list[FileOut] = []
        self.files_truncated = False

    def _fits(self, size: int, per_item: int) -> bool:
        if size > per_item or self.spent + size > self.limits.total_bytes:
            return False
        self.spent += size
        return True

    def image(self, record: Record) -> Image | None:
        mime = record.meta.get("mime")
        if mime not in IMAGE_MIMES:
            return None
        assert isinstance(mime, str)
        width, height = _dimension(record.meta.get("width")), _dimension(record.meta.get("height"))
        data = record.data
        if data is not None and mime == "image/png":
            size = png_size(data)
            if size is None:
                return None  # not a PNG: nothing to show
            width, height = size
        if data is None or not self._fits(len(data), self.limits.image_max_bytes):
            return Image(mime, width, height, None, "too_large")
        return Image(mime, width, height, data)

    def file(self, record: Record) -> None:
        """Files are held until the run's end: only a program that ended by itself sends them."""
        path = record.meta.get("path")
        if not isinstance(path, str) or len(path) > MAX_PATH_CHARS or path_problem(path) is not None:
            return  # the program can forge records (the nonce is in its own process): '..' never leaves
        if any(f.path == path for f in self.files):
            return
        if len(self.files) >= self.limits.files_max_count:
            self.files_truncated = True
            return
        mime = _text(record.meta.get("mime"), MAX_MIME_CHARS, "application/octet-stream")
        data = record.data
        declared = record.meta.get("size")
        size = len(data) if data is not None else _dimension(declared)
        if data is None or not self._fits(len(data), self.limits.file_max_bytes):
            self.files.append(FileOut(path, size, mime, None, "too_large"))
        else:
            self.files.append(FileOut(path, size, mime, data))

    def files_end(self, record: Record) -> None:
        if record.meta.get("files_truncated") is True:
            self.files_truncated = True
