"""What a run reports, as plain data: the sandbox core yields these, the transports frame them."""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass
from typing import Any, Literal

from app.core.streams import Stream

Reason = Literal["exit", "timeout", "oom", "output_limit", "killed"]

REASON_SENTENCES: dict[str, str] = {
    "timeout": "Execution timed out after {timeout_s:g} seconds.",
    "oom": "The program ran out of memory ({memory_mb:d} MB limit) and was killed.",
    "output_limit": "The program wrote more than {output_bytes} bytes of output and was killed.",
    "killed": "The program was stopped by the client.",
}


@dataclass(frozen=True)
class RunLimits:
    """The effective limits of one run, as sent in ``started``."""

    timeout_s: float
    memory_mb: int
    output_bytes: int
    pids: int

    def to_dict(self) -> dict[str, Any]:
        timeout: float | int = int(self.timeout_s) if float(self.timeout_s).is_integer() else self.timeout_s
        return {
            "timeout_s": timeout,
            "memory_mb": self.memory_mb,
            "output_bytes": self.output_bytes,
            "pids": self.pids,
        }


@dataclass(frozen=True)
class Started:
    id: str
    limits: RunLimits

    def to_frame(self) -> dict[str, Any]:
        return {"type": "started", "id": self.id, "limits": self.limits.to_dict()}


@dataclass(frozen=True)
class Output:
    stream: Stream
    data: str

    def to_frame(self) -> dict[str, Any]:
        return {"type": self.stream, "data": self.data}


@dataclass(frozen=True)
class Exit:
    reason: Reason
    exit_code: int | None
    signal: str | None
    duration_ms: int
    stdout_bytes: int
    stderr_bytes: int
    truncated: bool

    def to_frame(self) -> dict[str, Any]:
        return {
            "type": "exit",
            "reason": self.reason,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "duration_ms": self.duration_ms,
            "stdout_bytes": self.stdout_bytes,
            "stderr_bytes": self.stderr_bytes,
            "truncated": self.truncated,
        }

    def sentence(self, limits: RunLimits) -> str | None:
        """A sentence for people when the program did not end by itself (HTTP's ``error``)."""
        template = REASON_SENTENCES.get(self.reason)
        if template is None:
            return None
        return template.format(**limits.to_dict())


Event = Started | Output | Exit


def signal_name(exit_code: int) -> str | None:
    """``SIGSEGV`` for 139: the init process reports a child killed by signal N as 128+N."""
    if 128 < exit_code < 128 + 65:
        try:
            return _signal.Signals(exit_code - 128).name
        except ValueError:
            return None
    return None
