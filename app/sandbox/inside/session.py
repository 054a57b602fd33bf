"""A session's bootstrap: programs one after another in one namespace, as a notebook's cells.

A session's sandbox gets this module appended to ``bootstrap`` (one code object, one namespace:
``app.sandbox.bootstrap.session_preamble()`` drops the imports below, which exist for checkers
and readers), so a one-shot sandbox never receives or loads any of it. Its ``main`` prepares as a
one-shot sandbox does, then takes the real stdin as a control channel of frames
``b"<kind> <len>\\n" + payload`` (``app.sandbox.bootstrap.control_frame``): a program (as
``encode_program`` makes it, with the session's nonce), standard input for the program running
now, its end, an interrupt. Each program gets a fresh pipe as its fd 0, so its end of file does
not close the channel.

Each program runs in the session's ``__main__``: when its last statement is an expression whose
value is not None, its ``repr`` goes out as a ``result`` record; an uncaught exception prints its
traceback and sends its ``exception`` record with status 1, ``sys.exit(N)`` status N, and either
way the session goes on. An interrupt is a ``KeyboardInterrupt`` in the program (a program that
ignores SIGINT keeps running: the server ends the session after its grace). Files out are those
the program created or changed; what threads left running print between programs reaches stdout
as it is printed (the flusher keeps running), and the server hands it to the next run.
"""

import builtins
import io
import os
import sys

from app.sandbox.inside.bootstrap import (
    _PID,
    KIND_BEGIN,
    KIND_RESULT,
    MARKER,
    _Channel,
    _channel,
    _code_of,
    _end_records,
    _exit_code,
    _final_figures,
    _flushing,
    _in_record,
    _leave,
    _prepare,
    _print_exception,
    _read_exact,
    _read_header,
    _report_exception,
    _send_files,
    _setup_output,
    _Source,
    _thread_mod,
    _walk,
    _write_fd_quiet,
    _write_files,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType, ModuleType, TracebackType
    from typing import Any

# the bootstrap's own globals in the sandbox (one namespace), which the session sets; declared
# here only for the checkers (a bare annotation is dropped from what the sandbox gets)
_pull: "Callable[[int], bytes]"
_session: bool

CONTROL_PROGRAM = b"P"  # a program as encode_program makes it (header, meta, code, files)
CONTROL_STDIN = b"I"  # standard input for the program that runs now
CONTROL_EOF = b"E"  # the end of that input
CONTROL_INTERRUPT = b"K"  # a KeyboardInterrupt in the program that runs now (timeout, kill, output cap)
CONTROL_HEADER_MAX_BYTES = 32
RESULT_MAX_BYTES = 1 << 20


class _Blob:
    # the program's bytes, read as the one-shot path reads fd 0
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, n: int) -> bytes:
        chunk = self.data[self.at : self.at + n]
        self.at += len(chunk)
        return chunk


class _Control:
    # The control channel's reader, a thread of its own so that an interrupt or more input reaches
    # a program whatever it does. Each program gets a fresh pipe as its fd 0; what it has not read
    # yet waits here (non-blocking writes), so a program that reads nothing never stalls the channel.
    def __init__(self, fd: int) -> None:
        thread = _thread_mod()
        self.fd = fd
        self.main = thread.get_ident()
        self.programs: list[bytes] = []
        self.ready = thread.allocate_lock()
        self.ready.acquire()
        self.running = False
        self.writer = -1
        self.pending: list[bytes] = []
        self.eof = False

    def on_sigint(self, signum: int, frame: "Any") -> None:
        if self.running:  # between programs an interrupt that came late is nobody's
            if _in_record[0]:  # mid-record: cut, it would swallow the end records (emit raises after it)
                _in_record[1] = True
                return
            raise KeyboardInterrupt

    def new_stdin(self) -> None:
        self._close_writer()
        self.pending, self.eof = [], False
        r, w = os.pipe()
        os.dup2(r, 0)
        os.close(r)
        os.set_blocking(w, False)
        self.writer = w

    def _close_writer(self) -> None:
        if self.writer >= 0:
            os.close(self.writer)
            self.writer = -1

    def _feed(self) -> None:
        while self.pending and self.writer >= 0:
            try:
                n = os.write(self.writer, self.pending[0])
            except BlockingIOError:
                return
            except OSError:  # the program closed its stdin: what it did not read is dropped
                self.pending = []
                break
            if n < len(self.pending[0]):
                self.pending[0] = self.pending[0][n:]
                return
            self.pending.pop(0)
        if self.eof and not self.pending:
            self._close_writer()

    def _handle(self, kind: bytes, payload: bytes) -> None:
        if kind == CONTROL_PROGRAM:
            self.new_stdin()
            self.programs.append(payload)
            if self.ready.locked():
                self.ready.release()
        elif kind == CONTROL_STDIN:
            self.pending.append(payload)
            self._feed()
        elif kind == CONTROL_EOF:
            self.eof = True
            self._feed()
        elif kind == CONTROL_INTERRUPT and self.running:
            import signal

            signal.pthread_kill(self.main, signal.SIGINT)

    def loop(self) -> None:
        import select

        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        buf = bytearray()
        watching = -1
        while True:
            want = self.writer if self.pending and self.writer >= 0 else -1
            if want != watching:
                if watching >= 0:
                    try:
                        poller.unregister(watching)
                    except KeyError:
                        pass
                if want >= 0:
                    poller.register(want, select.POLLOUT)
                watching = want
            for fd, _events in poller.poll():
                if fd != self.fd:
                    self._feed()
                    continue
                data = os.read(self.fd, 1 << 16)
                if not data:
                    _leave(0)  # the server is gone, and the session with it
                buf += data
                while True:
                    end = buf.find(b"\n", 0, CONTROL_HEADER_MAX_BYTES)
                    if end < 0:
                        if len(buf) >= CONTROL_HEADER_MAX_BYTES:
                            _leave(70)  # not a frame: a bug on the server's side
                        break
                    kind, size = bytes(buf[:end]).split(b" ")
                    if len(buf) < end + 1 + int(size):
                        break
                    payload = bytes(buf[end + 1 : end + 1 + int(size)])
                    del buf[: end + 1 + int(size)]
                    self._handle(kind, payload)


def _snapshot(workdir: str) -> "dict[str, tuple[int, int, bytes | None]]":
    # what the working directory holds before a program: a file is sent after it when it is new,
    # or its size or modification time changed
    known: dict[str, tuple[int, int, bytes | None]] = {}
    for item in _walk(workdir):
        if item is None:
            break
        name, rel, dirfd = item
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except OSError:
            continue
        known[rel] = (st.st_size, st.st_mtime_ns, None)
    return known


def _session_main(workdir: str) -> None:
    global _pull
    control = _Control(os.dup(0))  # the real stdin, from now on only the control channel
    import signal

    signal.signal(signal.SIGINT, control.on_sigint)
    control.new_stdin()
    _thread_mod().start_new_thread(control.loop, ())
    module = type(sys)("__main__")
    module.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = module
    sys.path[0:0] = [workdir]
    while True:
        control.ready.acquire()
        while control.programs:
            _pull = _Blob(control.programs.pop(0)).read
            _session_run(module, workdir, control)


def _session_run(module: "ModuleType", workdir: str, control: _Control) -> None:
    # one program in the session's namespace: the last expression's repr as a result record, an
    # uncaught exception as traceback and record with status 1, sys.exit(N) as status N; the
    # files it created or changed; then the end records, and the session waits for the next
    global _channel
    code_len, meta_len, nonce, limits, filename = _read_header()
    meta = _read_exact(meta_len) if meta_len else b""
    source_bytes = _read_exact(code_len)
    known = _snapshot(workdir)
    if meta_len:
        known.update(_write_files(workdir, meta))
    _channel = _Channel(nonce, *limits)
    if not _flushing[0]:
        _setup_output()
    # the program's start on both streams, after what threads printed before it: the server hands
    # the next run only a bounded part of that, however late it arrives
    _write_fd_quiet(2, MARKER + nonce + b":" + KIND_BEGIN + b":2:0\n{}")
    _channel.emit(KIND_BEGIN, None, head=b"{}")
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))  # type: ignore[misc]
    module.__file__ = filename
    module.__loader__ = _Source(source_bytes.decode("utf-8", "replace"))  # type: ignore[assignment]
    sys.argv[:] = [filename]
    cache = getattr(sys.modules.get("linecache"), "cache", None)
    if isinstance(cache, dict):
        cache.pop(filename, None)  # the lines of this program, not of the one before under that name
    _exit_code[0] = 0
    try:
        import ast

        tree = ast.parse(source_bytes, filename)
        last = tree.body[-1] if tree.body else None
        tail = None
        if isinstance(last, ast.Expr):
            tree.body.pop()
            tail = compile(ast.Expression(last.value), filename, "eval", dont_inherit=True)
        body = compile(tree, filename, "exec", dont_inherit=True)
    except Exception as exc:
        _print_exception(exc.with_traceback(None))
        _report_exception(exc, filename)
        _exit_code[0] = 1
    else:
        _session_exec(module, body, tail, filename, control)
    if os.getpid() != _PID:
        _leave(0)  # a forked child that ran to the end of the program: the end is the parent's
    _final_figures()
    try:
        _send_files(_channel, workdir, known)
    except Exception as exc:
        _print_exception(exc)
    _end_records(stop_flusher=False)


def _session_exec(
    module: "ModuleType", body: "CodeType", tail: "CodeType | None", filename: str, control: _Control
) -> None:
    text = None
    control.running = True
    try:
        exec(body, module.__dict__)
        if tail is not None:
            value = eval(tail, module.__dict__)
            if value is not None:
                text = repr(value)
    except SystemExit as exc:
        control.running = False
        _exit_code[0] = _code_of(exc)
    except BaseException as exc:
        control.running = False
        tb: TracebackType | None = exc.__traceback__.tb_next if exc.__traceback__ else None
        exc = exc.with_traceback(tb)
        try:
            if sys.excepthook is sys.__excepthook__:
                _print_exception(exc)
            else:
                sys.excepthook(type(exc), exc, tb)
        except BaseException:
            pass
        _report_exception(exc, filename)
        _exit_code[0] = 1
    finally:
        control.running = False
    if text is not None and _channel is not None:
        data = text.encode("utf-8", "replace")[:RESULT_MAX_BYTES]
        _channel.emit(KIND_RESULT, None, data, head=b"{}")


def main() -> None:
    """Prepare as every sandbox does, then run the session's programs until the channel closes."""
    global _session
    _session = True  # files sent in may overwrite what an earlier program left
    _session_main(_prepare())


if __name__ == "__main__":
    main()
