"""A run gathered into one value (``Execution``), and the callbacks that see it as it happens.

Frames come in as the protocol's models; ``Collector.feed`` adds each to the ``Execution`` (text
joined, images and files decoded to bytes) and calls the matching callback. The same collector
serves every kind of run, so a session's run reads the same as any other.
"""

from __future__ import annotations

import inspect
from base64 import b64decode
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from app.protocol import (
    ExceptionInfo,
    ExitFrame,
    FileFrame,
    ImageFrame,
    InputFrame,
    ResultFrame,
    ServerFrame,
    StartedFrame,
    StderrFrame,
    StdoutFrame,
)

_EXTENSIONS = {"image/png": "png", "image/svg+xml": "svg"}


@dataclass(frozen=True)
class Image:
    """A picture the program showed. ``data`` is None when the server left it out (``omitted``)."""

    name: str  # "image-1.png", "image-2.svg", ...: numbered in the order shown
    mime: str
    data: bytes | None
    width: int | None = None
    height: int | None = None
    omitted: str | None = None


@dataclass(frozen=True)
class File:
    """A file the program wrote. ``data`` is None when the server left it out (``omitted``)."""

    name: str  # its path in the program's working directory, e.g. "out/report.csv"
    mime: str
    size: int
    data: bytes | None
    omitted: str | None = None


@dataclass
class Execution:
    """Everything a run produced, once it is over (or as far as it got).

    ``output`` is stdout and stderr interleaved as they were read; ``input`` what reached the
    program's stdin (protocol v3 servers echo it). ``exception`` is the uncaught exception the
    program ended by (v3), ``result`` the value of a session run's last expression (v3).
    """

    id: str | None = None
    stdout: str = ""
    stderr: str = ""
    output: str = ""
    input: str = ""
    images: list[Image] = field(default_factory=list)
    files: list[File] = field(default_factory=list)
    result: str | None = None
    exception: ExceptionInfo | None = None
    exit: ExitFrame | None = None

    @property
    def reason(self) -> str | None:
        """``exit``, ``timeout``, ``oom``, ``output_limit`` or ``killed``; None before the end."""
        return self.exit.reason if self.exit else None

    @property
    def exit_code(self) -> int | None:
        return self.exit.exit_code if self.exit else None

    @property
    def signal(self) -> str | None:
        return self.exit.signal if self.exit else None

    @property
    def duration_ms(self) -> int | None:
        return self.exit.duration_ms if self.exit else None

    @property
    def truncated(self) -> bool:
        return bool(self.exit and self.exit.truncated)

    @property
    def session_alive(self) -> bool | None:
        """For a run in a session: False once the session is gone (v3); None for other runs."""
        return self.exit.session_alive if self.exit else None

    @property
    def ok(self) -> bool:
        """True when the program ended by itself with status 0."""
        return self.reason == "exit" and self.exit_code == 0

    @property
    def error(self) -> str | None:
        """A sentence for people when the run did not end well, else None."""
        if self.exit is None:
            return "the run did not finish"
        if self.ok:
            return None
        if self.exception is not None:
            return f"{self.exception.name}: {self.exception.value}"
        return {
            "exit": f"the program exited with status {self.exit_code}" + (f" ({self.signal})" if self.signal else ""),
            "timeout": "the program ran past its time limit",
            "oom": "the program ran out of memory",
            "output_limit": "the program wrote more output than allowed",
            "killed": "the program was stopped",
        }.get(self.exit.reason, self.exit.reason)


Callback = Callable[[Any], Awaitable[None] | None]


@dataclass(frozen=True)
class Callbacks:
    """Called as things arrive: text as ``str``, images as ``Image``, files as ``File``.

    A callback may be a plain function or (with the async client) a coroutine function. It runs
    on the client's event loop: keep it short. An exception in it ends the run and is raised.
    """

    on_stdout: Callback | None = None
    on_stderr: Callback | None = None
    on_image: Callback | None = None
    on_file: Callback | None = None
    on_input: Callback | None = None  # what reached stdin (v3 servers)
    on_result: Callback | None = None  # a session run's last value, as its repr (v3)
    on_exit: Callback | None = None  # the finished Execution


class Collector:
    """Feeds frames into one ``Execution`` and calls the callbacks."""

    def __init__(self, callbacks: Callbacks | None = None) -> None:
        self.execution = Execution()
        self.callbacks = callbacks or Callbacks()

    async def feed(self, frame: ServerFrame) -> None:
        ex, cb = self.execution, self.callbacks
        if isinstance(frame, StartedFrame):
            ex.id = frame.id
        elif isinstance(frame, StdoutFrame | StderrFrame):
            if isinstance(frame, StdoutFrame):
                ex.stdout += frame.data
            else:
                ex.stderr += frame.data
            ex.output += frame.data
            await _call(cb.on_stdout if isinstance(frame, StdoutFrame) else cb.on_stderr, frame.data)
        elif isinstance(frame, ImageFrame):
            name = f"image-{len(ex.images) + 1}.{_EXTENSIONS.get(frame.mime, 'bin')}"
            image = Image(name, frame.mime, _bytes(frame.data), frame.width, frame.height, frame.omitted)
            ex.images.append(image)
            await _call(cb.on_image, image)
        elif isinstance(frame, FileFrame):
            file = File(frame.path, frame.mime, frame.size, _bytes(frame.data), frame.omitted)
            ex.files.append(file)
            await _call(cb.on_file, file)
        elif isinstance(frame, InputFrame):
            ex.input += frame.data
            await _call(cb.on_input, frame.data)
        elif isinstance(frame, ResultFrame):
            ex.result = frame.text
            await _call(cb.on_result, frame.text)
        elif isinstance(frame, ExitFrame):
            ex.exit = frame
            ex.exception = frame.exception
            await _call(cb.on_exit, ex)


def _bytes(data: str | None) -> bytes | None:
    return None if data is None else b64decode(data)


async def _call(callback: Callback | None, value: Any) -> None:
    if callback is None:
        return
    outcome = callback(value)
    if inspect.isawaitable(outcome):
        await outcome
