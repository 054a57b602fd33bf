"""``sce run`` and ``sce watch``: a program on the server, felt as if it ran in this terminal
(``sce repl``, a prompt on a session, is app/client/repl.py).

The program's stdout and stderr go to the terminal's own stdout and stderr as they arrive; what
is typed is forwarded to its stdin (Ctrl+D closes it); Ctrl+C stops it (a second Ctrl+C leaves
at once). The exit status is the program's own, or, for a run that did not end by itself, what
a shell would show:

    status   the run
    N        ended by itself with status N (128+N when it died of signal N, e.g. 139 for SIGSEGV)
    124      ran past its time limit (as coreutils' ``timeout``)
    137      went past its memory limit (killed, as 128+SIGKILL)
    141      wrote more than its output limit and was cut off (as a writer whose reader went away);
             also when this command's own output is a pipe whose reader left (``| head``)
    130      was stopped: Ctrl+C here, or ``kill`` from its driver (as 128+SIGINT)
    2        the command line is wrong, or a file cannot be read
    65       the server refused the request (``bad_message``, ``code_too_large``, ``message_too_large``)
    69       no server, busy, unavailable, the run was not found, or the connection was lost
    70       the server failed (``internal``)
    77       not allowed (``unauthorized``, ``forbidden``)

For anything but a plain exit, the reason is said in words on stderr, prefixed ``sce:``.

Otherwise stderr is the program's own: the run's id is said only when asked, by ``--share``
(``sce: watch this run: LINK``, a link that opens in a browser and that ``sce watch`` takes) or
``-v`` (``sce: run ID started``). ``sce watch`` shows what the driver typed where it was typed
(protocol v3 servers echo input); ``sce run`` leaves that to the terminal, as a local program does.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import os
import signal
import sys
import threading
from base64 import b64decode
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from app.client.aio import AsyncClient, AsyncRun
from app.client.errors import ClientError, ConnectionLost, InvalidRequest, ServerError
from app.client.requests import parse_watch_link, watch_link
from app.mcp import cli as mcp_cli
from app.protocol import (
    ExitFrame,
    FileFrame,
    ImageFrame,
    InputFrame,
    Limits,
    ServerFrame,
    StartedFrame,
    StderrFrame,
    StdoutFrame,
)
from app.protocol.files import filename_problem, path_problem

EXIT_USAGE = 2
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130
EXIT_OOM = 137
EXIT_OUTPUT_LIMIT = 141
EXIT_REFUSED = 65
EXIT_UNAVAILABLE = 69
EXIT_SERVER_FAILED = 70
EXIT_NOT_ALLOWED = 77

REASON_STATUS = {
    "timeout": EXIT_TIMEOUT,
    "oom": EXIT_OOM,
    "output_limit": EXIT_OUTPUT_LIMIT,
    "killed": EXIT_INTERRUPTED,
}
ERROR_STATUS = {
    "bad_message": EXIT_REFUSED,
    "code_too_large": EXIT_REFUSED,
    "message_too_large": EXIT_REFUSED,
    "unsupported_media_type": EXIT_REFUSED,
    "internal": EXIT_SERVER_FAILED,
    "unauthorized": EXIT_NOT_ALLOWED,
    "forbidden": EXIT_NOT_ALLOWED,
}


def add_parsers(sub: Any) -> None:
    """The ``run`` and ``watch`` subcommands, on ``python -m app``'s subparsers."""
    run = sub.add_parser("run", help="run a program on a server, in this terminal")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", metavar="FILE.py", help="the program ('-': read it from stdin)")
    source.add_argument("-c", dest="code", metavar="CODE", help="the program, as text")
    run.add_argument("--runtime", help="a runtime's name (GET /runtimes); default: the server's default")
    run.add_argument("--timeout", type=float, metavar="SECONDS", help="wall-clock limit (clamped by the server)")
    run.add_argument(
        "--file",
        dest="files",
        action="append",
        default=[],
        metavar="PATH",
        help="send this file into the program's directory (repeatable); a plain relative PATH keeps its folders",
    )
    run.add_argument("--out", type=Path, metavar="DIR", help="write the files and images the program made here")
    run.add_argument(
        "--share", action="store_true", help="say a link that watches this run live (stderr), when it starts"
    )
    run.add_argument("-v", "--verbose", action="store_true", help="say the run's id (stderr) when it starts")
    _common(run)
    watch = sub.add_parser(
        "watch",
        help="follow another run's output (read-only)",
        description="Follow a run: give its watch link (from `sce run --share` or the editor's Watch link), "
        "or its id and watch token.",
    )
    watch.add_argument("link", metavar="LINK|ID", help="a watch link (http://HOST/ui#watch=...), or the run's id")
    watch.add_argument("watch_token", nargs="?", metavar="TOKEN", help="with an id: its watch_token (or token)")
    watch.add_argument("--out", type=Path, metavar="DIR", help="write the files and images the program made here")
    _common(watch, url_from_link=True)
    repl = sub.add_parser("repl", help="a Python prompt on a session: names live on between lines (Ctrl+D leaves)")
    repl.add_argument("--runtime", help="a runtime's name (GET /runtimes); default: the server's default")
    _common(repl)
    mcp_cli.add_parser(sub)  # sce mcp: the MCP tools over stdio (app/mcp)


DEFAULT_URL = "http://127.0.0.1:5000"


def _common(parser: argparse.ArgumentParser, *, url_from_link: bool = False) -> None:
    more = "; with a watch link, the link's server" if url_from_link else ""
    parser.add_argument("--url", help=f"the server's base URL (default: {DEFAULT_URL}{more})")
    parser.add_argument("--token", help="API token, where the server wants one")


def say(message: str) -> None:
    print(f"sce: {message}", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    """``sce run`` / ``sce watch``; returns the exit status."""
    if args.command == "mcp":
        return mcp_cli.main(args)
    try:  # the command line: a URL that is not the server's, a link that is not a watch link
        if args.command == "watch":
            url, run_id, watch_token = _watch_target(args)
        client = AsyncClient(url if args.command == "watch" else args.url or DEFAULT_URL, args.token)
    except InvalidRequest as exc:
        say(str(exc))
        return EXIT_USAGE
    try:
        if args.command == "repl":
            from app.client import repl

            return repl.main(client, args.runtime)
        if args.command == "watch":
            watched = client.watch(run_id, watch_token, on_notice=say)
            return asyncio.run(_follow(watched, Output(args.out, echo_input=True), forward_stdin=False))
        code, stdin_is_program = _program(args)
        files = {name: data for name, data in (_file_in(path) for path in args.files)}
        arun = client.run(
            code,
            files=files or None,
            runtime=args.runtime,
            timeout=args.timeout,
            filename=_filename(args),
            on_notice=say,
        )
        output = Output(args.out, announce=_announcer(client.base_url, share=args.share, verbose=args.verbose))
        return asyncio.run(_follow(arun, output, forward_stdin=not stdin_is_program))
    except OSError as exc:  # a file that cannot be read or written
        say(str(exc))
        return EXIT_USAGE
    except InvalidRequest as exc:
        say(f"bad request: {exc}")
        return EXIT_REFUSED
    except ServerError as exc:
        say(str(exc))
        return ERROR_STATUS.get(exc.code, EXIT_UNAVAILABLE)
    except ClientError as exc:
        say(str(exc))
        return EXIT_UNAVAILABLE


def _watch_target(args: argparse.Namespace) -> tuple[str, str, str]:
    """(server URL, run id, token) from ``LINK`` or ``ID TOKEN``; ``--url`` wins over the link's server."""
    if args.watch_token is not None:
        return args.url or DEFAULT_URL, args.link, args.watch_token
    url, run_id, token = parse_watch_link(args.link)
    return args.url or url, run_id, token


def _filename(args: argparse.Namespace) -> str | None:
    """The name tracebacks give the program: the file's own name (none for ``-c`` and ``-``)."""
    if args.code is not None or args.file == "-":
        return None
    name = Path(args.file).name
    return name if filename_problem(name) is None else None


def _announcer(base_url: str, *, share: bool, verbose: bool) -> Callable[[StartedFrame], None]:
    def announce(started: StartedFrame) -> None:
        if share and started.watch_token:
            say(f"watch this run: {watch_link(base_url, started.id, started.watch_token)}")
        elif share:
            say(f"run {started.id} started; this server gives no watch token, so it cannot be watched")
        elif verbose:
            say(f"run {started.id} started")

    return announce


def _program(args: argparse.Namespace) -> tuple[str, bool]:
    if args.code is not None:
        return args.code, False
    if args.file == "-":
        return sys.stdin.read(), True
    return Path(args.file).read_text(encoding="utf-8"), False


def _file_in(local: str) -> tuple[str, str | bytes]:
    """A local file as sent: under its own relative path if that is a valid one, else its name."""
    data = Path(local).read_bytes()
    name = local if path_problem(local) is None else Path(local).name
    try:
        return name, data.decode("utf-8")
    except UnicodeDecodeError:
        return name, data


class Output:
    """Where frames go: the streams to this terminal, files and images to ``--out`` or a list."""

    def __init__(
        self,
        out: Path | None,
        *,
        echo_input: bool = False,
        announce: Callable[[StartedFrame], None] | None = None,
    ) -> None:
        self.out = out
        self.echo_input = echo_input  # a watcher shows what the driver typed; a driver's terminal already did
        self.announce = announce
        self.limits: Limits | None = None
        self.images = 0

    def show(self, frame: ServerFrame) -> None:
        if isinstance(frame, StdoutFrame | StderrFrame):
            stream: TextIO = sys.stdout if isinstance(frame, StdoutFrame) else sys.stderr
            stream.write(frame.data)
            stream.flush()
        elif isinstance(frame, InputFrame):
            if self.echo_input and frame.data:
                sys.stdout.write(frame.data)
                sys.stdout.flush()
        elif isinstance(frame, StartedFrame):
            self.limits = frame.limits
            if self.announce is not None:
                self.announce(frame)
        elif isinstance(frame, ImageFrame):
            self.images += 1
            ext = "svg" if frame.mime == "image/svg+xml" else "png"
            self._save(f"image-{self.images}.{ext}", frame.data, f"image {self.images} ({frame.mime})")
        elif isinstance(frame, FileFrame):
            self._save(frame.path, frame.data, f"file {frame.path} ({frame.size} bytes, {frame.mime})")

    def _save(self, path: str, data: str | None, what: str) -> None:
        if data is None:
            say(f"{what} was not sent: too large")
            return
        if self.out is None:
            say(f"{what}: use --out DIR to save it")
            return
        problem = path_problem(path)
        if problem is not None:  # a path the server should never send; never write outside --out
            say(f"{what} not saved: {problem}")
            return
        target = self.out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b64decode(data))
        say(f"wrote {target}")

    def ending(self, exit_: ExitFrame) -> int:
        """The exit status, and the reason in words for anything but a plain exit."""
        limits = self.limits
        if exit_.reason == "exit":
            if exit_.signal:
                say(f"the program died of {exit_.signal}")
            return exit_.exit_code if exit_.exit_code is not None else 1
        if exit_.reason == "timeout":
            say(f"timed out after {limits.timeout_s:g} s" if limits else "timed out")
        elif exit_.reason == "oom":
            say(f"killed: out of memory (the limit is {limits.memory_mb} MB)" if limits else "killed: out of memory")
        elif exit_.reason == "output_limit":
            say(f"killed: more than {limits.output_bytes} bytes of output" if limits else "killed: too much output")
        else:
            say("killed")
        return REASON_STATUS.get(exit_.reason, 1)


async def _follow(run: AsyncRun, output: Output, *, forward_stdin: bool) -> int:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    interrupts = 0
    kills: list[asyncio.Task[None]] = []

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1 and not run.watching:
            say("stopping the program (Ctrl+C again to leave at once)")
            kills.append(loop.create_task(run.kill()))
        else:
            main.cancel()

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    stop_stdin: Callable[[], None] = lambda: None  # noqa: E731
    try:
        async with run:
            if forward_stdin:
                stop_stdin = forward_terminal_stdin(run)
            else:
                if not run.watching:
                    await run.stdin("", eof=True)
            async for frame in run:
                output.show(frame)
    except asyncio.CancelledError:
        say("left; the server stops the program" if not run.watching else "stopped watching")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `sce run prog.py | head -1`: the reader left; so does the run, like a shell pipeline
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 128 + signal.SIGPIPE
    except ConnectionLost as exc:
        if run.exit is None:
            raise
        say(str(exc))
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        stop_stdin()
    assert run.exit is not None
    return output.ending(run.exit)


def forward_terminal_stdin(run: AsyncRun) -> Callable[[], None]:
    """Send what arrives on this process's stdin to the program, in order, EOF included.

    Read by the event loop itself where the file descriptor can be polled (a terminal, a pipe);
    otherwise (a regular file, /dev/null) by a daemon thread. Either way the loop never blocks.
    Returns a function that stops the forwarding.
    """
    loop = asyncio.get_running_loop()
    try:
        fd = sys.stdin.fileno()
    except (OSError, ValueError):
        return lambda: None
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    async def sender() -> None:
        while True:
            data = await queue.get()
            if data:
                text = decoder.decode(data)
                if text:
                    await run.stdin(text)
            else:
                await run.stdin(decoder.decode(b"", final=True), eof=True)
                return

    task = loop.create_task(sender())
    stopped = threading.Event()

    def read_ready() -> None:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        queue.put_nowait(data)
        if not data:
            loop.remove_reader(fd)

    def read_in_thread() -> None:
        while not stopped.is_set():
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            with contextlib.suppress(RuntimeError):  # the loop closed: the run is over
                loop.call_soon_threadsafe(queue.put_nowait, data)
            if not data:
                return

    try:
        loop.add_reader(fd, read_ready)
        polled = True
    except (PermissionError, ValueError, OSError):
        polled = False
        threading.Thread(target=read_in_thread, name="sce-stdin", daemon=True).start()

    def stop() -> None:
        stopped.set()
        if polled:
            loop.remove_reader(fd)
        task.cancel()

    return stop
