"""How a run ended, decided from what the engine observed: a pure function, no engine here.

Every engine reports an exit in its own words (Docker: a status code and an ``OOMKilled`` flag;
another engine may know the cgroup's OOM counter instead). The backend turns that into an
``ExitObservation``; ``classify_exit`` applies the protocol's rules once, for all of them.
"""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass
from typing import Literal

Reason = Literal["exit", "timeout", "oom", "output_limit", "killed"]

SIGKILL_STATUS = 128 + 9


@dataclass(frozen=True)
class ExitObservation:
    """What the engine saw when the sandbox ended (``code`` None: killed by us, not yet confirmed)."""

    code: int | None
    oom_killed: bool = False


@dataclass(frozen=True)
class ExitVerdict:
    reason: Reason
    exit_code: int | None
    signal: str | None


def signal_name(exit_code: int) -> str | None:
    """``SIGSEGV`` for 139: the init process reports a child killed by signal N as 128+N."""
    if 128 < exit_code < 128 + 65:
        try:
            return _signal.Signals(exit_code - 128).name
        except ValueError:
            return None
    return None


def classify_exit(observed: ExitObservation, stop_reason: Reason | None) -> ExitVerdict:
    """The protocol's ``reason``/``exit_code``/``signal`` for one ended run.

    ``stop_reason`` is why the server stopped it (timeout, kill, output cap), or None when the
    program ended by itself. A SIGKILL the memory limit caused is ``oom`` even when the timeout
    fired at the same moment; a program's own ``os._exit(137)`` is not (the flag is unset).
    """
    reason: Reason = stop_reason or "exit"
    if observed.oom_killed and observed.code == SIGKILL_STATUS and reason in ("exit", "timeout"):
        reason = "oom"
    if reason != "exit" or observed.code is None:
        return ExitVerdict(reason, None, None)
    return ExitVerdict("exit", observed.code, signal_name(observed.code))
