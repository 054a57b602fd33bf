"""The server's side of the in-band side channel: images and files inside a program's stdout.

The bootstrap (``app.sandbox.inside.bootstrap``, which defines the marker and the record kinds
used here) writes each image or file as one record on stdout::

    b"\\x1eSCE:" + nonce + b":" + kind + b":" + meta_len + b":" + data_len + b"\\n" + meta_json + data

``SideChannelDemux`` splits stdout bytes back into ordinary output and ``Record``s, in order,
whatever way the bytes were cut into reads. The program owns its process and can write
anything, so nothing here trusts it: a marker with another nonce (say, a program printing the
record format) or a malformed header is ordinary output; a record over ``max_record_bytes`` is
skipped as it streams by, never buffered; what is held at any time is bounded (the marker, a
header, ``MAX_META_BYTES`` of meta, ``max_record_bytes`` of data). Records can only ever add
images or files to the program's own run, and the limits on them are the caller's to enforce
again (``png_size`` lets it check an image's dimensions itself).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from app.sandbox.inside import bootstrap as _inside
from app.sandbox.inside.bootstrap import MARKER

__all__ = ["MARKER", "Item", "Record", "SideChannelDemux", "exception_of", "png_size"]

# the record kinds, as ``Record.kind`` holds them
KIND_IMAGE = _inside.KIND_IMAGE.decode("ascii")
KIND_FILE = _inside.KIND_FILE.decode("ascii")
KIND_FILES_END = _inside.KIND_FILES_END.decode("ascii")
KIND_STDERR = _inside.KIND_STDERR.decode("ascii")
KIND_EXIT = _inside.KIND_EXIT.decode("ascii")
KIND_EXCEPTION = _inside.KIND_EXCEPTION.decode("ascii")
KIND_RESULT = _inside.KIND_RESULT.decode("ascii")
KIND_BEGIN = _inside.KIND_BEGIN.decode("ascii")
EXCEPTION_NAME_MAX_CHARS = 200
EXCEPTION_LINE_MAX = 2**31 - 1
"""A forged record's ``line`` past this (a JSON number no client holds exactly) is not well formed."""
MAX_HEADER_BYTES = 48
"""``kind:meta_len:data_len\\n`` after the nonce; longer is not a header."""
MAX_META_BYTES = 65_536
"""A record's JSON meta is small (a path, a mime type, sizes); more is not a record."""

_HEADER = re.compile(rb"([a-z_]{1,16}):(0|[1-9][0-9]{0,11}):(0|[1-9][0-9]{0,11})\n")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Record:
    """One image or file (or ``files_end``) the program sent. ``data`` is None when omitted:
    ``omitted`` says why (``"too_large"``), whether the sandbox or this demux left it out."""

    kind: str
    meta: dict[str, Any]
    data: bytes | None
    omitted: str | None


Item = bytes | Record


class SideChannelDemux:
    """Incremental: ``feed`` stdout bytes as they come, ``finish`` at the end of the stream."""

    def __init__(self, nonce: str, max_record_bytes: int) -> None:
        self._marker = MARKER + nonce.encode("ascii") + b":"
        self._max_record = max_record_bytes
        self._buf = bytearray()  # scanning: unclassified bytes, starting at a possible marker
        self._record: tuple[str, dict[str, Any]] | None = None  # a header and meta parsed: its data follows
        self._need = 0  # data bytes still to come for self._record
        self._skipping = False  # the record is too large: its data is counted, not kept
        self._data = bytearray()

    @property
    def held(self) -> int:
        """Bytes held back right now (for tests and metrics)."""
        return len(self._buf) + len(self._data)

    def feed(self, data: bytes) -> list[Item]:
        """Ordinary output (bytes) and complete records, in stream order."""
        out: list[Item] = []
        pos = 0
        while pos < len(data):
            if self._record is not None:
                pos = self._take_data(data, pos, out)
            else:
                self._buf += data[pos:]
                pos = len(data)
                self._scan(out)
        return _joined(out)

    def finish(self) -> list[Item]:
        """End of the stream: held bytes that never became a record header are output; a
        record cut off after its header is dropped."""
        out: list[Item] = []
        if self._record is None and self._buf and not self._header_complete():
            out.append(bytes(self._buf))
        self._buf.clear()
        self._data.clear()
        self._record = None
        return out

    # -- internals -----------------------------------------------------------------------------
    def _header_complete(self) -> bool:
        return bool(self._buf.startswith(self._marker) and _HEADER.match(self._buf, len(self._marker)))

    def _scan(self, out: list[Item]) -> None:
        buf, marker = self._buf, self._marker
        while buf:
            at = buf.find(marker)
            if at < 0:
                keep = _partial_suffix(buf, marker)
                if len(buf) > keep:
                    out.append(bytes(buf[: len(buf) - keep]))
                    del buf[: len(buf) - keep]
                return
            if at:
                out.append(bytes(buf[:at]))
                del buf[:at]
            verdict = self._try_header(out)
            if verdict == "wait":
                return
            if verdict == "bad":
                out.append(bytes(buf[:1]))  # not a record: its first byte is output, rescan after it
                del buf[:1]
            else:  # a record started: the rest of the buffer is its data and what follows
                rest = bytes(buf)
                buf.clear()
                pos = self._take_data(rest, 0, out)
                if pos < len(rest):
                    buf += rest[pos:]
                elif self._record is not None:
                    return

    def _try_header(self, out: list[Item]) -> str:
        """buf starts with the marker: 'wait' for more bytes, 'bad' (not a record) or 'ok'."""
        buf, start = self._buf, len(self._marker)
        match = _HEADER.match(buf, start)
        if match is None:
            newline = buf.find(b"\n", start, start + MAX_HEADER_BYTES)
            if newline < 0 and len(buf) - start < MAX_HEADER_BYTES:
                return "wait"
            return "bad"
        kind = match.group(1).decode()
        meta_len, data_len = int(match.group(2)), int(match.group(3))
        if meta_len > MAX_META_BYTES:
            return "bad"
        end = match.end()
        if len(buf) - end < meta_len:
            return "wait"
        try:
            meta = json.loads(bytes(buf[end : end + meta_len]))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return "bad"
        if not isinstance(meta, dict):
            return "bad"
        del buf[: end + meta_len]
        self._record = (kind, meta)
        self._need = data_len
        self._skipping = meta_len + data_len > self._max_record
        self._data.clear()
        if data_len == 0:
            self._complete(out)
        return "ok"

    def _take_data(self, data: bytes, pos: int, out: list[Item]) -> int:
        """Consume the current record's data from ``data[pos:]``; returns the new position."""
        if self._record is None:
            return pos
        take = min(self._need, len(data) - pos)
        if not self._skipping:
            self._data += data[pos : pos + take]
        self._need -= take
        pos += take
        if self._need == 0:
            self._complete(out)
        return pos

    def _complete(self, out: list[Item]) -> None:
        assert self._record is not None
        kind, meta = self._record
        omitted = meta.get("omitted")
        if self._skipping:
            out.append(Record(kind, meta, None, "too_large"))
        elif isinstance(omitted, str):
            out.append(Record(kind, meta, None, omitted))
        else:
            out.append(Record(kind, meta, bytes(self._data), None))
        self._record = None
        self._data.clear()
        self._skipping = False


def _partial_suffix(buf: bytearray, marker: bytes) -> int:
    """Length of the longest end of ``buf`` that is a proper beginning of ``marker``."""
    first = marker[:1]
    start = max(0, len(buf) - len(marker) + 1)
    at = buf.find(first, start)
    while at >= 0:
        if marker.startswith(buf[at:]):
            return len(buf) - at
        at = buf.find(first, at + 1)
    return 0


def _joined(items: list[Item]) -> list[Item]:
    """Neighbouring output bytes merged into one item."""
    out: list[Item] = []
    for item in items:
        if isinstance(item, bytes):
            if not item:
                continue
            if out and isinstance(out[-1], bytes):
                out[-1] += item
                continue
        out.append(item)
    return out


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None if ``data`` does not start like a PNG."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if width == 0 or height == 0:
        return None
    return width, height


def exception_of(record: Record) -> tuple[str, str, int | None] | None:
    """The ``exception`` record's ``(name, value, line)``, or None when it is not well formed.

    The program can write this record itself, so everything is checked and cut to size; at worst
    a program misreports the exception of its own run."""
    meta = record.meta
    name, value, line = meta.get("name"), meta.get("value"), meta.get("line")
    if not isinstance(name, str) or not name or not isinstance(value, str):
        return None
    if line is not None and (type(line) is not int or not 1 <= line <= EXCEPTION_LINE_MAX):
        return None
    return name[:EXCEPTION_NAME_MAX_CHARS], value[: _inside.EXCEPTION_VALUE_MAX_CHARS], line
