"""The program that waits inside every sandbox for the user's code.

The container runs a few lines, ``python3 -I -c LOADER [--preload MODS] [--rich] [--mpl-seed DIR]
[--workdir DIR]`` (``RuntimeSpec.command()`` builds it), and the engine writes this program itself
to its stdin first (``preamble()``: compiled by the server, and as source for a sandbox with
another Python), which the loader reads exactly and runs with those arguments. So the image needs
nothing of ours and a change here never forces an image rebuild, and the container's command
line stays small: as the command itself, these 20 KB cost the engine ~12 ms of CPU per container
(its configuration is parsed, stored and handed down as JSON at every step), which at saturation
is throughput. A warm container has
already paid for the interpreter's start; for the plain runtime the bootstrap imports nothing
beyond what ``site`` has loaded (imports at start are CPU per container too: ``json``,
``hashlib``, ``traceback`` are imported only on the paths that need them). A runtime may
``--preload`` modules (numpy, pandas, matplotlib) so a program finds them already imported.

What the server writes to stdin (``encode_program``)::

    b"<code_len> <meta_len> <nonce> <max_count> <max_file_bytes> <max_total_bytes> <max_image_bytes>\\n"
    + meta (JSON, only when meta_len > 0: {"files": [[path, size], ...]})
    + code + the files' bytes, in meta's order

and everything after those bytes is the program's own standard input, read with ``os.read`` so
the bootstrap never swallows a byte of it. Files are written under the working directory
(``/tmp/work``, the program's cwd) before the code runs, which is then run as ``__main__`` from
``main.py`` the way ``python main.py`` would, with tracebacks showing the user's lines and none
of ours.

**Output.** stdout is block-buffered (as Python's is into a pipe: many prints make one write, one
attach frame) and a daemon thread (``_thread``, no ``threading`` import; one pid of the sandbox's)
flushes it every ``FLUSH_EVERY_S`` (sooner in the program's first milliseconds: ``FLUSH_FIRST_S``,
doubling) while something is pending, so a line printed alone or a prompt
without a newline still leaves within milliseconds; ``input()`` flushes before it reads. What
the program writes to ``sys.stderr`` goes out at once as a ``stderr`` record on stdout (meta
``{}``, the text's bytes as data, 64 KiB at most each) after what stdout holds, so the two keep
the program's order exactly: on two pipes the engine's two copiers can swap writes made
microseconds apart. Bytes written to fd 1 or 2 directly (``os.write``, ``sys.stderr.buffer``, C
code, child processes) bypass all this, as they would under ``python3 main.py 2>&1 | cat``.
Before a process is spawned or forked (an audit hook) and in ``os._exit``, stdout is flushed: a
child's output follows what was printed before it, nothing is printed twice, and nothing printed
is lost. A forked child's stdout is line-buffered (no second
thread). The flusher is stopped before the end records, so it never holds stdout's lock when the
last flush needs it.

**The end.** A program that ends by itself (return, ``sys.exit``, an uncaught exception, a syntax
error) has its own process write, as the very last things, a marker record ``exit`` with meta
``{}`` on stderr, then an ``exit`` record ``{"code": N}`` (its exit status) on stdout, each after
everything else it wrote on that stream. The server reports the exit once both have arrived,
without waiting for the engine to see the container die; ``os._exit``, a signal or a kill sends
neither, and the engine's word is awaited as before. Right after those records the process leaves
with ``os._exit`` and its status, skipping the interpreter's finalization (~3 ms of CPU per
sandbox): what it could still write (a ``__del__`` at teardown) would come after the reported end.

**The side channel.** Images and files travel in-band on stdout, each as one record tagged with
the run's nonce, written with ``os.write`` on fd 1 after ``sys.stdout`` is flushed (so they keep
their place among prints)::

    b"\\x1eSCE:" + nonce + b":" + kind + b":" + meta_len + b":" + data_len + b"\\n" + meta_json + data

``image``: meta ``{"mime": "image/png", "width": N, "height": N}``; ``file``: meta ``{"path": STR,
"mime": STR, "size": N}``; either with ``"omitted": "too_large"`` and no data when past the
per-item limit or the run's budget (images and files share ``max_total_bytes``);
``files_end``: meta ``{"count": N, "files_truncated": BOOL}``, always the last record of a program
that ended by itself. The server parses this with ``app.core.sidechannel`` and enforces every
limit again: the program owns its process and can write anything, including records.

With ``--rich``: ``matplotlib.pyplot.show()`` sends every open figure as a PNG (then closes
them), ``Figure.show()`` that figure (then closes it), through a backend module this bootstrap
provides from memory (nothing is written into the read-only image); ``PIL.Image.Image.show()``
sends a PNG; figures still open at the end are sent before the files. ``--mpl-seed`` links the
image's prebuilt font cache into the writable ``$MPLCONFIGDIR``.

**Files out**, when the program ends by itself (return, ``sys.exit``, an uncaught exception),
from an ``atexit`` hook registered before the program runs, so it comes after the program's
own ``atexit`` handlers and after its non-daemon threads have ended: every regular file under
the working directory that was created, or changed (size and content hash against what was
sent in), sub-folders included, in sorted order. Symbolic links are never followed nor sent
(``lstat`` during the walk, ``O_NOFOLLOW`` at open, then ``fstat`` must say a regular file), nor
are FIFOs, sockets or devices; names that are not valid UTF-8 are skipped. A file past its size
limit is never read (so a sparse 100 MiB file costs nothing). Past ``max_count`` files,
``MAX_WALK_ENTRIES`` directory entries or ``MAX_WALK_DEPTH`` levels, the walk stops and
``files_end`` says ``files_truncated``. Directories are opened relative to their parent with
``O_NOFOLLOW`` too, so a link swapped in while the walk runs is not followed either.
``os._exit`` skips all of this, on purpose: it means "exit now, run no handlers", and a program
that calls it gets no files and no final figures (images it showed earlier have already been
sent; a fork to survive it would cost ~3.5 ms a run with the scientific preload). Only the
bootstrap's own process reports the end: a forked child that runs to the end of the program
sends nothing a second time.
"""

from __future__ import annotations

import importlib.util
import json
import marshal
import re
from collections.abc import Sequence
from dataclasses import dataclass

WORKDIR = "/tmp/work"
"""The program's working directory, on the sandbox's tmpfs; files in are written here."""

MAX_WALK_ENTRIES = 10_000
"""Directory entries the files-out walk looks at before it gives up (files_truncated)."""

MAX_WALK_DEPTH = 32
"""Sub-folder levels the files-out walk goes down (one open directory each, against the
sandbox's open-files limit); deeper is files_truncated."""

_NONCE = re.compile(r"[0-9a-f]{32}")

BOOTSTRAP = (
    r"""
import builtins, os, sys

def _read_exact(n):
    parts = []
    while n > 0:
        chunk = os.read(0, min(n, 1 << 16))
        if not chunk:
            os._exit(0)
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)

def _read_header():
    header = b""
    while not header.endswith(b"\n"):
        byte = os.read(0, 1)
        if not byte:
            os._exit(0)
        header += byte
        if len(header) > 160:
            os._exit(70)
    fields = header.split()
    if len(fields) != 7:
        os._exit(70)
    return int(fields[0]), int(fields[1]), fields[2], [int(f) for f in fields[3:]]

class _Source:
    # linecache finds main.py's lines through the module's __loader__, only when a traceback
    # or inspect asks: nothing is imported for it up front
    def __init__(self, text):
        self._text = text
    def get_source(self, name):
        return self._text

def _print_exception(exc):
    import traceback
    traceback.print_exception(exc)

def _write_fd(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]

def _write_all(data, fd=1):
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue
        except OSError:
            return False
    return True

class _Channel:
    # records on stdout, tagged with the run's nonce; limits enforced here and again by the server
    def __init__(self, nonce, max_count, max_file, max_total, max_image):
        self.nonce, self.max_count, self.max_file, self.max_image = nonce, max_count, max_file, max_image
        self.left = max_total

    def emit(self, kind, meta, data=b"", head=None):
        if head is None:
            import json
            head = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode()
        record = b"\x1eSCE:%s:%s:%d:%d\n" % (self.nonce, kind, len(head), len(data)) + head + data
        with _flush_lock:  # the flusher writes nothing between the text before the record and the record
            _flush_out()
            _write_all(record)

    def fits(self, size, limit):
        if size <= limit and size <= self.left:
            self.left -= size
            return True
        return False

    def image(self, data, mime=b"image/png"):
        size = (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) if len(data) >= 24 else (0, 0)
        meta = {"mime": mime.decode(), "width": size[0], "height": size[1]}
        if self.fits(len(data), self.max_image):
            self.emit(b"image", meta, data)
        else:
            meta["omitted"] = "too_large"
            self.emit(b"image", meta)

_channel = None
_PID = os.getpid()
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)

# --- rich output: matplotlib's backend and Pillow's viewer ------------------------------------

_BACKEND = "_sce_matplotlib"

def _send_figure(manager):
    buf = sys.modules["io"].BytesIO()
    manager.canvas.figure.savefig(buf, format="png")
    if _channel is not None:
        _channel.image(buf.getvalue())

def _send_figures():
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    if helpers is None or _channel is None:
        return
    managers = sorted(helpers.Gcf.get_all_fig_managers(), key=lambda m: m.num)
    try:
        for manager in managers:
            _send_figure(manager)
    finally:
        helpers.Gcf.destroy_all()

def _fill_backend(module):
    from matplotlib.backend_bases import FigureManagerBase, _Backend
    from matplotlib.backends.backend_agg import FigureCanvasAgg, _BackendAgg
    from matplotlib._pylab_helpers import Gcf
    class _Manager(FigureManagerBase):
        def show(self):
            # Figure.show(): this figure only, then closed like plt.show() closes its figures
            try:
                _send_figure(self)
            finally:
                Gcf.destroy(self)
    class _Canvas(FigureCanvasAgg):
        manager_class = _Manager
    class _BackendSce(_BackendAgg):
        FigureCanvas = _Canvas
        FigureManager = _Manager
        @staticmethod
        def show(*args, **kwargs):
            _send_figures()
    _BackendSce.__module__ = module.__name__
    _Backend.export(_BackendSce)

class _Viewer:
    # first in PIL.ImageShow's list: Image.show() sends a PNG instead of looking for a display
    def show(self, image, **options):
        io = sys.modules["io"]
        buf = io.BytesIO()
        try:
            image.save(buf, "PNG")
        except (OSError, ValueError, KeyError):
            buf = io.BytesIO()
            image.convert("RGBA").save(buf, "PNG")
        if _channel is not None:
            _channel.image(buf.getvalue())
        return 1

def _after_matplotlib(module):
    module.use("module://" + _BACKEND)

def _after_imageshow(module):
    module.register(_Viewer(), -1)

class _AfterLoader:
    # runs a hook once the module is loaded, then gets out of the way (the module keeps the real loader)
    def __init__(self, inner, hook):
        self.inner, self.hook = inner, hook
    def __getattr__(self, name):
        return getattr(self.inner, name)
    def create_module(self, spec):
        return self.inner.create_module(spec)
    def exec_module(self, module):
        self.inner.exec_module(module)
        module.__loader__ = self.inner
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        self.hook(module)

class _BackendLoader:
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        _fill_backend(module)

class _Hooks:
    # a meta-path finder: provides the backend module from memory and runs a hook right after
    # matplotlib / PIL.ImageShow are loaded, whoever imports them and whenever
    def __init__(self):
        self.after = {"matplotlib": _after_matplotlib, "PIL.ImageShow": _after_imageshow}
    def find_spec(self, name, path=None, target=None):
        if name == _BACKEND:
            return type(sys.__spec__)(name, _BackendLoader())
        hook = self.after.get(name)
        if hook is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _AfterLoader(spec.loader, hook)
                return spec
        return None

def _install_rich(seed):
    conf = os.environ.get("MPLCONFIGDIR")
    if seed and conf:
        # a writable MPLCONFIGDIR holding the image's prebuilt font cache: a read-only one makes
        # matplotlib warn and rebuild the cache in a temporary directory on every run
        try:
            os.makedirs(conf, exist_ok=True)
            for name in os.listdir(seed):
                if not os.path.lexists(os.path.join(conf, name)):
                    os.symlink(os.path.join(seed, name), os.path.join(conf, name))
        except OSError:
            pass
    sys.meta_path.insert(0, _Hooks())

# --- files in and out -------------------------------------------------------------------------

def _sha256():
    try:
        from _sha256 import sha256  # built in: no OpenSSL to load
    except ImportError:
        from hashlib import sha256
    return sha256()

def _digest(fd):
    h = _sha256()
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return h.digest()
        h.update(chunk)

def _write_files(workdir, meta):
    import json
    inputs = {}
    for rel, size in json.loads(meta)["files"]:
        parts = rel.split("/")
        if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            os._exit(70)  # the server validates paths: this is a bug, not a program's doing
        if len(parts) > 1:
            os.makedirs(os.path.join(workdir, *parts[:-1]), exist_ok=True)
        fd = os.open(os.path.join(workdir, rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
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

def _unchanged(fd, st, known):
    size, mtime_ns, digest = known
    if st.st_size != size:
        return False
    if st.st_mtime_ns == mtime_ns:
        return True
    return digest is not None and _digest(fd) == digest

class _WalkLimit(Exception):
    pass

def _visit(dirfd, rel, depth, left):
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

def _walk(workdir):
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

def _read_upto(fd, size):
    parts, left = [], size
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)

def _send_files(channel, workdir, inputs):
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
            meta = {"path": rel, "mime": mime, "size": st.st_size}
            if channel.fits(st.st_size, channel.max_file):
                os.lseek(fd, 0, 0)
                data = _read_upto(fd, st.st_size)
                meta["size"] = len(data)
                channel.emit(b"file", meta, data)
            else:
                meta["omitted"] = "too_large"
                channel.emit(b"file", meta)
        except OSError:
            continue
        finally:
            os.close(fd)
    end = b'{"count":%d,"files_truncated":%s}' % (count, b"true" if truncated else b"false")
    channel.emit(b"files_end", None, head=end)

def _final_figures():
    # now, not only at exit: pyplot's own atexit handler (registered after ours when the program
    # imports it) closes every figure before ours would run
    if os.getpid() != _PID:
        return  # a forked child that ran to the end: the end is the parent's to report
    try:
        _send_figures()
    except Exception as exc:
        _print_exception(exc)

def _at_exit(workdir, inputs):
    if os.getpid() != _PID:
        return
    _final_figures()
    # what the program printed leaves first: its first byte does not wait for the files' walk
    with _flush_lock:
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

# --- output: block-buffered stdout, flushed while it waits -----------------------------------

FLUSH_EVERY_S = 0.010
# the flusher's first ticks after the program starts come sooner (1, 2, 4, 8 ms, then every 10): a
# line printed at once by a program that goes on working leaves within ~1 ms instead of waiting up
# to a whole FLUSH_EVERY_S (measured: 10-11 ms from its print to the server, 2026-12-03); a burst
# of prints still makes few writes (a handful more in the first 15 ms)
FLUSH_FIRST_S = 0.001
_SPAWNS = frozenset({"subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.spawn", "os.fork", "os.forkpty"})
_flush_lock = None  # made before the program arrives (_prestart_flusher), in a forked child anew
_flush_gate = None
_flushing = [False]
_exit_code = [0]
_leave = os._exit  # the real one: the program may replace os._exit, and the bootstrap wraps it

def _flush_out():
    for stream in (sys.stdout, sys.__stdout__):
        try:
            stream.flush()
        except Exception:
            pass

def _flusher():
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
                sys.__stdout__.flush()
            except Exception:
                pass

def _prestart_flusher():
    # the flusher's thread is started while the sandbox waits for its program, held at a gate:
    # starting a thread (a clone and a hand-off of the GIL, ~0.7 ms) is then not paid between the
    # program's arrival and its first byte, and a waiting sandbox spends no CPU on it
    global _flush_lock, _flush_gate
    import time  # built in
    thread = _thread_mod()
    _flush_lock = thread.RLock()  # reentrant: a signal handler may write to stderr mid-record
    _flush_gate = thread.allocate_lock()
    _flush_gate.acquire()
    thread.start_new_thread(_flusher, ())

def _stop_flusher():
    with _flush_lock:
        _flushing[0] = False
    _flush_out()

def _audit(event, args):
    # a process about to start writes to fd 1 itself: what print() buffered goes first
    if event in _SPAWNS:
        _flush_out()

def _before_fork():
    _flush_out()
    _flush_lock.acquire()  # the flusher is not inside a flush: the child's buffer lock is free

def _after_fork_parent():
    _flush_lock.release()

def _after_fork_child():
    global _flush_lock
    _flush_lock = _thread_mod().RLock()
    _flushing[0] = False
    try:
        sys.__stdout__.reconfigure(line_buffering=True)  # no flusher thread here: no pid spent on it
    except Exception:
        pass

def _thread_mod():
    import _thread
    return _thread

def _setup_output():
    # stdout block-buffered (a pipe's default) with a flusher every FLUSH_EVERY_S: many prints
    # become one write and one attach frame; stderr line-buffered and flushing stdout before each
    # write, so their relative order is the program's; input() flushes stdout before it reads
    io = sys.modules["io"]
    out, err = sys.stdout, sys.stderr
    out.reconfigure(line_buffering=False)

    class _Stderr(io.TextIOWrapper):
        # sys.stderr's text travels on fd 1 as records, after what stdout holds: one pipe, one
        # order (two pipes are read by two copiers in the engine, which can swap writes made
        # microseconds apart). Its .buffer and fd 2 itself still reach the real stderr.
        def write(self, s):
            if not isinstance(s, str):
                raise TypeError("write() argument must be str, not " + type(s).__name__)
            _send_stderr(s.encode(self.encoding, self.errors))
            return len(s)

    buffer = err.detach()
    sys.stderr = sys.__stderr__ = _Stderr(buffer, encoding=err.encoding, errors=err.errors, line_buffering=True)
    _flushing[0] = True
    _flush_gate.release()
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child)
    sys.addaudithook(_audit)
    real_exit = os._exit
    def _exit(status):
        # os._exit runs no handlers, but what the program printed before it is delivered
        _flush_out()
        try:
            sys.stderr.flush()
        except Exception:
            pass
        real_exit(status)
    os._exit = _exit

STDERR_RECORD_BYTES = 65536

def _send_stderr(data):
    if not data:
        return
    with _flush_lock:
        _flush_out()
        for at in range(0, len(data), STDERR_RECORD_BYTES):
            part = data[at:at + STDERR_RECORD_BYTES]
            if not _write_all(b"\x1eSCE:%s:stderr:2:%d\n{}" % (_channel.nonce, len(part)) + part):
                _write_all(part, 2)  # fd 1 closed or broken: stderr's own pipe, order aside

def _code_of(exc):
    # the status the interpreter exits with for this SystemExit
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1

def _end_records():
    # the last thing the program's own process writes when it ends by itself: a marker on stderr,
    # then the exit record on stdout, each after everything written before it on its stream;
    # the server reports the exit once it has both
    _stop_flusher()
    try:
        sys.stderr.flush()
    except Exception:
        pass
    if _channel is None:
        return
    _write_fd_quiet(2, b"\x1eSCE:%s:exit:2:0\n{}" % _channel.nonce)
    _channel.emit(b"exit", None, head=b'{"code":%d}' % _exit_code[0])

def _write_fd_quiet(fd, data):
    try:
        _write_fd(fd, data)
    except OSError:
        pass

# --- the run ----------------------------------------------------------------------------------

def _options(argv):
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

def _main():
    global _channel
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
    compile("pass", "main.py", "exec", dont_inherit=True)  # a process's first compile costs ~1 ms: paid now
    import atexit  # ~0.07 ms: paid before the program arrives, not between it and its first byte
    code_len, meta_len, nonce, limits = _read_header()
    meta = _read_exact(meta_len) if meta_len else b""
    source_bytes = _read_exact(code_len)
    inputs = _write_files(workdir, meta) if meta_len else {}
    _channel = _Channel(nonce, *limits)
    _setup_output()
    module = type(sys)("__main__")
    module.__file__ = "main.py"
    module.__builtins__ = builtins
    module.__loader__ = _Source(source_bytes.decode("utf-8", "replace"))
    sys.modules["__main__"] = module
    sys.argv[:] = ["main.py"]
    sys.path[0:0] = [workdir]
    try:
        code = compile(source_bytes, "main.py", "exec", dont_inherit=True)
    except Exception as exc:  # SyntaxError, ValueError (NUL bytes), MemoryError, RecursionError
        _print_exception(exc.with_traceback(None))
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
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        exc = exc.with_traceback(tb)
        if sys.excepthook is sys.__excepthook__:
            _print_exception(exc)  # the C hook reads source from disk; traceback asks the loader
        else:
            sys.excepthook(type(exc), exc, tb)
        _exit_code[0] = 1
        _final_figures()
        sys.exit(1)
    _final_figures()

"""
    + f"MAX_WALK_ENTRIES = {MAX_WALK_ENTRIES}\nMAX_WALK_DEPTH = {MAX_WALK_DEPTH}\n"
    + f"WORKDIR = {WORKDIR!r}\n_main()\n"
)


@dataclass(frozen=True)
class FilesOutLimits:
    """What one run may send out on the side channel: files (count, each, all) and images (each);
    images and files share ``max_total_bytes``. Enforced in the sandbox and again on the server."""

    max_count: int = 20
    max_file_bytes: int = 1_048_576
    max_total_bytes: int = 4 * 1_048_576
    max_image_bytes: int = 1_048_576


def encode_program(
    code: str,
    *,
    nonce: str,
    files: Sequence[tuple[str, bytes]] = (),
    out: FilesOutLimits | None = None,
) -> bytes:
    """What the server writes first to a waiting bootstrap (see the module's docstring).

    ``nonce``: 32 lowercase hex characters, fresh for each run; ``files``: (relative path,
    content) pairs already validated by the server; ``out``: the side channel's limits
    (``FilesOutLimits()`` when None).
    """
    if not _NONCE.fullmatch(nonce):
        raise ValueError("nonce must be 32 lowercase hex characters")
    limits = out or FilesOutLimits()
    body = code.encode("utf-8", "surrogatepass")
    meta = b""
    if files:
        meta = json.dumps({"files": [[path, len(content)] for path, content in files]}).encode()
    header = b"%d %d %s %d %d %d %d\n" % (
        len(body),
        len(meta),
        nonce.encode(),
        limits.max_count,
        limits.max_file_bytes,
        limits.max_total_bytes,
        limits.max_image_bytes,
    )
    return b"".join([header, meta, body, *(content for _, content in files)])


# Reads the bootstrap from stdin (exactly: the program and its input follow) and runs it as
# __main__ with the command's arguments; a stdin closed first ends it quietly. The bootstrap comes
# twice: compiled (marshal) and as source. The code object runs when it was made for this very
# interpreter (the same bytecode magic number); any other Python compiles the source instead.
LOADER = (
    "import os, sys, marshal\n"
    "h = b''\n"
    "while not h.endswith(b'\\n'):\n"
    "    c = os.read(0, 1)\n"
    "    if not c or len(h) > 64:\n"
    "        os._exit(0)\n"
    "    h += c\n"
    "k, n, m = h.split()\n"
    "k = int(k)\n"
    "n = k + int(n)\n"
    "s = []\n"
    "while n > 0:\n"
    "    c = os.read(0, min(n, 1 << 16))\n"
    "    if not c:\n"
    "        os._exit(0)\n"
    "    s.append(c)\n"
    "    n -= len(c)\n"
    "s = b''.join(s)\n"
    "c = getattr(sys.modules.get('_frozen_importlib_external'), 'MAGIC_NUMBER', b'').hex().encode()\n"
    "c = marshal.loads(s[:k]) if m == c else compile(s[k:], '<string>', 'exec')\n"
    "del h, k, n, m, s\n"
    "exec(c)\n"
)


def _preamble(source: str, magic: bytes) -> bytes:
    code = marshal.dumps(compile(source, "<string>", "exec", dont_inherit=True, optimize=0))
    body = source.encode()
    return b"%d %d %s\n" % (len(code), len(body), magic.hex().encode()) + code + body


_PREAMBLE = _preamble(BOOTSTRAP, importlib.util.MAGIC_NUMBER)


def preamble() -> bytes:
    """What the engine writes to a new sandbox's stdin before any program: the bootstrap for LOADER.

    ``<code_len> <source_len> <magic>\\n`` + the compiled bootstrap (``marshal``) + its source.
    Compiling its 20 KB in every sandbox cost ~5 ms of CPU per container (docs/PERFORMANCE.md);
    unmarshalling the server's code object costs ~0.1 ms. The code object is only used by a Python
    with the server's bytecode magic number (the same version), so a sandbox image with another
    Python still works, paying the compile.
    """
    return _PREAMBLE
