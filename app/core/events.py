"""What a run reports, as plain data: the sandbox core yields these, the transports frame them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.core.exits import Reason
from app.core.rich import FileOut, Image
from app.core.streams import Stream

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
class Stats:
    """The sandbox's resources so far, about twice a second for a run that asked (v2)."""

    memory_bytes: int
    memory_limit_bytes: int
    cpu_ms: int
    pids: int

    def to_frame(self) -> dict[str, Any]:
        return {
            "type": "stats",
            "memory_bytes": self.memory_bytes,
            "memory_limit_bytes": self.memory_limit_bytes,
            "cpu_ms": self.cpu_ms,
            "pids": self.pids,
        }


@dataclass(frozen=True)
class Input:
    """Standard input the server accepted for the run, echoed to everyone following it (v3)."""

    data: str
    eof: bool

    def to_frame(self) -> dict[str, Any]:
        return {"type": "input", "data": self.data, "eof": self.eof}


@dataclass(frozen=True)
class Result:
    """In a session, the ``repr`` of the run's last expression when it is not ``None`` (v3)."""

    text: str

    def to_frame(self) -> dict[str, Any]:
        return {"type": "result", "text": self.text}


@dataclass(frozen=True)
class RunException:
    """The uncaught exception a program ended by (v3): type name, message, line in its own code."""

    name: str
    value: str
    line: int | None


@dataclass(frozen=True)
class Exit:
    reason: Reason
    exit_code: int | None
    signal: str | None
    duration_ms: int
    stdout_bytes: int
    stderr_bytes: int
    truncated: bool
    cpu_ms: int | None = None
    memory_peak_bytes: int | None = None
    files_truncated: bool = False
    exception: RunException | None = None  # v3: only when it ended by an uncaught exception
    session_alive: bool | None = None  # v3: only on a run in a session

    def to_frame(self) -> dict[str, Any]:
        return (
            {
                "type": "exit",
                "reason": self.reason,
                "exit_code": self.exit_code,
                "signal": self.signal,
                "duration_ms": self.duration_ms,
                "stdout_bytes": self.stdout_bytes,
                "stderr_bytes": self.stderr_bytes,
                "truncated": self.truncated,
                "cpu_ms": self.cpu_ms,
                "memory_peak_bytes": self.memory_peak_bytes,
            }
            | ({"files_truncated": True} if self.files_truncated else {})
            | self._v3_fields()
        )

    def _v3_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.exception is not None:
            e = self.exception
            fields["exception"] = {"name": e.name, "value": e.value, "line": e.line}
        if self.session_alive is not None:
            fields["session_alive"] = self.session_alive
        return fields

    def sentence(self, limits: RunLimits) -> str | None:
        """A sentence for people when the program did not end by itself (HTTP's ``error``)."""
        template = REASON_SENTENCES.get(self.reason)
        if template is None:
            return None
        return template.format(**limits.to_dict())


Event = Started | Output | Image | FileOut | Stats | Input | Result | Exit
