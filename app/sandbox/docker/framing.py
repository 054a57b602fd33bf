"""Docker's multiplexed attach stream, parsed without I/O.

With no TTY, the engine wraps every chunk of output in an 8-byte header: the stream byte
(1 stdout, 2 stderr), three zero bytes, and a big-endian payload length. A header or payload
may be split across socket reads, and a payload is neither a line nor a whole UTF-8 character,
so the parser keeps a small buffer and yields ``(stream, payload)`` pairs as they complete.
"""

from __future__ import annotations

import struct

from app.core.streams import Stream

HEADER_SIZE = 8
_STREAMS: dict[int, Stream] = {1: "stdout", 2: "stderr"}
_HEADER = struct.Struct(">BxxxL")


class FrameError(ValueError):
    """The byte stream does not follow the multiplexing format."""


class FrameParser:
    """Incremental parser: ``feed`` bytes, get completed payloads."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[Stream, bytes]]:
        """Completed payloads, neighbours of one stream joined (a line-buffered program writes
        one frame per line: joining them here makes the line work per read, not per line)."""
        self._buf += data
        buf = self._buf
        view = memoryview(buf)
        runs: list[tuple[Stream, list[memoryview]]] = []
        pos = 0
        try:
            while len(buf) - pos >= HEADER_SIZE:
                kind, length = _HEADER.unpack_from(buf, pos)
                if len(buf) - pos - HEADER_SIZE < length:
                    break
                stream = _STREAMS.get(kind)
                if stream is None:
                    raise FrameError(f"unknown stream byte {kind}")
                start = pos + HEADER_SIZE
                pos = start + length
                if not length:
                    continue
                if runs and runs[-1][0] == stream:
                    runs[-1][1].append(view[start:pos])
                else:
                    runs.append((stream, [view[start:pos]]))
            out = [(stream, b"".join(parts)) for stream, parts in runs]
        finally:
            runs.clear()
            view.release()
        del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf)


def encode_frame(stream: Stream, payload: bytes) -> bytes:
    """The inverse of the parser; used by tests."""
    kind = 1 if stream == "stdout" else 2
    return struct.pack(">BxxxL", kind, len(payload)) + payload
