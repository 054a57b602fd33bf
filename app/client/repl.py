"""``sce repl [--runtime R]``: a Python prompt whose code runs in a session on the server.

It feels like the local REPL: ``>>>`` and ``...`` continuation decided by ``codeop`` as the
local one decides it, a final expression's value printed (the session's ``result``), tracebacks
on stderr, readline editing and history (kept in ``~/.sce_repl_history``). Ctrl+C at the prompt
drops the line; while code runs it interrupts that code (the session lives on when it stops);
Ctrl+D leaves and ends the session. If the session ends by itself (out of memory, a program that
ignored the interrupt, its idle timeout), that is said and a new one is made.

The prompt is read on the main thread (readline needs it, and Ctrl+C arrives there); the session
lives on an event loop in a thread of its own, so a run can be killed while it is awaited.
"""

from __future__ import annotations

import asyncio
import codeop
import contextlib
import os
import sys
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from app.client.aio import AsyncClient, AsyncRun
from app.client.errors import ConnectionLost, RunNotFound, ServerError
from app.client.result import Execution
from app.client.session import AsyncSession

T = TypeVar("T")

PS1, PS2 = ">>> ", "... "
HISTORY = Path(os.environ.get("SCE_REPL_HISTORY", "~/.sce_repl_history")).expanduser()
HISTORY_LINES = 1000


def say(message: str) -> None:
    print(f"sce: {message}", file=sys.stderr, flush=True)


def _write(stream: Any) -> Any:
    def write(data: str) -> None:
        stream.write(data)
        stream.flush()

    return write


class Repl:
    def __init__(self, client: AsyncClient, runtime: str | None) -> None:
        self.client = client
        self.runtime = runtime
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sce-repl-loop", daemon=True)
        self.session: AsyncSession | None = None

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.submit(coro).result()

    def open_session(self) -> AsyncSession:
        session = self.client.session(runtime=self.runtime)
        self.call(session.open())
        self.session = session
        return session

    def run(self, source: str) -> None:
        """One entry: output as it arrives, Ctrl+C kills it; then its value, or what ended it."""
        session = self.session or self.open_session()
        runs: list[AsyncRun] = []
        interrupted = threading.Event()  # Ctrl+C before the run had started: it is killed once it has

        async def execute() -> Execution:
            run = session.run(source, filename="<stdin>", on_stdout=_write(sys.stdout), on_stderr=_write(sys.stderr))
            runs.append(run)
            async with run:
                await run.stdin("", eof=True)  # the prompt is not the program's stdin
                if interrupted.is_set():
                    await run.kill()
                return await run.wait()

        future = self.submit(execute())
        while True:
            try:
                execution = future.result()
                break
            except KeyboardInterrupt:
                interrupted.set()
                if runs:
                    self.submit(runs[0].kill())  # the program gets a KeyboardInterrupt; we wait for its end
        if execution.reason == "killed" and not execution.stderr.rstrip().endswith("KeyboardInterrupt"):
            print("KeyboardInterrupt", file=sys.stderr, flush=True)  # (its traceback says it, when it ran)
        elif execution.reason in ("timeout", "output_limit", "oom"):
            say({"timeout": "timed out", "output_limit": "too much output", "oom": "out of memory"}[execution.reason])
        if execution.result is not None:
            print(execution.result, flush=True)
        if execution.session_alive is False:
            say("the session has ended (its state is gone); the next line starts a new one")
            self.session = None

    def close(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.call(self.session.close())
        with contextlib.suppress(Exception):
            self.call(self.client.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _history() -> None:
    try:
        import readline
    except ImportError:
        return
    readline.set_history_length(HISTORY_LINES)
    with contextlib.suppress(OSError):
        readline.read_history_file(HISTORY)

    def save() -> None:
        with contextlib.suppress(OSError):
            readline.write_history_file(HISTORY)

    import atexit

    atexit.register(save)


def needs_more(source: str) -> bool:
    """As the local REPL: True while ``source`` is an unfinished statement (a syntax error is not)."""
    try:
        return codeop.compile_command(source, "<stdin>", "single") is None
    except (SyntaxError, OverflowError, ValueError):
        return False  # the server's interpreter says what is wrong, in its own words


def main(client: AsyncClient, runtime: str | None) -> int:
    """The prompt, until Ctrl+D. A refusal to make the session is raised (``ServerError``)."""
    repl = Repl(client, runtime)
    repl.thread.start()
    try:
        session = repl.open_session()
        limits = session.limits
        idle = f", ended after {limits.idle_timeout_s:g} s idle" if limits else ""
        say(f"session {session.id} ({session.runtime}) on {client.base_url}{idle}; Ctrl+D leaves")
        _history()
        lines: list[str] = []
        while True:
            try:
                line = input(PS2 if lines else PS1)
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:
                print("\nKeyboardInterrupt", file=sys.stderr, flush=True)
                lines = []
                continue
            lines.append(line)
            source = "\n".join(lines)
            if needs_more(source):
                continue
            lines = []
            if source.strip():
                try:
                    repl.run(source)
                except RunNotFound:  # it ended while the prompt waited (its idle timeout)
                    say("the session had ended (its state is gone); a new one runs this line")
                    repl.session = None
                    repl.run(source)
                except (ServerError, ConnectionLost) as exc:  # busy, unavailable, the server gone: say, go on
                    say(str(exc))
                except KeyboardInterrupt:  # between the prompt and the run: nothing ran
                    print("KeyboardInterrupt", file=sys.stderr, flush=True)
    finally:
        repl.close()
