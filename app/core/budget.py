"""One budget for everything a run makes the server send and keep: its frames, as sent.

The output cap counts the program's raw bytes, but what the server holds for a run (its kept
frames, for resumes and watchers until the grace ends) and what it spends CPU on is frames: a
byte of binary output is six bytes as JSON (``\\ufffd``), and an image record whose data was
omitted is a frame the output cap never sees, so a loop of them made frames without end. Here
every frame a run causes is charged by its size as sent plus ``FRAME_OVERHEAD_BYTES`` (what
keeping one costs beyond its text), of any type, omitted or not. The data of an image or file
is the one thing not charged: ``rich_output_bytes`` counts it already (and omits past it).

Frames that end or frame the run (``queued``, ``started``, ``exit``, ``error``) are always kept;
the others are refused once the budget is spent, and the run is stopped (``output_limit``).
Pure: no I/O, unit-tested on its own.
"""

from __future__ import annotations

from typing import Any

FRAME_OVERHEAD_BYTES = 128
"""A kept frame's cost beyond its text: its entry, the string's header, the list's slot."""
ALWAYS_KEPT = frozenset({"queued", "started", "exit", "error"})
RICH_KINDS = frozenset({"image", "file"})


class FrameBudget:
    """``keep(frame, text)`` for each frame in order; False: drop it, the budget is spent."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.spent = 0
        self.frames = 0
        self.exhausted = False

    def cost(self, frame: dict[str, Any], text: str) -> int:
        size = len(text.encode("utf-8", "surrogatepass")) if not text.isascii() else len(text)
        data = frame.get("data") if frame.get("type") in RICH_KINDS else None
        if isinstance(data, str):
            size -= len(data)  # base64, ASCII: counted by rich_output_bytes instead
        return size + FRAME_OVERHEAD_BYTES

    def keep(self, frame: dict[str, Any], text: str) -> bool:
        """Charge the frame; True to keep it. Past the limit every frame but the run's framing
        ones is refused, and ``exhausted`` says the run must end."""
        cost = self.cost(frame, text)
        if frame.get("type") in ALWAYS_KEPT:
            self.spent += cost
            self.frames += 1
            return True
        if self.exhausted or self.spent + cost > self.limit_bytes:
            self.exhausted = True
            return False
        self.spent += cost
        self.frames += 1
        return True
