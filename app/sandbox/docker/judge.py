"""How a Docker sandbox ended, as an ``ExitObservation``: a pure judgement, unit-tested.

Docker reports a status code and an ``OOMKilled`` flag. The flag alone is not enough: gVisor's is
sometimes never set (several OOMs at once) or set late, and gVisor's own kernel (the sentry) can
die of the memory limit with a Go runtime fatal error (exit 2) before the OOM killer chooses it.
The parent cgroup's record (``parent_oom``) settles those cases; a 137 we caused (``killed``) is
never asked about.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.exits import SIGKILL_STATUS, ExitObservation

RUNSC_SENTRY_DIED = 2  # the exit status of a gVisor sandbox whose own kernel (the sentry) failed


@dataclass(frozen=True)
class Judgement:
    observation: ExitObservation
    # a SIGKILL we did not send and no evidence of an OOM yet: the engine's flag can trail the exit
    # (gVisor's often does), so it is looked at a few more times before the 137 is the program's own
    ask_flag_again: bool = False


def judge_exit(code: int, oom_flag: bool, *, killed: bool, runsc: bool, parent_oom: bool | None) -> Judgement:
    """``parent_oom``: whether the parent cgroup says the sandbox died at its memory limit (None:
    no parent cgroup to ask)."""
    if killed:
        return Judgement(ExitObservation(code, oom_killed=oom_flag))
    if code == SIGKILL_STATUS:
        if oom_flag or parent_oom:
            return Judgement(ExitObservation(code, oom_killed=True))
        return Judgement(ExitObservation(code), ask_flag_again=True)
    if code == RUNSC_SENTRY_DIED and runsc and parent_oom:
        return Judgement(ExitObservation(SIGKILL_STATUS, oom_killed=True))
    return Judgement(ExitObservation(code, oom_killed=oom_flag))
