"""Line assembly for one run's output: bytes in, protocol-shaped text chunks out.

The rules are PROTOCOL.md's: a chunk holds whole lines of one stream; a complete line is never
held back; a partial line (no newline yet) is held for at most the flush interval, or until it
grows past the longest-line size, or until the end; invalid UTF-8 becomes U+FFFD with one
incremental decoder per stream so a character split across reads survives; the total output
cap truncates exactly at its byte count. No clocks or sockets here: the caller says when time
has passed (``due``/``flush_due``), which keeps this unit-testable.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from app.core.streams import Stream


@dataclass
class _StreamState:
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    partial: str = ""
    partial_since: float | None = None  # when the held partial line started waiting
    bytes_out: int = 0


class OutputAssembler:
    """Turns raw stream payloads into ``(stream, text)`` chunks under the output cap."""

    def __init__(self, *, output_bytes: int, max_line_chars: int, flush_interval_s: float) -> None:
        self.output_bytes = output_bytes
        self.max_line_chars = max_line_chars
        self.flush_interval_s = flush_interval_s
        self._streams: dict[Stream, _StreamState] = {"stdout": _StreamState(), "stderr": _StreamState()}
        self.truncated = False

    # -- accounting ------------------------------------------------------------------------
    @property
    def stdout_bytes(self) -> int:
        return self._streams["stdout"].bytes_out

    @property
    def stderr_bytes(self) -> int:
        return self._streams["stderr"].bytes_out

    @property
    def total_bytes(self) -> int:
        return self.stdout_bytes + self.stderr_bytes

    # -- input -------------------------------------------------------------------------------
    def feed(self, stream: Stream, payload: bytes, now: float) -> list[tuple[Stream, str]]:
        """Take one payload read at ``now``; return the chunks that are ready to send.

        Past the cap, the payload is cut at the cap's exact byte and ``truncated`` is set;
        everything later is dropped (the caller kills the run).
        """
        if self.truncated:
            return []
        room = self.output_bytes - self.total_bytes
        if len(payload) > room:
            payload = payload[:room]
            self.truncated = True
        state = self._streams[stream]
        state.bytes_out += len(payload)
        text = state.decoder.decode(payload)
        out = self._take_lines(stream, state, text, now)
        if self.truncated:
            out.extend(self.finish())
        return out

    def _take_lines(self, stream: Stream, state: _StreamState, text: str, now: float) -> list[tuple[Stream, str]]:
        if not text:
            return []
        head, newline, tail = text.rpartition("\n")
        out: list[tuple[Stream, str]] = []
        if newline:
            out.append((stream, state.partial + head + newline))
            state.partial = tail
            state.partial_since = now if tail else None
        else:
            if not state.partial:
                state.partial_since = now
            state.partial += tail
        limit = self.max_line_chars
        while len(state.partial) >= limit:
            out.append((stream, state.partial[:limit]))
            state.partial = state.partial[limit:]
            state.partial_since = now if state.partial else None
        return out

    # -- time ----------------------------------------------------------------------------------
    def next_flush_at(self) -> float | None:
        """The earliest moment a held partial line must go out, or None if nothing is held."""
        times = [s.partial_since for s in self._streams.values() if s.partial_since is not None]
        return min(times) + self.flush_interval_s if times else None

    def flush_due(self, now: float) -> list[tuple[Stream, str]]:
        """Release every partial line that has waited its interval by ``now``."""
        out: list[tuple[Stream, str]] = []
        for name, state in self._streams.items():
            if state.partial_since is not None and now - state.partial_since >= self.flush_interval_s:
                out.append((name, state.partial))
                state.partial = ""
                state.partial_since = None
        return out

    def release(self, stream: Stream) -> list[tuple[Stream, str]]:
        """Send a stream's held partial line now (something that must follow it is ready)."""
        state = self._streams[stream]
        if not state.partial:
            return []
        out: list[tuple[Stream, str]] = [(stream, state.partial)]
        state.partial = ""
        state.partial_since = None
        return out

    def finish(self) -> list[tuple[Stream, str]]:
        """End of output: flush decoders (a cut character becomes U+FFFD) and partial lines."""
        out: list[tuple[Stream, str]] = []
        for name, state in self._streams.items():
            rest = state.partial + state.decoder.decode(b"", final=True)
            state.partial = ""
            state.partial_since = None
            if rest:
                out.append((name, rest))
        return out


def coalesce(chunks: list[tuple[Stream, str]]) -> list[tuple[Stream, str]]:
    """Merge neighbouring chunks of the same stream: one WebSocket frame per run of lines."""
    merged: list[tuple[Stream, str]] = []
    for stream, text in chunks:
        if merged and merged[-1][0] == stream:
            merged[-1] = (stream, merged[-1][1] + text)
        else:
            merged.append((stream, text))
    return merged
