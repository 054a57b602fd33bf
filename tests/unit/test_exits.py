"""Exit classification: the protocol's reason, code and signal from what the engine observed."""

from __future__ import annotations

import pytest

from app.core.exits import ExitObservation, ExitVerdict, classify_exit


@pytest.mark.parametrize(
    ("observed", "stop", "expected"),
    [
        (ExitObservation(0), None, ExitVerdict("exit", 0, None)),
        (ExitObservation(3), None, ExitVerdict("exit", 3, None)),
        (ExitObservation(139), None, ExitVerdict("exit", 139, "SIGSEGV")),
        (ExitObservation(137), None, ExitVerdict("exit", 137, "SIGKILL")),  # the program's own os._exit(137)
        (ExitObservation(137, oom_killed=True), None, ExitVerdict("oom", None, None)),
        (ExitObservation(137, oom_killed=True), "timeout", ExitVerdict("oom", None, None)),  # the cause wins
        (ExitObservation(137, oom_killed=True), "killed", ExitVerdict("killed", None, None)),
        (ExitObservation(0, oom_killed=True), None, ExitVerdict("exit", 0, None)),  # a child was OOM-killed
        (ExitObservation(137), "timeout", ExitVerdict("timeout", None, None)),
        (ExitObservation(137), "output_limit", ExitVerdict("output_limit", None, None)),
        (ExitObservation(255), None, ExitVerdict("exit", 255, None)),
    ],
)
def test_classification(observed: ExitObservation, stop: str | None, expected: ExitVerdict) -> None:
    assert classify_exit(observed, stop) == expected  # type: ignore[arg-type]
