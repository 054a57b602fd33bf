"""What a run reports, as plain data: the sandbox core yields these, the transports frame them.

The mapping to the protocol's frames is in one place, ``app.server.frames``; nothing here knows
the wire.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.exits import Reason
from app.core.rich import FileOut, Image
from app.core.streams import Stream


def _seconds(value: float) -> str:
    """``1 second``, ``10 seconds``, ``0.5 seconds``: a limit as people read it."""
    return f"{value:g} second" + ("" if value == 1 else "s")


@dataclass(frozen=True)
class RunLimits:
    """The effective limits of one run, as sent in ``started``."""

    timeout_s: float
    memory_mb: int
    output_bytes: int
    pids: int


@dataclass(frozen=True)
class Started:
    id: str
    limits: RunLimits


@dataclass(frozen=True)
class Output:
    stream: Stream
    data: str


@dataclass(frozen=True)
class Stats:
    """The sandbox's resources so far, about twice a second for a run that asked (v2)."""

    memory_bytes: int
    memory_limit_bytes: int
    cpu_ms: int
    pids: int


@dataclass(frozen=True)
class Input:
    """Standard input the server accepted for the run, echoed to everyone following it (v3)."""

    data: str
    eof: bool


@dataclass(frozen=True)
class Result:
    """In a session, the ``repr`` of the run's last expression when it is not ``None`` (v3)."""

    text: str


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

    def sentence(self, limits: RunLimits) -> str | None:
        """A sentence for people when the program did not end by itself (HTTP's ``error``)."""
        if self.reason == "timeout":
            return f"Execution timed out after {_seconds(limits.timeout_s)}."
        if self.reason == "oom":
            return f"The program ran out of memory ({limits.memory_mb:d} MB limit) and was killed."
        if self.reason == "output_limit":
            return f"The program wrote more than {limits.output_bytes} bytes of output and was killed."
        if self.reason == "killed":
            return "The program was stopped by the client."
        return None


Event = Started | Output | Image | FileOut | Stats | Input | Result | Exit
