"""The program that waits inside every sandbox for the user's code (it runs there, not on the server).

The container runs a few lines, ``python3 -I -c LOADER [--preload MODS] [--rich] [--mpl-seed DIR]
[--workdir DIR]`` (``RuntimeSpec.command()``), and the engine writes this module, compiled once by
the server, to its stdin first (``app.sandbox.bootstrap.preamble()``); the loader runs it as
``__main__`` with those arguments. It is a real module so that ruff, mypy and the unit tests see
it, but it is written for the sandbox: at start it imports nothing beyond what ``site`` has loaded
(``json``, ``traceback``, ``hashlib``... only on the paths that need them; typing names only under
``TYPE_CHECKING``, annotations that need them quoted), since every import at start is CPU paid by
every container. The server imports it only for the constants below (``MARKER``, the record
kinds), which ``app.core.sidechannel`` reads from here.

What the server writes to stdin (``app.sandbox.bootstrap.encode_program``)::

    b"<code_len> <meta_len> <nonce> <max_count> <max_file_bytes> <max_total_bytes> <max_image_bytes>"
    b" <filename, UTF-8 in hex>\\n"
    + meta (JSON, only when meta_len > 0: {"files": [[path, size], ...]})
    + code + the files' bytes, in meta's order

and everything after those bytes is the program's own standard input, read with ``os.read`` so
the bootstrap never swallows a byte of it. Files are written under the working directory
(``/tmp/work``, the program's cwd) before the code runs, which is then run as ``__main__`` from
``main.py`` (or the run's ``filename``) the way ``python main.py`` would, with tracebacks showing
the user's lines and none of ours. A program that ends by an uncaught exception (a syntax error
included) sends an ``exception`` record ``{"name", "value", "line"}`` after its traceback: ``line``
is the innermost line of its own code in the traceback (a syntax error's own line), else null.

**Output.** stdout is block-buffered (as Python's is into a pipe: many prints make one write, one
attach frame) and a daemon thread (``_thread``, no ``threading`` import) flushes it every
``FLUSH_EVERY_S`` while something is pending, so a line printed alone or a prompt without a
newline still leaves within milliseconds; ``input()`` flushes before it reads. What the program
writes to ``sys.stderr`` goes out at once as a ``stderr`` record on stdout (the text's bytes as
data, 64 KiB at most each) after what stdout holds, so the two keep the program's order exactly:
on two pipes the engine's two copiers can swap writes made microseconds apart. Bytes written to
fd 1 or 2 directly (``os.write``, C code, child processes) bypass this, as they would under
``python3 main.py 2>&1 | cat``. Before a process is spawned or forked (an audit hook) and in
``os._exit``, stdout is flushed. A forked child's stdout is line-buffered (no second thread).

**The end.** A program that ends by itself (return, ``sys.exit``, an uncaught exception, a syntax
error) has its own process write, as the very last things, a marker record ``exit`` on stderr,
then an ``exit`` record ``{"code": N}`` on stdout, each after everything else it wrote on that
stream; the server reports the exit once both have arrived. ``os._exit``, a signal or a kill
sends neither. Right after those records the process leaves with ``os._exit`` and its status,
skipping the interpreter's finalization (~3 ms of CPU per sandbox).

**The side channel.** Images and files travel in-band on stdout, each as one record tagged with
the run's nonce, written with ``os.write`` on fd 1 after ``sys.stdout`` is flushed::

    MARKER + nonce + b":" + kind + b":" + meta_len + b":" + data_len + b"\\n" + meta_json + data

``image``: meta ``{"mime", "width", "height"}``; ``file``: meta ``{"path", "mime", "size"}``;
either with ``"omitted": "too_large"`` and no data past the per-item limit or the run's budget;
``files_end``: ``{"count": N, "files_truncated": BOOL}``, the last record but the end's. The
server parses this with ``app.core.sidechannel`` and enforces every limit again: the program owns
its process and can write anything, including records.

With ``--rich``: ``matplotlib.pyplot.show()`` sends every open figure as a PNG (then closes
them), ``Figure.show()`` that figure, through a backend module provided from memory;
``PIL.Image.Image.show()`` sends a PNG; figures still open at the end are sent before the files.
``--mpl-seed`` links the image's prebuilt font cache into the writable ``$MPLCONFIGDIR``.

**Files out**, when the program ends by itself, from an ``atexit`` hook registered before the
program runs (so after the program's own handlers and its non-daemon threads): every regular file
under the working directory that was created or changed (size and content hash against what was
sent in), in sorted order. Symbolic links are never followed nor sent (``lstat`` during the walk,
``O_NOFOLLOW`` at open, ``fstat`` must say a regular file), nor FIFOs, sockets or devices; names
that are not UTF-8 are skipped; a file past its size limit is never read. Past ``max_count``
files, ``MAX_WALK_ENTRIES`` entries or ``MAX_WALK_DEPTH`` levels the walk stops and ``files_end``
says ``files_truncated``. ``os._exit`` skips all of this, on purpose. Only the bootstrap's own
process reports the end: a forked child that runs to the end sends nothing a second time.
"""

import builtins
import io
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import CodeType, TracebackType
    from typing import Any

# -- shared with the server (app.core.sidechannel reads these) --------------------------------------
MARKER = b"\x1eSCE:"
"""Starts every record: ``MARKER + nonce + b":" + kind + ...`` (see the module's docstring)."""
KIND_IMAGE = b"image"
KIND_FILE = b"file"
KIND_FILES_END = b"files_end"
KIND_STDERR = b"stderr"
KIND_EXIT = b"exit"
KIND_RESULT = b"result"
"""The ``repr`` of a session program's last expression (data: its UTF-8 text), before the end."""
KIND_EXCEPTION = b"exception"
"""``{"name", "value", "line"}``: the uncaught exception the program ended by, before the end."""
KIND_BEGIN = b"begin"
"""A session program's start, on stdout and stderr: what comes before is what threads printed between runs."""

WORKDIR = "/tmp/work"
"""The program's working directory, on the sandbox's tmpfs; files in are written here."""
MAX_WALK_ENTRIES = 10_000
"""Directory entries the files-out walk looks at before it gives up (files_truncated)."""
MAX_WALK_DEPTH = 32
"""Sub-folder levels the files-out walk goes down (one open directory each); deeper is truncated."""
HEADER_MAX_BYTES = 1024
EXCEPTION_VALUE_MAX_CHARS = 1000
FLUSH_EVERY_S = 0.010
# the flusher's first ticks after the program starts come sooner (1, 2, 4, 8 ms, then every 10): a
# line printed at once by a program that goes on working leaves within ~1 ms instead of waiting up
# to a whole FLUSH_EVERY_S (docs/PERFORMANCE.md); a burst of prints still makes few writes
FLUSH_FIRST_S = 0.001
STDERR_RECORD_BYTES = 65536
STDERR_PENDING_CHARS = 8192  # a line this long goes out unended, as CPython's buffer would
MAIN_FILENAME = "main.py"


# -- reading the program ------------------------------------------------------------------------------
def _read_fd0(n: int) -> bytes:
    return os.read(0, n)


_pull = _read_fd0  # where the program is read from: fd 0 (one run), or the session's current frame


def _read_exact(n: int) -> bytes:
    parts = []
    while n > 0:
        chunk = _pull(min(n, 1 << 16))
        if not chunk:
            os._exit(0)
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _read_header() -> "tuple[int, int, bytes, list[int], str]":
    header = b""
    while not header.endswith(b"\n"):
        byte = _pull(1)
        if not byte:
            os._exit(0)
        header += byte
        if len(header) > HEADER_MAX_BYTES:
            os._exit(70)
    fields = header.split()
    if len(fields) != 8:
        os._exit(70)
    filename = bytes.fromhex(fields[7].decode()).decode("utf-8", "replace")
    return int(fields[0]), int(fields[1]), fields[2], [int(f) for f in fields[3:7]], filename


class _Source:
    # linecache finds main.py's lines through the module's __loader__, only when a traceback
    # or inspect asks: nothing is imported for it up front
    def __init__(self, text: str) -> None:
        self._text = text

    def get_source(self, name: str) -> str:
        return self._text


def _print_exception(exc: BaseException) -> None:
    import traceback

    traceback.print_exception(exc)


def _exception_meta(exc: BaseException, filename: str) -> "dict[str, Any]":
    # what the exit reports: the type's name, the message, and the line of the run's own code
    # (compiled as ``filename``) where it was raised: the innermost such frame, or a syntax
    # error's own line in that code
    try:
        value = str(exc)
    except Exception:
        value = "<unprintable " + type(exc).__name__ + ">"
    line = None
    if isinstance(exc, SyntaxError) and exc.filename == filename and isinstance(exc.lineno, int):
        line = exc.lineno
    else:
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == filename:
                line = tb.tb_lineno
            tb = tb.tb_next
    return {"name": type(exc).__name__, "value": value[:EXCEPTION_VALUE_MAX_CHARS], "line": line}


def _report_exception(exc: BaseException, filename: str) -> None:
    if _channel is not None and os.getpid() == _PID:
        try:
            _channel.emit(KIND_EXCEPTION, _exception_meta(exc, filename))
        except Exception:
            pass


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_all(data: bytes, fd: int = 1) -> bool:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except InterruptedError:
            continue
        except OSError:
            return False
    return True


def _write_fd_quiet(fd: int, data: bytes) -> None:
    try:
        _write_fd(fd, data)
    except OSError:
        pass


_in_record = [0, False]  # records being written now, and an interrupt that waits for their end


class _Channel:
    # records on stdout, tagged with the run's nonce; limits enforced here and again by the server
    def __init__(self, nonce: bytes, max_count: int, max_file: int, max_total: int, max_image: int) -> None:
        self.nonce, self.max_count, self.max_file, self.max_image = nonce, max_count, max_file, max_image
        self.left = max_total

    def emit(self, kind: bytes, meta: "dict[str, Any] | None", data: bytes = b"", head: "bytes | None" = None) -> None:
        if head is None:
            import json

            head = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode()
        record = MARKER + b"%s:%s:%d:%d\n" % (self.nonce, kind, len(head), len(data)) + head + data
        _in_record[0] += 1  # a session's interrupt waits for the record's end (a cut one hides the rest)
        try:
            with _lock():  # the flusher writes nothing between the text before the record and the record
                _flush_out()
                _write_all(record)
        finally:
            _in_record[0] -= 1
        if _in_record[1] and not _in_record[0]:
            _in_record[1] = False
            raise KeyboardInterrupt

    def fits(self, size: int, limit: int) -> bool:
        if size <= limit and size <= self.left:
            self.left -= size
            return True
        return False

    def image(self, data: bytes, mime: bytes = b"image/png") -> None:
        size = (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) if len(data) >= 24 else (0, 0)
        meta: dict[str, object] = {"mime": mime.decode(), "width": size[0], "height": size[1]}
        if self.fits(len(data), self.max_image):
            self.emit(KIND_IMAGE, meta, data)
        else:
            meta["omitted"] = "too_large"
            self.emit(KIND_IMAGE, meta)


_channel: "_Channel | None" = None
_PID = os.getpid()
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


# -- rich output: matplotlib's backend and Pillow's viewer --------------------------------------------
def _send_figure(manager: "Any") -> None:
    buf = io.BytesIO()
    manager.canvas.figure.savefig(buf, format="png")
    if _channel is not None:
        _channel.image(buf.getvalue())


def _send_figures() -> None:
    helpers: Any = sys.modules.get("matplotlib._pylab_helpers")
    if helpers is None or _channel is None:
        return
    managers = sorted(helpers.Gcf.get_all_fig_managers(), key=lambda m: m.num)
    try:
        for manager in managers:
            _send_figure(manager)
    finally:
        helpers.Gcf.destroy_all()


def _install_rich(seed: str) -> None:
    # replaced by ``inside.rich``'s (matplotlib's backend from memory, Pillow's viewer, the
    # import hooks), which is appended for runtimes started with --rich only
    raise RuntimeError("--rich needs the inside.rich module")


# -- files in and out -----------------------------------------------------------------------------------


def _sha256() -> "Any":
    try:
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]  # built in: no OpenSSL
    except ImportError:
        from hashlib import sha256
    return sha256()


def _digest(fd: int) -> bytes:
    h = _sha256()
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            digest: bytes = h.digest()
            return digest
        h.update(chunk)


def _write_files(workdir: str, meta: bytes) -> "dict[str, tuple[int, int, bytes | None]]":
    import json

    inputs: dict[str, tuple[int, int, bytes | None]] = {}
    for rel, size in json.loads(meta)["files"]:
        parts = rel.split("/")
        if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            os._exit(70)  # the server validates paths: this is a bug, not a program's doing
        if len(parts) > 1:
            os.makedirs(os.path.join(workdir, *parts[:-1]), exist_ok=True)
        path = os.path.join(workdir, rel)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        fd = os.open(path, flags | (0 if _session else os.O_EXCL), 0o644)
        try:
            h, left = _sha256(), size
            while left > 0:
                chunk = _read_exact(min(left, 1 << 16))
                h.update(chunk)
                _write_fd(fd, chunk)
                left -= len(chunk)
            st = os.fstat(fd)
            inputs[rel] = (st.st_size, st.st_mtime_ns, h.digest())
        finally:
            os.close(fd)
    return inputs


def _unchanged(fd: int, st: "os.stat_result", known: "tuple[int, int, bytes | None]") -> bool:
    size, mtime_ns, digest = known
    if st.st_size != size:
        return False
    if st.st_mtime_ns == mtime_ns:
        return True
    return digest is not None and _digest(fd) == digest


class _WalkLimit(Exception):
    pass


def _visit(dirfd: int, rel: str, depth: int, left: "list[int]") -> "Iterator[tuple[str, str, int]]":
    # (name, relative path, directory fd) of each candidate file under dirfd; every directory is
    # opened relative to its parent with O_NOFOLLOW, so a link swapped in mid-walk is never followed
    try:
        with os.scandir(dirfd) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    subdirs = []
    for entry in entries:
        left[0] -= 1
        if left[0] < 0:
            raise _WalkLimit
        try:
            entry.name.encode("utf-8")
        except UnicodeEncodeError:
            continue
        path = rel + "/" + entry.name if rel else entry.name
        try:
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                subdirs.append((entry.name, path))
            elif entry.is_file(follow_symlinks=False):
                yield entry.name, path, dirfd
        except OSError:
            continue
    for name, path in subdirs:
        if depth >= MAX_WALK_DEPTH:
            raise _WalkLimit
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dirfd)
        except OSError:
            continue
        try:
            yield from _visit(fd, path, depth + 1, left)
        finally:
            os.close(fd)


def _walk(workdir: str) -> "Iterator[tuple[str, str, int] | None]":
    # candidate files in sorted order (a directory's files, then its sub-folders); None last
    # when a limit stopped the walk
    try:
        fd = os.open(workdir, _DIR_FLAGS)
    except OSError:
        return
    try:
        yield from _visit(fd, "", 0, [MAX_WALK_ENTRIES])
    except _WalkLimit:
        yield None
    finally:
        os.close(fd)


def _read_upto(fd: int, size: int) -> bytes:
    parts, left = [], size
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _send_files(channel: _Channel, workdir: str, inputs: "dict[str, tuple[int, int, bytes | None]]") -> None:
    import stat

    count, truncated = 0, False
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    for item in _walk(workdir):
        if item is None:
            truncated = True
            break
        name, rel, dirfd = item
        try:
            fd = os.open(name, flags, dir_fd=dirfd)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                continue
            if rel in inputs and _unchanged(fd, st, inputs[rel]):
                continue
            if count >= channel.max_count:
                truncated = True
                break
            count += 1
            import mimetypes  # only once there is a file to send: most runs make none

            mime = mimetypes.guess_type(rel, strict=False)[0] or "application/octet-stream"
            meta: dict[str, object] = {"path": rel, "mime": mime, "size": st.st_size}
            if channel.fits(st.st_size, channel.max_file):
                os.lseek(fd, 0, 0)
                data = _read_upto(fd, st.st_size)
                meta["size"] = len(data)
                channel.emit(KIND_FILE, meta, data)
            else:
                meta["omitted"] = "too_large"
                channel.emit(KIND_FILE, meta)
        except OSError:
            continue
        finally:
            os.close(fd)
    end = b'{"count":%d,"files_truncated":%s}' % (count, b"true" if truncated else b"false")
    channel.emit(KIND_FILES_END, None, head=end)


def _final_figures() -> None:
    # now, not only at exit: pyplot's own atexit handler (registered after ours when the program
    # imports it) closes every figure before ours would run
    if os.getpid() != _PID:
        return  # a forked child that ran to the end: the end is the parent's to report
    try:
        _send_figures()
    except Exception as exc:
        _print_exception(exc)


def _at_exit(workdir: str, inputs: "dict[str, tuple[int, int, bytes | None]]") -> None:
    if os.getpid() != _PID or _channel is None:
        return
    _final_figures()
    # what the program printed leaves first: its first byte does not wait for the files' walk
    with _lock():
        _flush_out()
    try:
        _send_files(_channel, workdir, inputs)
    except Exception as exc:
        _print_exception(exc)
    _end_records()
    # The run has ended and been reported. The interpreter's finalization (module teardown, a
    # last collection: ~3 ms of CPU, as much as the whole interpreter's start) could only make
    # output after the end, which nobody receives: this process leaves now, with its status.
    _leave(_exit_code[0])


# -- output: block-buffered stdout, flushed while it waits ----------------------------------------------
_SPAWNS = frozenset({"subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.spawn", "os.fork", "os.forkpty"})
_flush_lock: "Any" = None  # made before the program arrives (_prestart_flusher), in a forked child anew
_flush_gate: "Any" = None
_flushing = [False]
_exit_code = [0]
_session = False  # running programs one after another in one namespace (``inside.session``)
_leave = os._exit  # the real one: the program may replace os._exit, and the bootstrap wraps it


def _lock() -> "Any":
    return _flush_lock


def _flush_out() -> None:
    for stream in (sys.stdout, sys.__stdout__):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


def _flusher() -> None:
    # a daemon thread (no threading import: _thread is built in) that flushes what print() left
    # in stdout's buffer; stopped under _flush_lock before the interpreter finalizes, so it never
    # holds the buffer's lock when the main thread's last flush needs it
    sleep = sys.modules["time"].sleep
    _flush_gate.acquire()  # started while the sandbox waits: it flushes once the program runs
    tick = FLUSH_FIRST_S
    while True:
        sleep(tick)
        tick = min(tick * 2, FLUSH_EVERY_S)
        with _flush_lock:
            if not _flushing[0]:
                return
            try:
                if sys.__stdout__ is not None:
                    sys.__stdout__.flush()
            except Exception:
                pass


def _prestart_flusher() -> None:
    # the flusher's thread is started while the sandbox waits for its program, held at a gate:
    # starting a thread (a clone and a hand-off of the GIL, ~0.7 ms) is then not paid between the
    # program's arrival and its first byte, and a waiting sandbox spends no CPU on it
    global _flush_lock, _flush_gate
    import time  # noqa: F401  # built in; the flusher finds it in sys.modules

    thread = _thread_mod()
    _flush_lock = thread.RLock()  # reentrant: a signal handler may write to stderr mid-record
    _flush_gate = thread.allocate_lock()
    _flush_gate.acquire()
    thread.start_new_thread(_flusher, ())


def _stop_flusher() -> None:
    with _flush_lock:
        _flushing[0] = False
    _flush_out()


def _audit(event: str, args: "tuple[Any, ...]") -> None:
    # a process about to start writes to fd 1 itself: what print() buffered goes first
    if event in _SPAWNS:
        _flush_out()


def _before_fork() -> None:
    _flush_out()
    try:
        sys.stderr.flush()  # a partial line is the parent's: the child would send it again
    except Exception:
        pass
    _flush_lock.acquire()  # the flusher is not inside a flush: the child's buffer lock is free


def _after_fork_parent() -> None:
    _flush_lock.release()


def _after_fork_child() -> None:
    global _flush_lock
    _flush_lock = _thread_mod().RLock()
    _flushing[0] = False
    try:
        if isinstance(sys.__stdout__, io.TextIOWrapper):
            sys.__stdout__.reconfigure(line_buffering=True)  # no flusher thread here: no pid spent on it
    except Exception:
        pass


def _thread_mod() -> "Any":
    import _thread

    return _thread


class _Stderr(io.TextIOWrapper):
    # sys.stderr's text travels on fd 1 as records, after what stdout holds: one pipe, one order
    # (two pipes are read by two copiers in the engine, which can swap writes made microseconds
    # apart). Its .buffer and fd 2 itself still reach the real stderr. Line-buffered as CPython's
    # stderr is: a write with no line end waits for one (or a flush), since print() writes its
    # pieces one by one and a pause between two of them would split the line on the server.
    _pending = ""

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not " + type(s).__name__)
        with _flush_lock:
            text = self._pending + s
            if "\n" in s or "\r" in s or len(text) >= STDERR_PENDING_CHARS:
                self._pending = ""
                _send_stderr(text.encode(self.encoding, self.errors or "strict"))
            else:
                self._pending = text
        return len(s)

    def flush(self) -> None:
        with _flush_lock:
            text, self._pending = self._pending, ""
            if text:
                _send_stderr(text.encode(self.encoding, self.errors or "strict"))
        super().flush()


def _setup_output() -> None:
    # stdout block-buffered (a pipe's default) with a flusher every FLUSH_EVERY_S: many prints
    # become one write and one attach frame; stderr line-buffered and flushing stdout before each
    # write, so their relative order is the program's; input() flushes stdout before it reads
    out, err = sys.stdout, sys.stderr
    if isinstance(out, io.TextIOWrapper):
        out.reconfigure(line_buffering=False)
    assert isinstance(err, io.TextIOWrapper)
    buffer = err.detach()
    sys.stderr = sys.__stderr__ = _Stderr(  # type: ignore[misc]
        buffer, encoding=err.encoding, errors=err.errors, line_buffering=True
    )
    _flushing[0] = True
    _flush_gate.release()
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child)
    sys.addaudithook(_audit)
    real_exit = os._exit

    def _exit(status: int) -> "Any":
        # os._exit runs no handlers, but what the program printed before it is delivered
        _flush_out()
        try:
            sys.stderr.flush()
        except Exception:
            pass
        real_exit(status)

    os._exit = _exit


def _send_stderr(data: bytes) -> None:
    if not data:
        return
    if _channel is None:  # a session between its start and its first program
        _write_all(data, 2)
        return
    head = MARKER + _channel.nonce + b":" + KIND_STDERR + b":2:"
    with _flush_lock:
        _flush_out()
        for at in range(0, len(data), STDERR_RECORD_BYTES):
            part = data[at : at + STDERR_RECORD_BYTES]
            if not _write_all(head + b"%d\n{}" % len(part) + part):
                _write_all(part, 2)  # fd 1 closed or broken: stderr's own pipe, order aside


def _code_of(exc: SystemExit) -> int:
    # the status the interpreter exits with for this SystemExit
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1


def _end_records(stop_flusher: bool = True) -> None:
    # the last thing the program's own process writes when it ends by itself: a marker on stderr,
    # then the exit record on stdout, each after everything written before it on its stream;
    # the server reports the exit once it has both (a session keeps its flusher for what threads
    # left running print between runs)
    if stop_flusher:
        _stop_flusher()
    else:
        with _lock():
            _flush_out()
    try:
        sys.stderr.flush()
    except Exception:
        pass
    if _channel is None:
        return
    _write_fd_quiet(2, MARKER + _channel.nonce + b":" + KIND_EXIT + b":2:0\n{}")
    _channel.emit(KIND_EXIT, None, head=b'{"code":%d}' % _exit_code[0])


# -- the run --------------------------------------------------------------------------------------------
def _options(argv: "list[str]") -> "tuple[list[str], bool, str, str]":
    opts = {"--preload": "", "--mpl-seed": "", "--workdir": WORKDIR}
    rich = False
    i = 0
    while i < len(argv):
        if argv[i] == "--rich":
            rich = True
            i += 1
        else:
            opts[argv[i]] = argv[i + 1]
            i += 2
    return [m for m in opts["--preload"].split(",") if m], rich, opts["--mpl-seed"], opts["--workdir"]


def _prepare() -> str:
    # what every sandbox does before its program arrives; returns the working directory
    preload, rich, seed, workdir = _options(sys.argv[1:])
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    sys.dont_write_bytecode = True  # no __pycache__ of the program's modules among its files out
    if rich:
        _install_rich(seed)
    for name in preload:
        try:
            __import__(name)
        except Exception:
            pass  # the program meets the same error, in its own output, if it imports it
    _prestart_flusher()
    return workdir


def main() -> None:
    """Wait for one program, run it as ``python main.py`` would, report its end and leave."""
    global _channel
    workdir = _prepare()
    compile("pass", MAIN_FILENAME, "exec", dont_inherit=True)  # a process's first compile costs ~1 ms: paid now
    import atexit  # ~0.07 ms: paid before the program arrives, not between it and its first byte

    code_len, meta_len, nonce, limits, filename = _read_header()
    meta = _read_exact(meta_len) if meta_len else b""
    source_bytes = _read_exact(code_len)
    inputs = _write_files(workdir, meta) if meta_len else {}
    _channel = _Channel(nonce, *limits)
    _setup_output()
    module = type(sys)("__main__")
    module.__file__ = filename
    module.__builtins__ = builtins  # type: ignore[attr-defined]
    module.__loader__ = _Source(source_bytes.decode("utf-8", "replace"))  # type: ignore[assignment]
    sys.modules["__main__"] = module
    sys.argv[:] = [filename]
    sys.path[0:0] = [workdir]
    try:
        code: CodeType = compile(source_bytes, filename, "exec", dont_inherit=True)
    except Exception as exc:  # SyntaxError, ValueError (NUL bytes), MemoryError, RecursionError
        _print_exception(exc.with_traceback(None))
        _report_exception(exc, filename)
        _exit_code[0] = 1
        _end_records()
        sys.exit(1)
    # registered first, so it runs last: after the program's own handlers and its threads
    atexit.register(_at_exit, workdir, inputs)
    try:
        exec(code, module.__dict__)
    except SystemExit as exc:
        _exit_code[0] = _code_of(exc)
        _final_figures()
        raise
    except BaseException as exc:
        tb: TracebackType | None = exc.__traceback__.tb_next if exc.__traceback__ else None
        exc = exc.with_traceback(tb)
        if sys.excepthook is sys.__excepthook__:
            _print_exception(exc)  # the C hook reads source from disk; traceback asks the loader
        else:
            sys.excepthook(type(exc), exc, tb)
        _report_exception(exc, filename)
        _exit_code[0] = 1
        _final_figures()
        sys.exit(1)
    _final_figures()


if __name__ == "__main__":
    main()
