"""One budget for everything a run makes the server send and keep: its frames, as sent.

The output cap counts the program's raw bytes, but what the server holds for a run (its kept
frames, for resumes and watchers until the grace ends) and what it spends CPU on is frames: a
byte of binary output is six bytes as JSON (``\\ufffd``), and an image record whose data was
omitted is a frame the output cap never sees, so a loop of them made frames without end. Here
every frame a run causes is charged by its size as sent, of any type, omitted or not (an
omitted image is ~100 bytes). The data of an image or file
is the one thing not charged: ``rich_output_bytes`` counts it already (and omits past it).

Frames that end or frame the run (``queued``, ``started``, ``exit``, ``error``) are always kept;
the others are refused once the budget is spent, and the run is stopped (``output_limit``).
Pure: no I/O, unit-tested on its own.
"""

from __future__ import annotations

from collections.abc import Callable

FRAME_OVERHEAD_BYTES = 0
"""Charged per frame beyond its text. 0: the bound is bytes as sent, and at 128 (what keeping one
costs in Python) a flood of short lines on both streams (~1.9x as sent) ended at half its cap."""
ALWAYS_KEPT = frozenset({"queued", "started", "exit", "error"})
RICH_KINDS = frozenset({"image", "file"})
TEXT_KINDS = frozenset({"stdout", "stderr"})
OWN_LIMIT = frozenset({"input"})
"""Kept and not charged: the echo of what the client typed is bounded by ``SCE_STDIN_MAX_BYTES``, and
typing must not end a run as ``output_limit``."""

Remake = Callable[[str], str]
"""The frame's text as sent with its ``data`` replaced (to cut an output frame to what fits)."""


class FrameBudget:
    """``keep(kind, text, data, remake)`` for each frame in order: what to keep of it (None: nothing)."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.spent = 0
        self.frames = 0
        self.exhausted = False

    def cost(self, kind: str, text: str, data: str | None = None) -> int:
        size = len(text.encode("utf-8", "surrogatepass")) if not text.isascii() else len(text)
        if kind in RICH_KINDS and data is not None:
            size -= len(data)  # base64, ASCII: counted by rich_output_bytes instead
        return size + FRAME_OVERHEAD_BYTES

    def keep(self, kind: str, text: str, data: str | None = None, remake: Remake | None = None) -> str | None:
        """Charge the frame; the text to keep, or None to drop it. The output frame that crosses
        the limit is kept up to it (its data cut short, through ``remake``); after that every frame
        but the run's framing ones is refused, and ``exhausted`` says the run must end."""
        if kind in OWN_LIMIT:
            return text
        cost = self.cost(kind, text, data)
        if kind in ALWAYS_KEPT or (not self.exhausted and self.spent + cost <= self.limit_bytes):
            self.spent += cost
            self.frames += 1
            return text
        if self.exhausted:
            return None
        self.exhausted = True
        if kind not in TEXT_KINDS or data is None or remake is None:
            return None
        cut = _cut_to(data, remake, self.limit_bytes - self.spent)
        if cut is None:
            return None
        self.spent += self.cost(kind, cut)
        self.frames += 1
        return cut


def _cut_to(data: str, remake: Remake, room: int) -> str | None:
    """The frame with as much of its data as fits in ``room`` bytes as sent (None: none fits)."""
    lo, hi = 0, len(data)  # the longest prefix that fits lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(remake(data[:mid]).encode("utf-8", "surrogatepass")) <= room:
            lo = mid
        else:
            hi = mid - 1
    return remake(data[:lo]) if lo > 0 else None
