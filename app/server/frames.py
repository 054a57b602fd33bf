"""The one place where what a run reports (``app.core.events``) becomes what the protocol sends.

The core stays plain data; every frame and the ``POST /run`` answer are built here as the
``app.protocol`` models, which validate them on the way out. So a frame cannot carry a field the
published schema does not declare, nor miss one it requires: the schema, the client's reading
and the server's writing are one definition. Each frame is serialised once, by its caller.
"""

from __future__ import annotations

import base64
from typing import Literal

from app.core.events import Event, Exit, Input, Output, Result, RunException, RunLimits, Started, Stats
from app.core.rich import FileOut, Image
from app.errors import SCEError
from app.protocol import (
    AnswerFile,
    AnswerImage,
    ErrorFrame,
    ExceptionInfo,
    ExitFrame,
    FileFrame,
    ImageFrame,
    InputFrame,
    Limits,
    QueuedFrame,
    ResultFrame,
    RunAnswer,
    StartedFrame,
    StatsFrame,
    StderrFrame,
    StdoutFrame,
)

SequencedFrame = (
    StdoutFrame | StderrFrame | ImageFrame | FileFrame | StatsFrame | InputFrame | ResultFrame | ExitFrame | ErrorFrame
)


def limits(value: RunLimits) -> Limits:
    return Limits(
        timeout_s=value.timeout_s, memory_mb=value.memory_mb, output_bytes=value.output_bytes, pids=value.pids
    )


def started(event: Started, *, token: str | None, watch_token: str | None) -> StartedFrame:
    """The driver's copy carries both secrets; a watcher's has ``token=None`` (left out)."""
    return StartedFrame(id=event.id, limits=limits(event.limits), token=token, watch_token=watch_token)


def queued(position: int) -> QueuedFrame:
    return QueuedFrame(position=position)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _omitted(data: bytes | None) -> Literal["too_large"] | None:
    """Bytes left out are left out for one reason the protocol names: they were too large."""
    return None if data is not None else "too_large"


def _text(value: str) -> str:
    """Text as the program has it: a lone surrogate (JSON allows ``"\\ud800"``; a program's own
    strings may hold one) is bytes that are not UTF-8, which the protocol shows as U+FFFD, as in
    output. JSON text cannot carry it otherwise."""
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _exception(value: RunException | None) -> ExceptionInfo | None:
    if value is None:
        return None
    return ExceptionInfo(name=_text(value.name), value=_text(value.value), line=value.line)


def exit_frame(event: Exit, seq: int | None) -> ExitFrame:
    return ExitFrame(
        reason=event.reason,
        exit_code=event.exit_code,
        signal=event.signal,
        duration_ms=event.duration_ms,
        stdout_bytes=event.stdout_bytes,
        stderr_bytes=event.stderr_bytes,
        truncated=event.truncated,
        cpu_ms=event.cpu_ms,
        memory_peak_bytes=event.memory_peak_bytes,
        files_truncated=True if event.files_truncated else None,  # sent only when files were cut
        exception=_exception(event.exception),
        session_alive=event.session_alive,
        seq=seq,
    )


def sequenced(event: Event, seq: int) -> SequencedFrame:
    """Every event after ``started``, as the frame that carries it with its ``seq``."""
    if isinstance(event, Output):
        return (StdoutFrame if event.stream == "stdout" else StderrFrame)(data=event.data, seq=seq)
    if isinstance(event, Image):
        return ImageFrame(
            mime=event.mime,  # the rich policy lets only the protocol's two through
            data=_b64(event.data),
            width=event.width,
            height=event.height,
            omitted=_omitted(event.data),
            seq=seq,
        )
    if isinstance(event, FileOut):
        return FileFrame(
            path=event.path,
            size=event.size,
            mime=event.mime,
            data=_b64(event.data),
            omitted=_omitted(event.data),
            seq=seq,
        )
    if isinstance(event, Stats):
        return StatsFrame(
            memory_bytes=event.memory_bytes,
            memory_limit_bytes=event.memory_limit_bytes,
            cpu_ms=event.cpu_ms,
            pids=event.pids,
            seq=seq,
        )
    if isinstance(event, Input):
        return InputFrame(data=_text(event.data), eof=event.eof, seq=seq)
    if isinstance(event, Result):
        return ResultFrame(text=_text(event.text), seq=seq)
    if isinstance(event, Exit):
        return exit_frame(event, seq)
    raise TypeError(f"no frame for {type(event).__name__} after started")


def error_frame(error: SCEError, seq: int | None = None) -> ErrorFrame:
    return ErrorFrame(code=error.code, message=error.message, seq=seq)


def answer_image(frame: ImageFrame) -> AnswerImage:
    return AnswerImage(mime=frame.mime, data=frame.data, width=frame.width, height=frame.height, omitted=frame.omitted)


def answer_file(frame: FileFrame) -> AnswerFile:
    return AnswerFile(path=frame.path, size=frame.size, mime=frame.mime, data=frame.data, omitted=frame.omitted)


def run_answer(
    exit_: Exit,
    run_limits: RunLimits,
    *,
    output: str,
    stdout: str,
    stderr: str,
    images: list[AnswerImage],
    files: list[AnswerFile],
    result: str | None,
) -> RunAnswer:
    """``POST /run``'s 200 answer: the ``exit`` frame's fields, the output gathered, the sentence."""
    return RunAnswer(
        output=output,
        stdout=stdout,
        stderr=stderr,
        exit_code=exit_.exit_code,
        signal=exit_.signal,
        reason=exit_.reason,
        duration_ms=exit_.duration_ms,
        truncated=exit_.truncated,
        error=exit_.sentence(run_limits),
        images=images,
        files=files,
        cpu_ms=exit_.cpu_ms,
        memory_peak_bytes=exit_.memory_peak_bytes,
        files_truncated=True if exit_.files_truncated else None,
        exception=_exception(exit_.exception),
        result=result,
        session_alive=exit_.session_alive,
    )
