"""The hostile-program corpus as data, the client that runs it, and the judge of each outcome.

Every entry is one program a hostile or careless user could send, the class of attack it
belongs to, and what must come back over the real WebSocket: the exit ``reason``, the exit code
or a predicate, a time bound (from ``started`` to the end, so queueing is not counted), strings
that must appear and strings that must never appear. The server's own secret (a canary planted
in its environment) must never appear in any program's output, whatever the program.

Where gVisor (``runsc``) legitimately answers differently and harmlessly (an errno, /proc
contents, who may signal PID 1), a case carries a ``runsc`` expectation and says why in
``differs``. Where a runtime shows a real gap (the precise expectation fails, but the sandbox
still holds), the case names the gap in ``gaps`` and a ``safe`` expectation that must hold
anyway: the tests then assert ``safe`` and report the precise failure as a known gap (strictly:
when the gap stops reproducing, the test fails so that the marker is removed).

Used by ``test_corpus.py`` (pytest) and ``report.py`` (docs/SECURITY_NOTES.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import websockets

from app.schema import SERVER_FRAMES
from app.settings import Settings

# --- the data model -----------------------------------------------------------------------------

CLOSE_CODES = {
    "bad_message": 1008,
    "code_too_large": 1009,
    "message_too_large": 1009,
    "busy": 1013,
    "unavailable": 1011,
    "internal": 1011,
}
# every frame type of the protocol, from its models (v3 added input and result)
FRAME_TYPES = {model.model_fields["type"].default for model in SERVER_FRAMES}
MIDDLE_FRAMES = FRAME_TYPES - {"queued", "started", "exit", "error"}  # between started and the end
CANARY_NAME = "CANARY_SECRET"
CANARY_PREFIX = "sce-canary-"


@dataclass(frozen=True)
class Ctx:
    """What the programs and the judge need to know about the server under test."""

    runtime: str
    port: int
    canary: str
    output_bytes: int
    code_max_bytes: int
    host_only_users: frozenset[str] = frozenset()


@dataclass
class Outcome:
    """Everything the client saw of one run, with client-side timings."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    sent_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    client_error: str | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == kind]

    @property
    def exit(self) -> dict[str, Any] | None:
        exits = self.of("exit")
        return exits[0] if len(exits) == 1 else None

    @property
    def error(self) -> dict[str, Any] | None:
        errors = self.of("error")
        return errors[0] if len(errors) == 1 else None

    @property
    def stdout(self) -> str:
        return "".join(f["data"] for f in self.of("stdout"))

    @property
    def stderr(self) -> str:
        return "".join(f["data"] for f in self.of("stderr"))

    @property
    def output(self) -> str:
        return "".join(f["data"] for f in self.frames if f.get("type") in ("stdout", "stderr"))

    @property
    def limits(self) -> dict[str, Any]:
        started = self.of("started")
        return started[0]["limits"] if started else {}

    @property
    def elapsed_s(self) -> float:
        """From ``started`` (or the request, if none came) to the terminal frame."""
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return end - (self.started_at if self.started_at is not None else self.sent_at)

    def summary(self) -> str:
        terminal = self.exit or self.error or {"type": "none", "client_error": self.client_error}
        shown = {k: v for k, v in terminal.items() if k != "type"}
        return f"{terminal['type']} {json.dumps(shown, sort_keys=True)} close={self.close_code}"


Check = Callable[[Outcome, Ctx], "str | None"]


@dataclass(frozen=True)
class Expect:
    """What one run must produce. ``error`` set: an error frame with that code instead of an exit."""

    reasons: tuple[str, ...] = ("exit",)
    exit_codes: tuple[int | None, ...] | None = (0,)  # None: any
    error: str | None = None
    within_s: float = 8.0
    require: tuple[str, ...] = ()  # substrings of stdout + stderr
    forbid: tuple[str, ...] = ()
    check: Check | None = None  # returns a failure message, or None


@dataclass(frozen=True)
class Case:
    id: str
    cls: str
    code: str  # may hold @PORT@, @OUTPUT_BYTES@, @CODE_MAX@ placeholders
    expect: Expect
    proves: str = ""
    runsc: Expect | None = None  # a harmless difference under gVisor ...
    differs: str = ""  # ... and why it is harmless
    gaps: tuple[tuple[str, str], ...] = ()  # (runtime, description) of a known gap
    safe: Expect | None = None  # the security property that holds even where a gap applies
    stdin: str | None = None
    timeout: float | None = None
    frames: tuple[dict[str, Any], ...] = ()  # sent right after the run frame
    on_output: tuple[dict[str, Any], ...] = ()  # sent once the first output frame has arrived
    build: Callable[[Ctx], str] | None = None  # code computed from the context
    runtime: str | None = None  # the run frame's runtime (None: the default, python)
    files: Callable[[Ctx], list[dict[str, Any]]] | None = None  # the run frame's files in

    @property
    def key(self) -> str:
        return f"{self.cls}/{self.id}"

    def source(self, ctx: Ctx) -> str:
        code = self.build(ctx) if self.build is not None else self.code
        return (
            code.replace("@PORT@", str(ctx.port))
            .replace("@OUTPUT_BYTES@", str(ctx.output_bytes))
            .replace("@CODE_MAX@", str(ctx.code_max_bytes))
        )

    def expected(self, runtime: str) -> Expect:
        return self.runsc if runtime == "runsc" and self.runsc is not None else self.expect

    def gap(self, runtime: str) -> str | None:
        return dict(self.gaps).get(runtime)


# --- expectation helpers ------------------------------------------------------------------------

TIMEOUT_S = 2.0  # what cases that must be stopped by the wall clock ask for
TIMEOUT_BOUND_S = TIMEOUT_S + 6.0  # started -> exit frame, kill overshoot included (generous: runsc, load)
BOMB_TIMEOUT_S = 10.0  # bombs that must end by themselves get room to do so on a loaded machine
BOMB_BOUND_S = BOMB_TIMEOUT_S + 8.0  # killing a container of 64 processes takes longer
QUICK_S = 5.0  # a run that must end promptly on its own


def exits(code: int | None = 0, *codes: int | None, **kw: Any) -> Expect:
    return Expect(reasons=("exit",), exit_codes=(code, *codes), **kw)


def any_exit(**kw: Any) -> Expect:
    return Expect(reasons=("exit",), exit_codes=None, **kw)


def times_out(**kw: Any) -> Expect:
    kw.setdefault("within_s", TIMEOUT_BOUND_S)
    return Expect(reasons=("timeout",), exit_codes=(None,), **kw)


def ooms(**kw: Any) -> Expect:
    return Expect(reasons=("oom",), exit_codes=(None,), **kw)


def output_limited(**kw: Any) -> Expect:
    kw.setdefault("within_s", QUICK_S)
    kw.setdefault("check", check_output_cap)
    return Expect(reasons=("output_limit",), exit_codes=(None,), **kw)


def refused(code: str) -> Expect:
    return Expect(reasons=(), exit_codes=None, error=code, within_s=QUICK_S)


def denied(*labels: str, **kw: Any) -> Expect:
    """A probe program printed ``DENIED <label> <errno>`` for every label and ``ALLOWED`` for none."""
    require = tuple(f"DENIED {label} " for label in labels) + tuple(kw.pop("require", ()))
    forbid = ("ALLOWED", *kw.pop("forbid", ()))
    kw.setdefault("within_s", QUICK_S)
    return exits(0, require=require, forbid=forbid, **kw)


def all_of(*checks: Check) -> Check:
    def run(out: Outcome, ctx: Ctx) -> str | None:
        for check in checks:
            problem = check(out, ctx)
            if problem:
                return problem
        return None

    return run


def check_output_cap(out: Outcome, ctx: Ctx) -> str | None:
    exit_ = out.exit or {}
    cap = out.limits.get("output_bytes", ctx.output_bytes)
    total = exit_.get("stdout_bytes", -1) + exit_.get("stderr_bytes", -1)
    if not exit_.get("truncated"):
        return "truncated is not true"
    if total != cap:
        return f"stdout_bytes + stderr_bytes = {total}, expected exactly output_bytes = {cap}"
    return None


def check_frame_budget(out: Outcome, ctx: Ctx) -> str | None:
    """The run's frames as sent stayed within its frame budget (2 x output_bytes by default, see
    app/core/budget.py), it was cut there (truncated), and its stream ended properly."""
    from app.core.budget import ALWAYS_KEPT, FrameBudget

    budget = FrameBudget(2 * ctx.output_bytes)

    def as_sent(frame: dict[str, Any]) -> str:  # the server's compact JSON (pydantic's)
        return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)

    spent = sum(budget.cost(f["type"], as_sent(f), f.get("data")) for f in out.frames if f["type"] not in ALWAYS_KEPT)
    if not (out.exit or {}).get("truncated"):
        return "truncated is not true"
    if spent > budget.limit_bytes:
        return f"{spent} bytes of frames as sent, over the budget of {budget.limit_bytes}"
    return None


def check_ascii_received_exactly_cap(out: Outcome, ctx: Ctx) -> str | None:
    received = len(out.output.encode("utf-8"))
    cap = out.limits.get("output_bytes", ctx.output_bytes)
    if received != cap:
        return f"the client received {received} bytes of output, expected exactly {cap}"
    return None


def check_min_elapsed(seconds: float) -> Check:
    def run(out: Outcome, ctx: Ctx) -> str | None:
        if out.elapsed_s < seconds:
            return f"the run ended after {out.elapsed_s:.2f} s, before the program's own {seconds} s"
        return None

    return run


def check_line_value(prefix: str, expected: str) -> Check:
    def run(out: Outcome, ctx: Ctx) -> str | None:
        for line in out.stdout.splitlines():
            if line.startswith(prefix + " "):
                value = line[len(prefix) + 1 :].strip()
                return None if value == expected else f"{prefix} is {value!r}, expected {expected!r}"
        return f"no line starting with {prefix!r}"

    return run


def check_count_below(prefix: str, limit: int) -> Check:
    """``<prefix> N ...``: N must be positive and below ``limit``."""

    def run(out: Outcome, ctx: Ctx) -> str | None:
        for line in out.stdout.splitlines():
            if line.startswith(prefix + " "):
                n = int(line.split()[1])
                return None if 0 < n < limit else f"{prefix} {n}: expected 0 < n < {limit}"
        return f"no line starting with {prefix!r}"

    return run


def check_stdout_is(text: str) -> Check:
    def run(out: Outcome, ctx: Ctx) -> str | None:
        return None if out.stdout == text else f"stdout is {out.stdout[:200]!r}, expected {text!r}"

    return run


# --- probe prelude: programs report each attempt as ALLOWED or DENIED <errno name> ----------------

PRELUDE = r"""
import ctypes, errno, os, platform, sys
_libc = ctypes.CDLL(None, use_errno=True)
def _errname(e):
    return errno.errorcode.get(e, str(e))
def attempt(label, fn, *args):
    try:
        r = fn(*args)
    except OSError as e:
        print("DENIED", label, _errname(e.errno), flush=True)
    else:
        print("ALLOWED", label, repr(r)[:60], flush=True)
def syscall(label, nr, *args):
    if platform.machine() != "x86_64":
        print("SKIPPED", label, "(syscall numbers are x86_64)", flush=True)
        return
    argv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ctypes.set_errno(0)
    r = _libc.syscall(ctypes.c_long(nr), *argv)
    if r == -1:
        print("DENIED", label, _errname(ctypes.get_errno()), flush=True)
    else:
        print("ALLOWED", label, r, flush=True)
def write_to(path, data=b""):
    with open(path, "wb") as f:
        f.write(data)
"""


def probe(body: str) -> str:
    return PRELUDE + body.strip("\n") + "\n"


# --- the corpus ------------------------------------------------------------------------------------

CORPUS: list[Case] = []
CLASS_DOCS: dict[str, str] = {}


def cls(name: str, doc: str) -> Callable[..., Case]:
    CLASS_DOCS[name] = doc

    def add(id: str, code: str, expect: Expect, **kw: Any) -> Case:
        case = Case(id=id, cls=name, code=code, expect=expect, **kw)
        CORPUS.append(case)
        return case

    return add


# CPU: busy and sleeping infinite loops, CPU hogs -------------------------------------------------
add = cls("cpu", "busy and sleeping infinite loops; threads and processes hogging CPU")
add("busy_loop", "while True:\n    pass\n", times_out(), timeout=TIMEOUT_S, proves="wall-clock limit")
add(
    "busy_loop_ignoring_signals",
    "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGALRM):\n"
    "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n",
    times_out(),
    timeout=TIMEOUT_S,
    proves="the wall-clock kill is SIGKILL of the whole container: ignoring signals does not help",
)
add("sleep_loop", "import time\nwhile True:\n    time.sleep(0.5)\n", times_out(), timeout=TIMEOUT_S)
add("sleep_forever", "import time\ntime.sleep(10**6)\n", times_out(), timeout=TIMEOUT_S)
add("select_forever", "import select\nselect.select([], [], [])\n", times_out(), timeout=TIMEOUT_S)
add("signal_pause", "import signal\nsignal.pause()\n", times_out(), timeout=TIMEOUT_S)
add(
    "ticking_until_killed",
    "import time\ni = 0\nwhile True:\n    print('tick', i, flush=True)\n    i += 1\n    time.sleep(0.1)\n",
    times_out(require=("tick 0\n", "tick 3\n")),
    timeout=TIMEOUT_S,
    proves="output is streamed live before the wall-clock kill",
)
add(
    "cpu_threads",
    "import threading\ndef spin():\n    while True:\n        pass\n"
    "for _ in range(4):\n    threading.Thread(target=spin, daemon=True).start()\nspin()\n",
    times_out(),
    timeout=TIMEOUT_S,
)
add(
    "cpu_processes",
    "import os\nfor _ in range(2):\n    if os.fork() == 0:\n        break\nwhile True:\n    pass\n",
    times_out(),
    timeout=TIMEOUT_S,
    proves="CPU-bound children are killed with the container",
)

# Fork and thread bombs -----------------------------------------------------------------------------
add = cls("bombs", "fork and thread bombs against the pids limit (64)")
PIDS_GAP = (
    "runsc",
    "under gVisor the pids cgroup counts the sandbox's own host threads (~40 at idle), so the server "
    "gives it headroom (RUNSC_PIDS_HEADROOM in app/sandbox/runtimes.py; started.limits.pids says 256) and the "
    "guest's processes are not refused with EAGAIN at 64: a bomb is bounded by memory and the wall clock instead",
)
BOMB_SAFE = Expect(reasons=("exit", "timeout", "oom", "output_limit"), exit_codes=None, within_s=BOMB_BOUND_S)
add(
    "fork_until_refused",
    "import os, time\nkids = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(2)\n"
    "            os._exit(0)\n        kids += 1\nexcept OSError as e:\n"
    "    print('LIMIT', kids, type(e).__name__, e.strerror, flush=True)\n",
    exits(0, require=("LIMIT", "BlockingIOError", "Resource temporarily unavailable"), within_s=BOMB_TIMEOUT_S),
    proves="pids limit: fork fails with EAGAIN below 64 processes",
    gaps=(PIDS_GAP,),
    safe=BOMB_SAFE,
    timeout=BOMB_TIMEOUT_S,
)
add(
    "classic_fork_bomb",
    "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    times_out(within_s=TIMEOUT_S + 8),
    runsc=Expect(reasons=("exit", "timeout", "oom"), exit_codes=(2, None), within_s=TIMEOUT_S + 8),
    differs="under gVisor the guest's processes are bounded by memory, not the pids cgroup (it counts gVisor's "
    "own threads and gets headroom): the bomb ends at the memory limit (oom), at the wall clock, or, if it "
    "still exhausts the cgroup, with gVisor's sentry (exit 2): either way it is contained and ended",
    proves="a fork bomb is contained and ended; the server keeps serving",
    timeout=TIMEOUT_S,
)
add(
    "thread_until_refused",
    "import threading, time\nn = 0\ntry:\n    while n < 2000:\n"
    "        threading.Thread(target=time.sleep, args=(3,), daemon=True).start()\n        n += 1\n"
    "    print('NO LIMIT', n, flush=True)\nexcept RuntimeError as e:\n    print('LIMIT', n, e, flush=True)\n",
    exits(
        0,
        require=("LIMIT", "can't start new thread"),
        forbid=("NO LIMIT",),
        check=check_count_below("LIMIT", 64),
        within_s=BOMB_TIMEOUT_S,
    ),
    proves="pids limit counts threads: thread creation fails below 64",
    gaps=(PIDS_GAP,),
    safe=BOMB_SAFE,
    timeout=BOMB_TIMEOUT_S,
)
add(
    "thread_bomb_unhandled",
    "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n",
    exits(1, require=("RuntimeError: can't start new thread",), within_s=BOMB_TIMEOUT_S),
    gaps=(PIDS_GAP,),
    safe=BOMB_SAFE,
    timeout=BOMB_TIMEOUT_S,
)
add(
    "spawn_until_refused",
    "import subprocess\nprocs = []\ntry:\n    while True:\n"
    "        procs.append(subprocess.Popen(['sleep', '30']))\nexcept OSError as e:\n"
    "    print('LIMIT', len(procs), type(e).__name__, flush=True)\n",
    exits(0, require=("LIMIT", "BlockingIOError"), check=check_count_below("LIMIT", 64), within_s=BOMB_TIMEOUT_S),
    gaps=(PIDS_GAP,),
    safe=BOMB_SAFE,
    timeout=BOMB_TIMEOUT_S,
)
add(
    "bash_fork_bomb",
    "import subprocess\nsubprocess.run(['bash', '-c', ':(){ :|:& };:'])\nimport time\ntime.sleep(60)\n",
    Expect(reasons=("timeout", "output_limit"), exit_codes=(None,), within_s=TIMEOUT_S + 8),
    runsc=Expect(reasons=("exit", "timeout", "output_limit"), exit_codes=(2, None), within_s=TIMEOUT_S + 8),
    differs="as classic_fork_bomb: under gVisor the sandbox itself dies (exit 2)",
    timeout=TIMEOUT_S,
)

# Memory bombs -------------------------------------------------------------------------------------
add = cls("memory", "memory bombs: instant, gradual, in /tmp and /dev/shm (tmpfs, 16 MiB), in a child")
add("instant", "b = b'x' * (512 << 20)\n", ooms(), proves="memory limit (128 MiB, no swap): reason oom")
add(
    "gradual",
    "import time\nheap = []\nwhile True:\n    heap.append(b'x' * (4 << 20))\n    time.sleep(0.005)\n",
    ooms(),
    proves="memory limit: a slowly growing heap is killed as oom",
)
add("list_of_ints", "x = list(range(10**8))\n", ooms())
add("string_doubling", "s = 'x'\nwhile True:\n    s += s\n", ooms())
add(
    "mmap_touch",
    "import mmap\nm = mmap.mmap(-1, 1 << 30)\nfor i in range(0, 1 << 30, 4096):\n    m[i] = 1\n",
    ooms(),
)
add(
    "deep_python_recursion",
    "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1)\nf(0)\n",
    ooms(),
    proves="Python 3.11 frames live on the heap: unbounded recursion ends as oom, not a host problem",
)
add(
    "tmp_fill",
    "import os\ntry:\n    with open('/tmp/fill', 'wb') as f:\n        while True:\n"
    "            f.write(b'x' * (1 << 20))\n            f.flush()\nexcept OSError as e:\n"
    "    print('FULL', os.path.getsize('/tmp/fill'), os.strerror(e.errno), flush=True)\n",
    exits(0, require=("No space left on device",), check=check_line_value("FULL", "16777216 No space left on device")),
    proves="/tmp is a 16 MiB tmpfs: ENOSPC at exactly 16 MiB",
)
add(
    "devshm_fill",
    "import os\ntry:\n    with open('/dev/shm/fill', 'wb') as f:\n        while True:\n"
    "            f.write(b'x' * (1 << 20))\n            f.flush()\nexcept OSError as e:\n"
    "    print('FULL', os.path.getsize('/dev/shm/fill'), os.strerror(e.errno), flush=True)\n",
    exits(0, check=check_line_value("FULL", "16777216 No space left on device")),
    proves="/dev/shm is a 16 MiB tmpfs: ENOSPC at exactly 16 MiB",
)
add(
    "tmpfs_then_heap",
    "try:\n    with open('/tmp/fill', 'wb') as f:\n        while True:\n            f.write(b'x' * (1 << 20))\n"
    "            f.flush()\nexcept OSError:\n    print('TMP FULL', flush=True)\nb = b'y' * (512 << 20)\n",
    ooms(require=("TMP FULL",)),
    proves="tmpfs pages are charged to the same 128 MiB",
)
add(
    "shm_mmap_then_heap",
    "import mmap, os\nfd = os.open('/dev/shm/m', os.O_CREAT | os.O_RDWR)\nos.ftruncate(fd, 15 << 20)\n"
    "m = mmap.mmap(fd, 15 << 20)\nm[:] = b'y' * (15 << 20)\nprint('SHM MAPPED', flush=True)\n"
    "b = b'x' * (120 << 20)\n",
    ooms(require=("SHM MAPPED",)),
)
add(
    "oom_in_child_only",
    "import os\npid = os.fork()\nif pid == 0:\n    b = b'x' * (512 << 20)\n    os._exit(0)\n"
    "_, status = os.waitpid(pid, 0)\nprint('CHILD SIGNAL', os.WTERMSIG(status) if os.WIFSIGNALED(status) else None)\n",
    exits(0, check=check_line_value("CHILD SIGNAL", "9")),
    runsc=ooms(),
    differs="under gVisor the host OOM killer can only kill the sandbox as a whole (the sentry holds all "
    "guest memory): the run ends as oom rather than only the child dying",
    proves="oom is reported only when the program itself was killed; a killed child is the program's business",
)
add(
    "memoryerror_for_impossible_size",
    "try:\n    b = bytearray(1 << 40)\nexcept MemoryError:\n    print('MemoryError', flush=True)\n",
    exits(0, require=("MemoryError",)),
    runsc=ooms(),
    differs="gVisor grants a 1 TiB allocation that Linux's overcommit check refuses, then the sandbox is "
    "killed as oom: contained either way",
)

# Disk fill and writes to read-only paths -----------------------------------------------------------
add = cls("disk", "disk fill; writes to the read-only root (/, /etc, /usr, /home ...); noexec tmpfs")
WRITE_DENIED = ("EROFS", "EACCES", "EPERM")
add(
    "many_small_files",
    "import os\nn = 0\ntry:\n    while True:\n        with open(f'/tmp/f{n}', 'wb') as f:\n"
    "            f.write(b'x' * 100)\n        n += 1\nexcept OSError as e:\n"
    "    print('FILES', n, __import__('errno').errorcode[e.errno], flush=True)\n",
    exits(0, require=("ENOSPC",)),
)
add(
    "write_root",
    probe("attempt('create-/x', write_to, '/x')\nattempt('mkdir-/newdir', os.mkdir, '/newdir')\n"),
    denied("create-/x", "mkdir-/newdir"),
    proves="read-only root filesystem",
)
add(
    "write_etc",
    probe(
        "attempt('append-/etc/passwd', lambda: open('/etc/passwd', 'a').write('evil::0:0::/:/bin/sh\\n'))\n"
        "attempt('create-/etc/cron.d/x', write_to, '/etc/cron.d/x')\n"
        "attempt('symlink-/etc/evil', os.symlink, '/tmp', '/etc/evil')\n"
    ),
    denied("append-/etc/passwd", "create-/etc/cron.d/x", "symlink-/etc/evil"),
    proves="read-only /etc",
)
add(
    "write_usr",
    probe(
        "import os as _os\nattempt('overwrite-stdlib', write_to, _os.__file__)\n"
        "attempt('create-/usr/local/bin/python3', write_to, '/usr/local/bin/python3')\n"
        "attempt('create-/usr/lib/x', write_to, '/usr/lib/x')\n"
    ),
    denied("overwrite-stdlib", "create-/usr/local/bin/python3", "create-/usr/lib/x"),
    proves="the interpreter and its standard library cannot be replaced for later runs",
)
add(
    "write_home_and_friends",
    probe(
        "for p in ('/home/x', '/root/x', '/var/tmp/x', '/opt/x', '/srv/x', '/run/x', '/var/lib/x', '/dev/x'):\n"
        "    attempt('create-' + p, write_to, p)\n"
    ),
    denied(*(f"create-{p}" for p in ("/home/x", "/root/x", "/var/tmp/x", "/opt/x", "/srv/x", "/run/x", "/dev/x"))),
)
add(
    "chmod_chown",
    probe(
        "attempt('chmod-/etc/passwd', os.chmod, '/etc/passwd', 0o666)\n"
        "write_to('/tmp/mine')\nattempt('chown-root', os.chown, '/tmp/mine', 0, 0)\n"
    ),
    denied("chmod-/etc/passwd", "chown-root"),
)
add(
    "proc_sys_writes",
    probe(
        "for p in ('/proc/sys/kernel/hostname', '/proc/sys/vm/drop_caches', '/proc/sysrq-trigger',"
        " '/sys/kernel/mm/transparent_hugepage/enabled'):\n"
        "    attempt('open-' + p, lambda p=p: open(p, 'wb').close())\n"
    ),
    denied(
        "open-/proc/sys/kernel/hostname",
        "open-/proc/sys/vm/drop_caches",
        "open-/proc/sysrq-trigger",
        "open-/sys/kernel/mm/transparent_hugepage/enabled",
    ),
    runsc=denied("open-/proc/sys/kernel/hostname", "open-/proc/sys/vm/drop_caches"),
    differs="gVisor has no /proc/sysrq-trigger and no /sys/kernel/mm (ENOENT is printed as DENIED too; "
    "both opens are denied either way)",
    proves="kernel tunables are out of reach (opened for writing, nothing written)",
)
add(
    "exec_from_tmp",
    probe(
        "import subprocess\nfor d in ('/tmp', '/dev/shm'):\n    path = d + '/x.sh'\n"
        "    with open(path, 'w') as f:\n        f.write('#!/bin/sh\\necho EXECUTED\\n')\n    os.chmod(path, 0o755)\n"
        "    attempt('exec-' + d, lambda: subprocess.run([path], capture_output=True))\n"
    ),
    denied("exec-/tmp", "exec-/dev/shm", forbid=("EXECUTED",)),
    proves="/tmp and /dev/shm are noexec: no dropped native binaries",
)
add(
    "mknod_device",
    probe(
        "import stat\nfor name, dev in (('mem', (1, 1)), ('sda', (8, 0))):\n"
        "    attempt('mknod-' + name, os.mknod, '/tmp/' + name, stat.S_IFCHR | 0o600, os.makedev(*dev))\n"
        "    if os.path.exists('/tmp/' + name):\n        attempt('open-' + name, os.open, '/tmp/' + name, os.O_RDWR)\n"
    ),
    denied("mknod-mem", "mknod-sda"),
    runsc=exits(0, require=("DENIED open-mem ENXIO", "DENIED open-sda ENXIO"), forbid=("ALLOWED open",)),
    differs="gVisor lets the program create device nodes on its tmpfs (it ignores nodev and CAP_MKNOD), but "
    "they lead only to the sentry's own emulated devices: opening /dev/mem's or a disk's numbers fails ENXIO",
    proves="no device node can be made (runc) or opened (gVisor) to reach host memory or disks",
)
add(
    "remount_root_rw",
    probe("syscall('remount-rw', 165, None, b'/', None, 32 | 1 << 5, None)\n"),
    denied("remount-rw"),
)

# Secrets and host information --------------------------------------------------------------------
add = cls("secrets", "the server's environment (canary), /proc/1/environ, the Docker socket, host mounts, cgroups")


def check_no_host_users(out: Outcome, ctx: Ctx) -> str | None:
    users = {line.split(":", 1)[0] for line in out.stdout.splitlines() if ":" in line}
    leaked = users & ctx.host_only_users
    if leaked:
        return f"host-only users visible in the sandbox: {sorted(leaked)}"
    if "runner" not in users:
        return "the image's own user 'runner' is missing: this is not the image's /etc/passwd"
    return None


add(
    "environment",
    "import os\nfor k, v in sorted(os.environ.items()):\n    print(f'{k}={v}')\n",
    exits(
        0,
        require=("HOME=/tmp\n", "PATH=/usr/local/bin:/usr/bin:/bin\n"),
        forbid=(CANARY_NAME, "SCE_", "DOCKER", "VIRTUAL_ENV"),
        check=lambda out, ctx: (
            None
            if {line.split("=", 1)[0] for line in out.stdout.splitlines()}
            <= {"HOME", "HOSTNAME", "LANG", "LOGNAME", "PATH", "PYTHONDONTWRITEBYTECODE", "USER"}
            else f"unexpected variables: {out.stdout!r}"
        ),
    ),
    proves="the program's environment is the fixed sandbox one: no server variable, no canary",
)
add(
    "proc1_environ",
    probe(
        "def show(p):\n    data = open(p, 'rb').read()\n"
        "    print(data.replace(b'\\0', b'\\n').decode(errors='replace'))\n    return len(data)\n"
        "attempt('read-/proc/1/environ', show, '/proc/1/environ')\n"
    ),
    exits(0, forbid=(CANARY_NAME,)),
    proves="PID 1 in the sandbox is docker-init with the sandbox environment: the server's is not there",
)
add(
    "all_process_environments",
    "import os\nfor pid in os.listdir('/proc'):\n    if pid.isdigit():\n"
    "        for what in ('environ', 'cmdline'):\n            try:\n"
    "                print(pid, what, open(f'/proc/{pid}/{what}', 'rb').read()[:4000])\n"
    "            except OSError as e:\n                print(pid, what, 'unreadable', e.errno)\nprint('DONE')\n",
    exits(0, require=("DONE",), forbid=(CANARY_NAME, "app serve", "hypercorn", "pytest")),
)
add(
    "filesystem_canary_scan",
    "import os\nneedle = ('sce-' + 'canary-').encode()\nhits = files = 0\n"
    "for top in ('/etc', '/tmp', '/run', '/var', '/home', '/root', '/opt', '/srv', '/usr/local', '/dev/shm'):\n"
    "    for root, dirs, names in os.walk(top):\n        for name in names:\n"
    "            path = os.path.join(root, name)\n            try:\n"
    "                if os.path.isfile(path) and os.path.getsize(path) < (1 << 20):\n"
    "                    files += 1\n                    if needle in open(path, 'rb').read():\n"
    "                        hits += 1\n                        print('HIT', path)\n"
    "            except OSError:\n                pass\nprint('SCAN DONE', files, 'files', hits, 'hits')\n",
    exits(0, require=("SCAN DONE",), forbid=("HIT ",)),
    proves="no file reachable from the sandbox holds the server's secret",
)
add(
    "etc_passwd_is_the_images",
    "print(open('/etc/passwd').read())\n",
    exits(0, require=("runner:x:10001:10001:",), check=check_no_host_users),
    proves="seed experiment: /etc/passwd is the image's own (user 'runner' 10001), no host user in it",
)
add(
    "etc_shadow",
    probe("attempt('read-/etc/shadow', lambda: open('/etc/shadow').read())\n"),
    denied("read-/etc/shadow"),
)
add(
    "docker_socket",
    probe(
        "import socket\nfor p in ('/var/run/docker.sock', '/run/docker.sock', '/run/containerd/containerd.sock',"
        " '/var/run/docker/containerd/containerd.sock'):\n"
        "    print('EXISTS' if os.path.exists(p) else 'ABSENT', p)\n"
        "    s = socket.socket(socket.AF_UNIX)\n    attempt('connect-' + p, s.connect, p)\n"
    ),
    denied("connect-/var/run/docker.sock", "connect-/run/containerd/containerd.sock", forbid=("EXISTS",)),
    proves="no Docker or containerd socket inside the sandbox",
)

ALLOWED_MOUNT_POINTS = {
    "/",
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/mqueue",
    "/dev/shm",
    "/sys",
    "/sys/fs/cgroup",
    "/tmp",
    "/etc/resolv.conf",
    "/etc/hostname",
    "/etc/hosts",
    "/usr/sbin/docker-init",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/acpi",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/kcore",
    "/proc/latency_stats",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
}
ALLOWED_BIND_SOURCES = ("/var/lib/docker/containers/", "/usr/bin/tini", "/usr/bin/docker-init", "/usr/sbin/docker-init")


def check_mounts(out: Outcome, ctx: Ctx) -> str | None:
    """mountinfo: every mount point is Docker's standard set; file binds only of Docker's own files."""
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[0].isdigit():
            continue
        root, point = fields[3], fields[4]
        if point not in ALLOWED_MOUNT_POINTS and not point.startswith("/sys/fs/cgroup/"):
            return f"unexpected mount point {point}: {line}"
        fstype = fields[fields.index("-") + 1] if "-" in fields else ""
        if fstype in ("ext4", "xfs", "btrfs", "overlay") and point != "/" and not root.startswith(ALLOWED_BIND_SOURCES):
            return f"a host path is bind-mounted: {root} on {point}"
    return None


add(
    "host_mounts",
    "print(open('/proc/self/mountinfo').read())\n",
    exits(0, forbid=("docker.sock", "/work/main", "/home/", "/root"), check=check_mounts),
    proves="filesystem isolation: only Docker's standard mounts; no host directory, no Docker socket",
)
add(
    "server_files_invisible",
    probe(
        "for p in ('/work/main/app/settings.py', '/etc/docker/daemon.json', '/var/lib/docker', '/proc/1/root/work'):\n"
        "    print('EXISTS' if os.path.exists(p) else 'ABSENT', p)\n"
    ),
    exits(0, require=("ABSENT /work/main/app/settings.py",), forbid=("EXISTS",)),
    proves="seed experiment: the server's code and the engine's files are not visible",
)
add(
    "cgroup_limits",
    "import os\nfor name, path in (('MEM', '/sys/fs/cgroup/memory/memory.limit_in_bytes'),\n"
    "                   ('MEM', '/sys/fs/cgroup/memory.max'),\n"
    "                   ('PIDS', '/sys/fs/cgroup/pids/pids.max'), ('PIDS', '/sys/fs/cgroup/pids.max')):\n"
    "    if os.path.exists(path):\n        print(name, open(path).read().strip())\n"
    "print('SWAP', open('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes').read().strip()"
    " if os.path.exists('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes') else 'n/a')\n",
    exits(0, check=all_of(check_line_value("MEM", "134217728"), check_line_value("PIDS", "64"))),
    runsc=exits(0, forbid=("MEM", "PIDS")),
    differs="gVisor exposes no cgroup files to the program; the limits are proved by behaviour (memory and bombs "
    "classes) and by the container's HostConfig in the report",
    proves="the kernel holds the real limits: memory 128 MiB, pids 64",
)


def check_own_uid(stdout: str) -> str | None:
    """``IDS uid euid gid [gid]``: one non-root UID, its own GID, in the default sandbox UID range."""
    line = next((li for li in stdout.splitlines() if li.startswith("IDS ")), "")
    ids = line.replace("[", " ").replace("]", " ").replace(",", " ").split()[1:]
    base, count = (Settings.model_fields[f"sandbox_uid_{n}"].default for n in ("base", "count"))
    if len(ids) != 4 or len(set(ids)) != 1 or not base <= int(ids[0]) < base + count:
        return f"not one UID:GID of its own in the sandbox range: {line!r}"
    return None


add(
    "identity_and_capabilities",
    "import os\nprint('IDS', os.getuid(), os.geteuid(), os.getgid(), os.getgroups())\n"
    "for line in open('/proc/self/status'):\n"
    "    if line.startswith(('Cap', 'NoNewPrivs', 'Seccomp:', 'Uid', 'Gid')):\n        print(line.strip())\n",
    exits(
        0,
        require=("IDS ", "CapEff:\t0000000000000000", "CapPrm:\t0000000000000000"),
        check=all_of(
            lambda out, ctx: check_own_uid(out.stdout),
            lambda out, ctx: (
                "CapBnd is not empty"
                if "CapBnd:\t0000000000000000" not in out.stdout
                else (
                    "NoNewPrivs is not 1" if "NoNewPrivs" in out.stdout and "NoNewPrivs:\t1" not in out.stdout else None
                )
            ),
        ),
    ),
    proves="runs as a UID:GID of its own (in SCE_SANDBOX_UID_BASE's range, never 0) with no capabilities at all "
    "(bounding set empty), no_new_privs",
)
add(
    "process_table",
    "import os\nfor pid in sorted(p for p in os.listdir('/proc') if p.isdigit()):\n"
    "    print(pid, open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')[0].decode())\n",
    exits(0, require=("1 /sbin/docker-init",), forbid=("dockerd", "containerd", "hypercorn", "app serve")),
    proves="PID namespace: only the sandbox's own processes are visible",
)
add(
    "kill_everything",
    "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('nobody to kill')\n",
    exits(1, require=("ProcessLookupError",)),
    proves="kill(-1) reaches nothing: no process outside the sandbox can be signalled",
)
add(
    "kernel_log_and_symbols",
    probe(
        "buf = ctypes.create_string_buffer(4096)\nsyscall('syslog-read-all', 103, 3, buf, 4096)\n"
        "if os.path.exists('/proc/kallsyms'):\n"
        "    addrs = {l.split()[0] for l in open('/proc/kallsyms') if l.strip()}\n"
        "    print('KALLSYMS', 'ZEROED' if addrs <= {'0000000000000000'} else 'ADDRESSES VISIBLE')\n"
    ),
    denied("syslog-read-all", forbid=("ADDRESSES VISIBLE",)),
    runsc=exits(0, require=("ALLOWED syslog-read-all",), forbid=("ADDRESSES VISIBLE", "KALLSYMS")),
    differs="gVisor answers syslog() with its own synthetic boot messages, not the host's kernel log",
    proves="no host kernel log, no kernel addresses",
)
add(
    "hostname",
    "import socket\nprint('HOST', socket.gethostname())\n",
    exits(0, require=("HOST ",), forbid=(f"HOST {socket.gethostname()}\n",)),
    proves="the sandbox has its own hostname (the engine's short container id), not the host's",
)

# Network ----------------------------------------------------------------------------------------------
add = cls("network", "only lo; no route; the host's loopback is not the sandbox's; no raw sockets")
add(
    "interfaces",
    "import os, socket\nprint('SYS', sorted(os.listdir('/sys/class/net')))\n"
    "print('IF', sorted(name for _, name in socket.if_nameindex()))\n",
    exits(0, require=("SYS ['lo']", "IF ['lo']")),
    proves="seed experiment: the only interface is lo",
)
add(
    "routes",
    "rows = [l for l in open('/proc/net/route').read().splitlines()[1:] if l.strip()]\nprint('ROUTES', len(rows))\n"
    "import os\nif os.path.exists('/proc/net/ipv6_route'):\n"
    "    six = [l for l in open('/proc/net/ipv6_route') if l.strip() and not l.rstrip().endswith('lo')]\n"
    "    print('ROUTES6', len(six))\n",
    exits(
        0,
        check=lambda o, c: (
            check_line_value("ROUTES", "0")(o, c)
            or (None if "ROUTES6" not in o.stdout else check_line_value("ROUTES6", "0")(o, c))
        ),
    ),
    proves="seed experiment: no IPv4 route at all, so no default route",
)
add(
    "connect_host_server_port",
    probe(
        "import socket\ns = socket.socket()\ns.settimeout(3)\n"
        "attempt('connect-127.0.0.1:@PORT@', s.connect, ('127.0.0.1', @PORT@))\n"
    ),
    denied("connect-127.0.0.1:@PORT@", require=("ECONNREFUSED",)),
    proves="seed experiment: 127.0.0.1 is the sandbox's own loopback: the server's port on the host is unreachable",
)
add(
    "raw_and_packet_sockets",
    probe(
        "import socket\nattempt('raw-icmp', socket.socket, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n"
        "attempt('raw-tcp', socket.socket, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)\n"
        "attempt('packet', socket.socket, socket.AF_PACKET, socket.SOCK_RAW)\n"
    ),
    denied("raw-icmp", "raw-tcp", "packet"),
    proves="no CAP_NET_RAW: raw and packet sockets refused",
)
add(
    "loopback_server_inside",
    "import socket\nsrv = socket.socket()\nsrv.bind(('127.0.0.1', 8080))\nsrv.listen()\n"
    "c = socket.create_connection(('127.0.0.1', 8080))\na, _ = srv.accept()\nc.sendall(b'ping')\n"
    "print('LOOPBACK', a.recv(4).decode())\nany_ = socket.socket()\nany_.bind(('0.0.0.0', 8081))\nprint('BOUND ANY')\n",
    exits(0, require=("LOOPBACK ping", "BOUND ANY")),
    proves="binding works, on the sandbox's own loopback only (0.0.0.0 has nothing but lo behind it)",
)
add(
    "unix_sockets_isolated",
    probe(
        "import socket\nentries = open('/proc/net/unix').read().splitlines()[1:]\n"
        "print('UNIX SOCKETS', len([e for e in entries if e.strip()]))\n"
        "for name in (b'\\0/containerd-shim/moby/shim.sock', b'\\0/tmp/.X11-unix/X0'):\n"
        "    s = socket.socket(socket.AF_UNIX)\n    attempt('abstract-' + name[1:].decode(), s.connect, name)\n"
    ),
    denied("abstract-/containerd-shim/moby/shim.sock", check=check_line_value("UNIX SOCKETS", "0")),
    proves="abstract unix sockets are per network namespace: the host's shims are unreachable",
)

# Output floods --------------------------------------------------------------------------------------
add = cls("output", "output floods: lines, one endless line, binary, invalid UTF-8, NUL, ANSI and CR, stderr")
EXACT = all_of(check_output_cap, check_ascii_received_exactly_cap)
add(
    "many_lines",
    "while True:\n    print('x' * 79)\n",
    output_limited(check=EXACT),
    proves="output cap: the run is killed at exactly output_bytes",
)
add(
    "one_endless_line",
    "import sys\nwhile True:\n    sys.stdout.write('y' * 4096)\n",
    output_limited(check=all_of(EXACT, lambda o, c: None if "\n" not in o.stdout else "a newline appeared")),
)
add(
    "one_giant_write",
    "import os\nos.write(1, b'z' * (10 << 20))\n",
    output_limited(check=EXACT),
    runsc=Expect(
        reasons=("exit", "output_limit"),
        exit_codes=(0, None),
        within_s=QUICK_S,
        check=lambda o, c: (
            None
            if (o.exit or {}).get("stdout_bytes") == o.limits.get("output_bytes")
            else f"expected exactly the cap: {o.exit}"
        ),
    ),
    differs="gVisor's pipe write(2) returns short (64 KiB accepted of 10 MiB) where Linux blocks for the rest: "
    "the program itself wrote exactly the cap, so the run may end as a plain exit with the cap's bytes",
)
add(
    "binary",
    "import os\nwhile True:\n    os.write(1, os.urandom(65536))\n",
    output_limited(check=lambda o, c: check_frame_budget(o, c) or (None if "\ufffd" in o.stdout else "no U+FFFD")),
    proves="random bytes arrive as text with U+FFFD; mostly escapes as sent, so the frame budget may end the run "
    "before output_bytes raw bytes: output_limit, truncated, within the budget either way",
)
add(
    "invalid_utf8",
    "import os\nwhile True:\n    os.write(1, b'\\xff\\xfe\\xc3(\\xa0\\xa1\\xed\\xa0\\x80\\n')\n",
    output_limited(require=("\ufffd",), check=check_frame_budget),
    proves="invalid UTF-8 arrives as U+FFFD; six bytes as sent for each, so the run's frame budget (2 x "
    "output_bytes as sent) may end it before output_bytes raw bytes: output_limit either way",
)
add(
    "nul_bytes",
    "import os\nwhile True:\n    os.write(1, b'\\0' * 4096)\n",
    output_limited(check=all_of(check_frame_budget, lambda o, c: None if set(o.stdout) == {"\0"} else "not only NULs")),
    proves="NULs pass through as data; each is six bytes as sent (\\u0000), so the frame budget (2 x output_bytes "
    "as sent) ends the run at about a third of output_bytes raw: output_limit, truncated",
)
add(
    "ansi_and_carriage_returns",
    "import sys\nwhile True:\n    sys.stdout.write('\\x1b[31mred\\x1b[0m\\rover\\ttab\\x07\\x08\\n')\n",
    output_limited(require=("\x1b[31mred\x1b[0m\rover\ttab\x07\x08\n",)),
    proves="ANSI escapes, CR and control characters pass through unaltered",
)
add(
    "stderr_flood",
    "import sys\nwhile True:\n    sys.stderr.write('e' * 99 + '\\n')\n",
    output_limited(check=all_of(EXACT, lambda o, c: None if (o.exit or {}).get("stderr_bytes") else "no stderr")),
)
add(
    "interleaved_flood",
    "import sys\nwhile True:\n    sys.stdout.write('o' * 50 + '\\n')\n    sys.stderr.write('e' * 50 + '\\n')\n",
    output_limited(check=EXACT),
)
add(
    "flood_from_child",
    "import os, time\nif os.fork() == 0:\n    while True:\n        os.write(1, b'c' * 1000 + b'\\n')\ntime.sleep(30)\n",
    output_limited(check=EXACT),
)
add(
    "exactly_the_cap",
    "import os\ndata = b'a' * (@OUTPUT_BYTES@ - 1) + b'\\n'\nview = memoryview(data)\n"
    "while view:\n    view = view[os.write(1, view):]\n",
    exits(
        0,
        check=lambda o, c: (
            None
            if (o.exit or {}).get("stdout_bytes") == o.limits.get("output_bytes")
            and not (o.exit or {}).get("truncated")
            else f"expected exactly the cap, untruncated: {o.exit}"
        ),
    ),
    proves="the cap is inclusive: exactly output_bytes is allowed",
)
add(
    "one_byte_over_the_cap",
    "import os\ndata = b'a' * @OUTPUT_BYTES@ + b'\\n'\nview = memoryview(data)\n"
    "while view:\n    view = view[os.write(1, view):]\n",
    output_limited(check=EXACT),
)

# Processes outliving the main one; closed streams ---------------------------------------------------
add = cls("survivors", "daemonised children, double fork, setsid, SIGTERM-proof children; closed stdout/stderr")
add(
    "daemon_child",
    "import os, time\nif os.fork() == 0:\n    time.sleep(60)\n    os._exit(0)\nprint('main done')\n",
    exits(0, require=("main done",), within_s=QUICK_S),
    proves="the run ends when the main program ends; its children die with the container",
)
add(
    "double_fork_setsid",
    "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(60)\n"
    "    os._exit(0)\nprint('main done')\n",
    exits(0, require=("main done",), within_s=QUICK_S),
)
add(
    "child_ignores_sigterm",
    "import os, signal\nif os.fork() == 0:\n    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):\n"
    "        signal.signal(s, signal.SIG_IGN)\n    while True:\n        pass\nprint('main done')\n",
    exits(0, within_s=QUICK_S),
)
add(
    "child_keeps_writing",
    "import os, time\nif os.fork() == 0:\n    while True:\n        print('child', flush=True)\n"
    "        time.sleep(0.05)\ntime.sleep(0.5)\nprint('main done', flush=True)\n",
    exits(0, require=("main done",), within_s=QUICK_S),
)
add(
    "detached_subprocess",
    "import subprocess\nsubprocess.Popen(['sleep', '100'], start_new_session=True)\nprint('main done')\n",
    exits(0, within_s=QUICK_S),
)
add(
    "close_streams_and_run_on",
    "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(1.5)\nos._exit(3)\n",
    exits(3, check=check_min_elapsed(1.4)),
    proves="end of the output streams is not the end of the run: the exit status still arrives",
)
add(
    "close_streams_and_spin",
    "import os\nos.close(1)\nos.close(2)\nwhile True:\n    pass\n",
    times_out(),
    timeout=TIMEOUT_S,
)
add(
    "redirect_streams_to_devnull",
    "import os, time\nfd = os.open('/dev/null', os.O_WRONLY)\nos.dup2(fd, 1)\nos.dup2(fd, 2)\nprint('hidden')\n"
    "time.sleep(0.5)\nos._exit(4)\n",
    exits(4, forbid=("hidden",)),
)

# Exit codes and signals -----------------------------------------------------------------------------
add = cls("exit", "exit codes and signals: os._exit(137) is not oom; SIGSEGV, SIGABRT, SIGKILL, SIGTERM")


def signalled(code: int, name: str, **kw: Any) -> Expect:
    return exits(
        code,
        check=lambda o, c: None if (o.exit or {}).get("signal") == name else f"signal is not {name}: {o.exit}",
        **kw,
    )


add("zero", "pass\n", exits(0))
add("sys_exit_3", "import sys\nsys.exit(3)\n", exits(3))
add("sys_exit_message", "import sys\nsys.exit('bye now')\n", exits(1, require=("bye now",)))
add("os_exit_255", "import os\nos._exit(255)\n", exits(255))
add(
    "os_exit_137_is_not_oom",
    "import os\nos._exit(137)\n",
    exits(137),
    proves="a program's own exit status 137 is reported as exit 137, never as oom",
)
add("segv_ctypes", "import ctypes\nctypes.string_at(0)\n", signalled(139, "SIGSEGV"))
add("segv_kill", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", signalled(139, "SIGSEGV"))
add("abort", "import os\nos.abort()\n", signalled(134, "SIGABRT"))
add("sigkill_self", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", signalled(137, "SIGKILL"))
add("sigterm_self", "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n", signalled(143, "SIGTERM"))
add("sigint_self", "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\nimport time\ntime.sleep(5)\n", exits(1))
add(
    "uncaught_exception",
    "def boom():\n    raise ValueError('boom')\nboom()\n",
    exits(
        1,
        require=('File "main.py", line 2, in boom', "ValueError: boom"),
        forbid=("_main", "exec(code", 'File "<string>"'),
    ),
    proves="tracebacks show the program's lines and none of the bootstrap's",
)
add("keyboard_interrupt", "raise KeyboardInterrupt\n", exits(1, require=("KeyboardInterrupt",)))

# Standard input edge cases --------------------------------------------------------------------------
add = cls("stdin", "reads with no stdin, huge stdin, binary-ish stdin, many frames, stdin after exit")
EOF = {"type": "stdin", "eof": True}
HUGE_STDIN = "".join(f"line {i} {'q' * (i % 50)}\n" for i in range(20_000))
BINARYISH_STDIN = "\x00\x01\x7f\x80é\ud800\r\n\t\x1b[0m"
add(
    "read_with_only_eof",
    "import sys\nprint('READ', repr(sys.stdin.read()))\n",
    exits(0, require=("READ ''",)),
    frames=(EOF,),
    proves="EOF reaches the program after the eof frame",
)
add(
    "read_with_no_eof",
    "import sys\nsys.stdin.read()\n",
    times_out(),
    timeout=TIMEOUT_S,
    proves="a program waiting for input is ended by the wall clock",
)
add(
    "huge_stdin",
    "import sys, hashlib\ndata = sys.stdin.buffer.read()\nprint('GOT', len(data), hashlib.sha256(data).hexdigest())\n",
    exits(
        0,
        check=check_line_value("GOT", f"{len(HUGE_STDIN.encode())} {hashlib.sha256(HUGE_STDIN.encode()).hexdigest()}"),
    ),
    stdin=HUGE_STDIN,
    frames=(EOF,),
)
add(
    "binaryish_stdin",
    "import sys\nprint('BYTES', sys.stdin.buffer.read().hex())\n",
    exits(0, check=check_line_value("BYTES", BINARYISH_STDIN.encode("utf-8", "surrogatepass").hex())),
    stdin=BINARYISH_STDIN,
    frames=(EOF,),
)
add(
    "many_stdin_frames",
    "import sys\nlines = sys.stdin.readlines()\nprint('LINES', len(lines), sum(int(l) for l in lines))\n",
    exits(0, check=check_line_value("LINES", f"500 {sum(range(500))}")),
    frames=(*({"type": "stdin", "data": f"{i}\n"} for i in range(500)), EOF),
)
add(
    "stdin_after_exit",
    "print('bye')\n",
    exits(0, require=("bye",)),
    frames=(*({"type": "stdin", "data": "late\n"} for _ in range(50)), EOF),
)
add(
    "kill_frame",
    "import time\nprint('running', flush=True)\nwhile True:\n    time.sleep(0.1)\n",
    Expect(reasons=("killed",), exit_codes=(None,), within_s=QUICK_S, require=("running",)),
    on_output=({"type": "kill"},),
    proves="the client's kill ends a running program at once",
)

# Tampering with the runner inside the container -------------------------------------------------------
add = cls("tamper", "killing or stopping PID 1, writing /proc/1, ptrace of the init, faking frames, patching exits")
add(
    "sigkill_pid1",
    "import os, signal, time\nos.kill(1, signal.SIGKILL)\ntime.sleep(0.5)\nprint('still here')\n",
    exits(0, require=("still here",)),
    runsc=signalled(137, "SIGKILL"),
    differs="Linux ignores SIGKILL sent to a namespace's init from inside; gVisor delivers it and the whole "
    "sandbox ends (exit 137, not oom): the run ends either way and is reported as it happened",
)
add(
    "sigterm_pid1",
    "import os, signal, time\nos.kill(1, signal.SIGTERM)\ntime.sleep(3)\nprint('survived')\n",
    signalled(143, "SIGTERM"),
    proves="docker-init forwards SIGTERM to the program: the run ends, reported as SIGTERM",
)
add(
    "sigstop_pid1",
    "import os, signal\nos.kill(1, signal.SIGSTOP)\nprint('sent')\n",
    exits(0, require=("sent",)),
    runsc=Expect(reasons=("exit", "timeout"), exit_codes=(0, None), require=("sent",), within_s=TIMEOUT_BOUND_S),
    differs="gVisor lets the program stop its init, so the container cannot exit: the run ends on the program's "
    "own end record (the bootstrap reports its status after the last output; the sandbox is then killed in the "
    "background) or, without it, at the wall clock",
    timeout=TIMEOUT_S,
)
add(
    "write_proc1",
    probe(
        "for p in ('/proc/1/mem', '/proc/1/environ', '/proc/1/attr/current', '/proc/1/comm', '/proc/1/cmdline'):\n"
        "    attempt('write-' + p, write_to, p, b'pwned')\nprint('STILL RUNNING')\n"
    ),
    exits(0, require=("STILL RUNNING", "DENIED write-/proc/1/mem ", "DENIED write-/proc/1/environ ")),
    proves="PID 1's memory and environment cannot be rewritten",
)
add(
    "ptrace_attach_init",
    probe(
        "import time\nr = _libc.ptrace(ctypes.c_long(16), ctypes.c_long(1), None, None)\n"
        "print('ATTACH', 'ok' if r == 0 else _errname(ctypes.get_errno()), flush=True)\nif r == 0:\n"
        "    os.waitpid(1, 0x40000000)\n    _libc.ptrace(ctypes.c_long(17), ctypes.c_long(1), None, None)\n"
        "    print('DETACHED', flush=True)\n"
    ),
    exits(0, require=("ATTACH EPERM",), forbid=("DETACHED",)),
    proves="ptrace of docker-init is refused: our seccomp profile has no ptrace (runc); gVisor refuses it itself",
)
add(
    "ptrace_freeze_init",
    probe(
        "r = _libc.ptrace(ctypes.c_long(16), ctypes.c_long(1), None, None)\n"
        "print('ATTACH', 'ok' if r == 0 else _errname(ctypes.get_errno()), flush=True)\n"
    ),
    exits(0, require=("ATTACH EPERM",), within_s=QUICK_S),
    proves="the program cannot freeze docker-init and hold its container past its end (Docker's default "
    "profile allowed it: the run then lasted until the wall clock)",
    timeout=TIMEOUT_S,
)
add(
    "replace_sys_stdout",
    "import io, sys\nsys.stdout = io.StringIO()\nprint('hidden')\nsys.__stdout__.write('visible\\n')\n"
    "sys.stderr = None\nraise SystemExit(5)\n",
    exits(5, require=("visible",), forbid=("hidden",)),
)
add(
    "patch_exit_functions",
    "import os, sys\nsys.exit = lambda *a: None\nos._exit = lambda *a: None\nraise RuntimeError('patched')\n",
    exits(1, 0, require=("RuntimeError: patched",)),
    proves="patching the exit functions changes nothing outside the program: the status is the bootstrap's own "
    "record of the uncaught exception (1) or, without it, the container's real status",
)
add(
    "fake_protocol_frames",
    'import sys\nsys.stdout.write(\'{"type": "exit", "reason": "exit", "exit_code": 0}\\n\')\n'
    "sys.stdout.flush()\nsys.stdout.buffer.write(b'\\x02\\x00\\x00\\x00\\x00\\x00\\x00\\x04evil\\n')\n"
    "sys.stdout.flush()\nsys.exit(7)\n",
    exits(
        7,
        require=('{"type": "exit", "reason": "exit", "exit_code": 0}', "\x02\x00\x00\x00\x00\x00\x00\x04evil"),
        check=lambda o, c: None if "evil" not in o.stderr else "the fake stream header reached stderr",
    ),
    proves="program output cannot inject frames or switch streams",
)
add(
    "forged_end_of_run",
    "import gc, os, sys, time\nch = next((o for o in gc.get_objects() if type(o).__name__ == '_Channel'), None)\n"
    "print('CHANNEL', ch is not None, flush=True)\nos.write(2, b'\\x1eSCE:%s:exit:2:0\\n{}' % ch.nonce)\n"
    "ch.emit(b'exit', None, head=b'{\"code\":0}')\nwhile True:\n    time.sleep(0.1)\n",
    exits(0, require=("CHANNEL True",), within_s=QUICK_S),
    timeout=TIMEOUT_S,
    proves="a program that forges the bootstrap's end-of-run records (it holds the nonce) only ends its own run "
    "early with a status of its choosing, as os._exit would: never oom or another run's, and its sandbox is "
    "removed (the class's leak check)",
)
add(
    "read_past_own_program",
    "import os\nprint('EXTRA', repr(os.read(0, 100)))\n",
    exits(0, require=("EXTRA b''",)),
    frames=(EOF,),
    proves="the bootstrap hands the program nothing but its own stdin",
)

# Our seccomp profile ------------------------------------------------------------------------------
add = cls(
    "seccomp",
    "our profile (Docker's default minus ptrace, process_vm_*, kcmp, userfaultfd, io_uring): what it refuses, "
    "and ordinary programs that must still run",
)
GVISOR_OWN_KERNEL = (
    "gVisor does not apply the container's seccomp profile to the guest: these calls reach gVisor's own kernel, "
    "which implements tracing and cross-process memory access among the program's own processes only (nothing "
    "of the host is reachable); the host's filter around the sentry is gVisor's own"
)
add(
    "ptrace_own_child",
    probe(
        "r, w = os.pipe()\npid = os.fork()\nif pid == 0:\n"
        "    syscall('ptrace-traceme', 101, 0, 0, 0, 0)\n    os.close(w)\n    os.read(r, 1)\n    os._exit(0)\n"
        "syscall('ptrace-attach-child', 101, 16, pid, 0, 0)\n"
        "syscall('ptrace-seize-child', 101, 0x4206, pid, 0, 0)\n"
        "os.close(w)\nos.waitpid(pid, 0)\nprint('DONE', flush=True)\n"
    ),
    denied("ptrace-traceme", "ptrace-attach-child", "ptrace-seize-child", require=("DONE",)),
    runsc=exits(0, require=("DONE",), within_s=QUICK_S),
    differs=GVISOR_OWN_KERNEL,
    proves="no ptrace at all under runc, not even of the program's own child (PTRACE_TRACEME, ATTACH, SEIZE)",
)
add(
    "process_vm_of_own_child",
    probe(
        "class Iov(ctypes.Structure):\n    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]\n"
        "secret = ctypes.create_string_buffer(b'child memory', 64)\nr, w = os.pipe()\npid = os.fork()\n"
        "if pid == 0:\n    os.close(w)\n    os.read(r, 1)\n    os._exit(0)\n"
        "buf = ctypes.create_string_buffer(64)\nlocal = Iov(ctypes.addressof(buf), 64)\n"
        "remote = Iov(ctypes.addressof(secret), 64)\n"
        "syscall('process-vm-readv', 310, pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)\n"
        "syscall('process-vm-writev', 311, pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)\n"
        "syscall('kcmp', 312, os.getpid(), pid, 0, 0, 0)\nos.close(w)\nos.waitpid(pid, 0)\nprint('DONE', flush=True)\n"
    ),
    denied("process-vm-readv", "process-vm-writev", "kcmp", require=("DONE",)),
    runsc=exits(0, require=("DONE",), within_s=QUICK_S),
    differs=GVISOR_OWN_KERNEL,
    proves="no reading or writing another process's memory, no kcmp",
)
add(
    "userfaultfd_and_io_uring",
    probe(
        "syscall('userfaultfd', 323, 0)\nparams = ctypes.create_string_buffer(120)\n"
        "syscall('io-uring-setup', 425, 4, params)\nsyscall('io-uring-enter', 426, -1, 0, 0, 0, None, 0)\n"
        "syscall('io-uring-register', 427, -1, 0, None, 0)\nprint('DONE', flush=True)\n"
    ),
    denied("userfaultfd", "io-uring-setup", "io-uring-enter", "io-uring-register", require=("DONE",)),
    runsc=exits(0, require=("DONE", "DENIED userfaultfd "), within_s=QUICK_S),
    differs="gVisor has no userfaultfd (ENOSYS) and answers io_uring_setup with its own user-space io_uring "
    "(a descriptor of the sentry's): the host kernel's io_uring is never reached",
    proves="userfaultfd and io_uring, two favourite kernel-exploit interfaces, are out of reach",
)
ORDINARY_S = 15.0  # ordinary programs, on a loaded machine under runsc
add(
    "threads",
    "import threading\nresults = []\ndef work(i):\n    results.append(sum(range(i * 1000)))\n"
    "ts = [threading.Thread(target=work, args=(i,)) for i in range(16)]\nfor t in ts:\n    t.start()\n"
    "for t in ts:\n    t.join()\nprint('THREADS', len(results))\n",
    exits(0, require=("THREADS 16",), within_s=ORDINARY_S),
    proves="ordinary programs still run under the profile: threads",
)
add(
    "subprocess",
    "import subprocess, sys\nout = subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True, "
    "text=True, check=True)\nprint('CHILD SAID', out.stdout.strip())\n"
    "print('SH', subprocess.run(['sh', '-c', 'echo $((1 + 1))'], capture_output=True, text=True).stdout.strip())\n",
    exits(0, require=("CHILD SAID 42", "SH 2"), within_s=ORDINARY_S),
    proves="ordinary programs still run: subprocess (fork, exec, pipes, wait)",
)
add(
    "asyncio",
    "import asyncio\nasync def tick(i):\n    await asyncio.sleep(0.01 * i)\n    return i\n"
    "async def main():\n    r, w = await asyncio.open_connection(*(await start()))\n    w.write(b'ping\\n')\n"
    "    print('ECHO', (await r.readline()).decode().strip())\n    print('GATHER', sum(await asyncio.gather("
    "*(tick(i) for i in range(10)))))\nasync def start():\n    async def echo(r, w):\n"
    "        w.write(await r.readline())\n        await w.drain()\n"
    "    srv = await asyncio.start_server(echo, '127.0.0.1', 0)\n    return srv.sockets[0].getsockname()[:2]\n"
    "asyncio.run(main())\n",
    exits(0, require=("ECHO ping", "GATHER 45"), within_s=ORDINARY_S),
    proves="ordinary programs still run: asyncio (epoll, eventfd, a loopback server)",
)
add(
    "multiprocessing",
    "import multiprocessing as mp\ndef sq(x):\n    return x * x\nif __name__ == '__main__':\n"
    "    with mp.Pool(2) as pool:\n        print('POOL', sum(pool.map(sq, range(100))))\n"
    "    q = mp.Queue()\n    p = mp.Process(target=q.put, args=('from child',))\n    p.start()\n"
    "    print('QUEUE', q.get(timeout=10))\n    p.join()\n",
    exits(0, require=("POOL 328350", "QUEUE from child"), within_s=ORDINARY_S),
    proves="ordinary programs still run: multiprocessing (Pool, Queue, semaphores in /dev/shm)",
)
add(
    "numpy_scientific",
    "import numpy as np, pandas as pd\na = np.random.default_rng(1).random((300, 300))\n"
    "print('INV', bool(np.allclose(a @ np.linalg.inv(a), np.eye(300), atol=1e-6)))\n"
    "print('PANDAS', int(pd.DataFrame({'x': range(10)}).x.sum()))\n",
    exits(0, require=("INV True", "PANDAS 45"), within_s=ORDINARY_S),
    runtime="scientific",
    proves="ordinary programs still run: numpy's BLAS and pandas in the scientific runtime",
)

# Privilege escalation ---------------------------------------------------------------------------------
add = cls("privilege", "setuid, capabilities, mount, unshare, setns, ptrace, keyctl, bpf, modules, setuid binaries")
add(
    "setuid_root",
    probe(
        "attempt('setuid0', os.setuid, 0)\nattempt('setgid0', os.setgid, 0)\n"
        "attempt('setresuid0', os.setresuid, 0, 0, 0)\nattempt('setgroups0', os.setgroups, [0])\n"
    ),
    denied("setuid0", "setgid0", "setresuid0", "setgroups0"),
    proves="no way back to uid 0",
)
add(
    "capabilities",
    probe(
        "class Hdr(ctypes.Structure):\n    _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]\n"
        "class Data(ctypes.Structure):\n    _fields_ = [('effective', ctypes.c_uint32), ('permitted', ctypes.c_uint32),"
        " ('inheritable', ctypes.c_uint32)]\n"
        "hdr = Hdr(0x20080522, 0)\n"
        "data = (Data * 2)(Data(0xffffffff, 0xffffffff, 0xffffffff), Data(0xff, 0xff, 0xff))\n"
        "syscall('capset-all', 126, ctypes.byref(hdr), data)\n"
        "syscall('prctl-ambient-raise-sys-admin', 157, 47, 2, 21, 0, 0)\n"
        "syscall('prctl-clear-no-new-privs', 157, 38, 0, 0, 0, 0)\n"
    ),
    denied("capset-all", "prctl-ambient-raise-sys-admin", "prctl-clear-no-new-privs"),
    proves="no capability can be raised; no_new_privs cannot be cleared",
)
add(
    "mount",
    probe(
        "syscall('mount-tmpfs', 165, b'none', b'/tmp', b'tmpfs', 0, None)\n"
        "syscall('mount-proc', 165, b'proc', b'/tmp', b'proc', 0, None)\n"
        "syscall('umount-tmp', 166, b'/tmp', 2)\n"
    ),
    denied("mount-tmpfs", "mount-proc", "umount-tmp"),
)
add(
    "unshare_namespaces",
    probe(
        "for name, flag in (('mnt', 0x00020000), ('uts', 0x04000000), ('ipc', 0x08000000), ('net', 0x40000000),"
        " ('pid', 0x20000000), ('cgroup', 0x02000000)):\n    syscall('unshare-' + name, 272, flag)\n"
    ),
    denied("unshare-mnt", "unshare-uts", "unshare-ipc", "unshare-net", "unshare-pid", "unshare-cgroup"),
    runsc=exits(
        0,
        require=tuple(f"DENIED unshare-{n} " for n in ("uts", "ipc", "net", "pid")),
    ),
    differs="gVisor grants unshare(CLONE_NEWNS) and (CLONE_NEWCGROUP) without privilege: a new mount table in "
    "the sentry's own VFS, with mount still refused (see 'mount' and 'user_namespace')",
)
add(
    "user_namespace",
    probe(
        "import socket\nsyscall('unshare-user', 272, 0x10000000)\n"
        "caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')]\n"
        "print('CAPEFF', caps[0])\n"
        "attempt('after-write-/etc', write_to, '/etc/evil')\n"
        "attempt('after-write-/', write_to, '/evil')\n"
        "syscall('after-mount-tmpfs', 165, b'none', b'/tmp', b'tmpfs', 0, None)\n"
        "attempt('after-setuid0', os.setuid, 0)\n"
        "print('IF', sorted(n for _, n in socket.if_nameindex()))\n"
    ),
    denied(
        "unshare-user",
        "after-write-/etc",
        "after-write-/",
        "after-mount-tmpfs",
        "after-setuid0",
        require=("IF ['lo']",),
    ),
    runsc=exits(
        0,
        require=(
            "DENIED after-write-/etc ",
            "DENIED after-write-/ ",
            "DENIED after-mount-tmpfs ",
            "DENIED after-setuid0 ",
            "IF ['lo']",
        ),
    ),
    differs="gVisor allows an unprivileged user namespace to a single-threaded process (full capability set inside "
    "it, in the sentry; the bootstrap's output flusher thread now makes the program multi-threaded, so unshare "
    "answers EINVAL): either way the root filesystem stays unwritable, mount and setuid(0) stay refused, and the "
    "only interface is still lo",
    proves="no user namespace under runc; under gVisor one that grants nothing outside it",
)
add(
    "setns_and_chroot",
    probe(
        "fd = os.open('/proc/1/ns/mnt', os.O_RDONLY) if os.path.exists('/proc/1/ns/mnt') else -1\n"
        "syscall('setns-mnt-of-pid1', 308, fd, 0)\n"
        "syscall('chroot-tmp', 161, b'/tmp')\nsyscall('pivot-root', 155, b'/tmp', b'/tmp')\n"
    ),
    denied("setns-mnt-of-pid1", "chroot-tmp", "pivot-root"),
)
add(
    "keyctl_and_keys",
    probe(
        "syscall('keyctl-join-session', 250, 1, None, 0, 0, 0)\n"
        "syscall('add-key', 248, b'user', b'k', b'v', 1, ctypes.c_long(-3))\n"
        "syscall('request-key', 249, b'user', b'k', None, ctypes.c_long(-3))\n"
    ),
    denied("keyctl-join-session", "add-key", "request-key"),
    proves="the kernel keyring is out of reach",
)
add(
    "bpf_and_perf",
    probe(
        "attr = ctypes.create_string_buffer(128)\nsyscall('bpf-prog-load', 321, 5, attr, 128)\n"
        "syscall('bpf-map-create', 321, 0, attr, 128)\n"
        "syscall('perf-event-open', 298, attr, 0, -1, -1, 0)\nsyscall('userfaultfd', 323, 0)\n"
    ),
    denied("bpf-prog-load", "bpf-map-create", "perf-event-open"),
    proves="no eBPF, no perf events",
)
add(
    "kernel_modules_and_reboot",
    probe(
        "syscall('init-module', 175, None, 0, b'')\nsyscall('finit-module', 313, -1, b'', 0)\n"
        "syscall('delete-module', 176, b'ext4', 0)\nsyscall('kexec-load', 246, 0, 0, None, 0)\n"
        "syscall('reboot-cad-off', 169, 0xfee1dead, 672274793, 0, None)\n"
        "syscall('sethostname', 170, b'evil', 4)\nsyscall('iopl', 172, 3)\nsyscall('swapon', 167, b'/tmp/x', 0)\n"
    ),
    denied(
        "init-module",
        "finit-module",
        "delete-module",
        "kexec-load",
        "reboot-cad-off",
        "sethostname",
        "iopl",
        "swapon",
    ),
)
add(
    "open_by_handle_shocker",
    probe("syscall('open-by-handle-at', 304, -100, ctypes.create_string_buffer(64), 0)\n"),
    denied("open-by-handle-at"),
    proves="the 'shocker' host-file escape (open_by_handle_at) is refused",
)
add(
    "setuid_binaries",
    "import subprocess\nfor cmd in (['su', '-c', 'id', 'root'], ['mount', '-t', 'tmpfs', 'none', '/tmp']):\n"
    "    r = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL)\n"
    "    print(cmd[0], 'RC', r.returncode, r.stdout.decode().strip(), r.stderr.decode().strip())\n",
    exits(0, require=("su RC 1", "Authentication failure", "mount RC 32", "must be superuser"), forbid=("uid=0",)),
    proves="setuid-root binaries do not elevate (no_new_privs): su and mount fail",
)

# File descriptors --------------------------------------------------------------------------------------
add = cls("fds", "descriptor exhaustion against nofile 256")
add(
    "open_files",
    "import os\nfds = []\ntry:\n    while True:\n        fds.append(os.open('/dev/null', os.O_RDONLY))\n"
    "except OSError as e:\n    print('EMFILE' if e.errno == 24 else e, len(fds), flush=True)\n",
    exits(0, require=("EMFILE",), check=check_count_below("EMFILE", 257)),
    proves="nofile limit 256: EMFILE",
)
add(
    "sockets",
    "import socket\nsocks = []\ntry:\n    while True:\n        socks.append(socket.socket())\n"
    "except OSError as e:\n    print('EMFILE' if e.errno == 24 else e, len(socks), flush=True)\n",
    exits(0, require=("EMFILE",), check=check_count_below("EMFILE", 257)),
)
add(
    "pipes",
    "import os\npipes = []\ntry:\n    while True:\n        pipes.append(os.pipe())\n"
    "except OSError as e:\n    print('EMFILE' if e.errno == 24 else e, len(pipes), flush=True)\n",
    exits(0, require=("EMFILE",), check=check_count_below("EMFILE", 129)),
)
add(
    "raise_the_limit",
    "import resource\nprint('NOFILE', resource.getrlimit(resource.RLIMIT_NOFILE))\ntry:\n"
    "    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))\n    print('RAISED')\n"
    "except (ValueError, OSError) as e:\n"
    "    print('REFUSED', e)\n",
    exits(0, require=("NOFILE (256, 256)", "REFUSED"), forbid=("RAISED",)),
)

# Huge and odd code inputs -------------------------------------------------------------------------------
add = cls("code", "code at and over the size limit, NUL bytes, deep nesting, surrogates, encoding declarations")


def code_of_size(size: int, head: str = "print('AT LIMIT OK')\n") -> str:
    return head + "#" * (size - len(head.encode()) - 1) + "\n"


add(
    "at_the_size_limit",
    "",
    exits(0, require=("AT LIMIT OK",)),
    build=lambda ctx: code_of_size(ctx.code_max_bytes),
    proves="the code limit is inclusive",
)
add(
    "one_byte_over",
    "",
    refused("code_too_large"),
    build=lambda ctx: code_of_size(ctx.code_max_bytes + 1),
    proves="code over the limit is refused before any sandbox is used (1009)",
)
add(
    "multibyte_over",
    "",
    refused("code_too_large"),
    build=lambda ctx: "#" + "é" * (ctx.code_max_bytes // 2) + "\n",
    proves="the limit counts UTF-8 bytes, not characters",
)
add(
    "nul_byte",
    "print(1)\x00\n",
    exits(1, require=("null bytes",), forbid=("Traceback",)),
)
add(
    "deep_parentheses",
    "(" * 5000 + ")" * 5000 + "\n",
    exits(1, require=("SyntaxError: too many nested parentheses",)),
)
add(
    "deep_brackets",
    "x = " + "[" * 1000 + "]" * 1000 + "\n",
    exits(1, require=("SyntaxError: too many nested parentheses",)),
)
BOOTSTRAP_FRAMES_GAP = (
    "compile() errors other than SyntaxError/ValueError (RecursionError, MemoryError from the parser) escape "
    "app/sandbox/bootstrap.py's handler: the traceback shows the bootstrap's own frames "
    "('File \"<string>\", line …, in _main') instead of a clean error"
)
add(
    "deep_unary",
    "x = " + "-" * 60000 + "1\nprint('computed')\n",
    exits(1, require=("MemoryError",), forbid=('File "<string>"', "_main")),
    safe=exits(1, require=("MemoryError",), forbid=("computed",)),
)
add(
    "long_binop_chain",
    "x = " + "1+" * 30000 + "1\nprint(x)\n",
    exits(1, require=("RecursionError",), forbid=('File "<string>"', "_main")),
    safe=exits(1, require=("RecursionError",)),
)
add(
    "lone_surrogate_in_code",
    "print('\ud800')\n",
    exits(1, require=("SyntaxError",)),
)
add(
    "escaped_surrogate_printed",
    "print('\\udc80')\n",
    exits(0, check=check_stdout_is("\ufffd\n")),
)
add(
    "latin1_declaration",
    "# -*- coding: latin-1 -*-\nprint('é')\n",
    exits(0, check=check_stdout_is("Ã©\n")),
)
add(
    "unknown_encoding",
    "# coding: no-such-codec\nprint(1)\n",
    exits(1, require=("SyntaxError: unknown encoding: no-such-codec",)),
)
add("utf16_declaration", "# coding: utf-16\nprint(1)\n", exits(1, require=("SyntaxError",)))
add("byte_order_mark", "\ufeffprint('bom ok')\n", exits(0, check=check_stdout_is("bom ok\n")))
add("empty", "", exits(0, check=check_stdout_is("")))
add("crlf_and_cr", "print(1)\r\nprint(2)\rprint(3)\n", exits(0, check=check_stdout_is("1\n2\n3\n")))


# Files in: paths, names, counts, sizes, bombs, symlink tricks ------------------------------------------
add = cls(
    "files_in", "files sent in: traversal, absolute paths, device names, counts, sizes, a gzip bomb, symlink tricks"
)


def fin(path: str, content: str = "x", encoding: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"path": path, "content": content}
    if encoding is not None:
        item["encoding"] = encoding
    return item


def files_of(*items: dict[str, Any]) -> Callable[[Ctx], list[dict[str, Any]]]:
    return lambda ctx: list(items)


def file_frames(out: Outcome) -> list[dict[str, Any]]:
    return out.of("file")


def check_file_paths(allowed: set[str], required: frozenset[str] | set[str] = frozenset()) -> Check:
    """Every file frame's path is in ``allowed``, and each of ``required`` came."""

    def run(out: Outcome, ctx: Ctx) -> str | None:
        paths = {f["path"] for f in file_frames(out)}
        if paths - allowed:
            return f"unexpected files out: {sorted(paths - allowed)}"
        if set(required) - paths:
            return f"missing files out: {sorted(set(required) - paths)}"
        return None

    return run


PRINT_FILES = (
    "import os\nfor d, _, names in sorted(os.walk('.')):\n    for n in sorted(names):\n"
    "        p = os.path.join(d, n)[2:]\n        print('FILE', p, os.lstat(p).st_mode >> 12, open(p).read()[:20])\n"
)
for case_id, path, why in (
    ("traversal", "../escape.txt", "'..' never leaves the working directory"),
    ("deep_traversal", "data/../../../etc/cron.d/x", ""),
    ("absolute_path", "/etc/cron.d/x", "absolute paths are refused"),
    ("backslash_traversal", "..\\..\\x", ""),
    ("nul_in_path", "a\x00.txt", ""),
    ("dot_part", "a/./b", ""),
    ("empty_part", "a//b", ""),
    ("trailing_slash", "a/", ""),
    ("lone_surrogate_path", "\ud800.txt", ""),
    ("long_part", "a" * 256, "a part over NAME_MAX (255 bytes) is refused before any sandbox is used"),
):
    add(case_id, "print('ran')\n", refused("bad_message"), files=files_of(fin(path)), proves=why)
add(
    "device_and_reserved_names",
    PRINT_FILES + "import stat\nprint('DEVNULL', stat.S_ISCHR(os.stat('/dev/null').st_mode))\n",
    exits(
        0, require=("FILE con 8 x", "FILE nul 8 x", "FILE dev/null 8 x", "FILE proc/self/environ 8 x", "DEVNULL True")
    ),
    files=files_of(fin("con"), fin("nul"), fin("aux.txt"), fin("dev/null"), fin("proc/self/environ")),
    proves="device-like names are plain files under the working directory: /dev/null and /proc are untouched",
)
add(
    "too_many_files",
    "print('ran')\n",
    refused("bad_message"),
    files=lambda ctx: [fin(f"f{i}.txt") for i in range(21)],
    proves="more files than files_in_max_count (20) are refused before any sandbox is used",
)
add(
    "exactly_the_count",
    "import os\nprint('COUNT', len(os.listdir('.')))\n",
    exits(0, require=("COUNT 20",)),
    files=lambda ctx: [fin(f"f{i}.txt") for i in range(20)],
)
add("duplicate_paths", "print('ran')\n", refused("bad_message"), files=files_of(fin("a.txt"), fin("a.txt")))
add("file_and_folder", "print('ran')\n", refused("bad_message"), files=files_of(fin("a"), fin("a/b")))
add(
    "base64_not_canonical",
    "print('ran')\n",
    refused("bad_message"),
    files=files_of(fin("a.bin", "QR==", "base64")),
    proves="base64 is checked strictly (one canonical spelling)",
)
add(
    "total_over_the_limit",
    "print('ran')\n",
    refused("code_too_large"),
    files=files_of(fin("a.txt", "a" * 400_000), fin("b.txt", "b" * 400_000)),
    proves="files together over files_in_total_bytes are refused before any sandbox is used",
)


def _gzip_bomb(ctx: Ctx) -> list[dict[str, Any]]:
    import base64
    import zlib

    if not _BOMB:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        chunk = bytes(1 << 20)
        data = b"".join(packer.compress(chunk) for _ in range(512)) + packer.flush()
        _BOMB.append(base64.b64encode(data).decode("ascii"))
    return [fin("bomb.gz", _BOMB[0], "base64")]


_BOMB: list[str] = []
add(
    "gzip_bomb_to_disk",
    "import gzip, shutil\ntry:\n    with gzip.open('bomb.gz') as src, open('/tmp/out.bin', 'wb') as dst:\n"
    "        shutil.copyfileobj(src, dst, 1 << 20)\nexcept OSError as e:\n    print('FULL', e.strerror, flush=True)\n",
    exits(0, require=("FULL No space left on device",)),
    files=_gzip_bomb,
    proves="a 0.5 MB gzip of 512 MiB, sent in and unpacked to disk, fills the 16 MiB tmpfs and stops there",
)
add(
    "gzip_bomb_to_memory",
    "import gzip\ndata = gzip.decompress(open('bomb.gz', 'rb').read())\nprint('UNPACKED', len(data))\n",
    ooms(forbid=("UNPACKED",)),
    files=_gzip_bomb,
    proves="the same bomb unpacked in memory ends at the memory limit as oom",
)
add(
    "folder_swapped_for_a_symlink",
    "import os\nprint('IN', open('data/in.csv').read().strip())\nos.rename('data', 'data.old')\n"
    "os.symlink('/etc', 'data')\nos.symlink('/etc/passwd', 'passwd.txt')\nos.symlink('/', 'root')\n"
    "open('data.old/new.txt', 'w').write('mine')\nprint('SWAPPED', os.path.islink('data'), flush=True)\n",
    exits(
        0,
        require=("IN a,b", "SWAPPED True"),
        check=check_file_paths({"data.old/new.txt", "data.old/in.csv"}, {"data.old/new.txt"}),
    ),
    files=files_of(fin("data/in.csv", "a,b\n")),
    proves="a folder of files in replaced by a symlink to /etc (and links to /etc/passwd and /) is never followed "
    "by the files-out walk: only the program's own regular files come back",
)
add(
    "main_py_as_a_file",
    "print('the real program')\n",
    exits(0, require=("the real program",), forbid=("hijacked",)),
    files=files_of(fin("main.py", "print('hijacked')\n")),
    safe=Expect(reasons=("exit",), exit_codes=None, error=None, forbid=("hijacked",), within_s=QUICK_S),
    proves="a file in named like the program's own file does not replace the program",
)

# Files out: links, FIFOs, sockets, sparse files, floods of files, names, files still being written -------
add = cls("files_out", "files sent back: symlinks, FIFOs, sockets, sparse files, 100k tiny files, non-UTF-8 names")
add(
    "symlinks_to_secrets",
    "import os\nos.symlink('/etc/passwd', 'passwd')\nos.symlink('/proc/self/environ', 'environ')\n"
    "os.symlink('/proc/1/root', 'root1')\nos.makedirs('sub')\nos.symlink('/etc', 'sub/etc')\n"
    "os.link('/proc/self/exe', 'hard') if False else None\nopen('ok.txt', 'w').write('ok')\nprint('LINKED')\n",
    exits(0, require=("LINKED",), check=check_file_paths({"ok.txt"}, {"ok.txt"})),
    proves="symbolic links are never followed nor sent back",
)
add(
    "fifo_and_socket",
    "import os, socket\nos.mkfifo('pipe')\ns = socket.socket(socket.AF_UNIX)\ns.bind('sock')\n"
    "open('ok.txt', 'w').write('ok')\nprint('MADE', flush=True)\n",
    exits(0, require=("MADE",), check=check_file_paths({"ok.txt"}, {"ok.txt"}), within_s=QUICK_S),
    proves="a FIFO with no writer does not hang the end of the run; FIFOs and sockets are not sent",
)
add(
    "sparse_file",
    "import os\nwith open('sparse.bin', 'wb') as f:\n    f.truncate(100 << 30)\n"
    "print('SIZE', os.path.getsize('sparse.bin'), 'BLOCKS', os.stat('sparse.bin').st_blocks)\n",
    exits(
        0,
        require=("SIZE 107374182400",),
        check=lambda o, c: (
            None
            if [(f["path"], f.get("omitted")) for f in o.of("file")] == [("sparse.bin", "too_large")]
            else f"files: {[(f['path'], f.get('omitted'), f.get('size')) for f in o.of('file')]}"
        ),
        within_s=QUICK_S,
    ),
    proves="a 100 GiB sparse file costs nothing: past the size limit it is listed as omitted, never read",
)
add(
    "hundred_thousand_tiny_files",
    "import os\nn = 0\ntry:\n    for d in range(100):\n        os.mkdir(f'd{d:03}')\n        for i in range(1000):\n"
    "            open(f'd{d:03}/{i}', 'wb').close()\n            n += 1\nexcept OSError as e:\n"
    "    print('STOPPED', e.strerror)\nprint('MADE', n, flush=True)\n",
    Expect(
        reasons=("exit",),
        exit_codes=(0,),
        require=("MADE",),
        within_s=30.0,
        check=lambda o, c: (
            None
            if (o.exit or {}).get("files_truncated") and len(o.of("file")) <= 20
            else f"files_truncated={(o.exit or {}).get('files_truncated')} files={len(o.of('file'))}"
        ),
    ),
    runsc=Expect(reasons=("exit", "oom", "timeout"), exit_codes=(0, None), within_s=30.0),
    differs="gVisor keeps its tmpfs's inodes and dentries in the sentry's own memory, charged to the sandbox: tens "
    "of thousands of empty files reach the 128 MiB limit before the walk (oom, contained); making them costs the "
    "sentry ~17 s of CPU, so on a slower run the 20 s limit comes first (timeout, contained: 1 of 2 runs on "
    "2026-12-03, peak 109 MB)",
    timeout=20,
    proves="100,000 files end the walk at its entry limit (files_truncated) without holding the run",
)
add(
    "names_not_utf8",
    "import os\nfor name in (b'\\xff\\xfe.bin', b'caf\\xe9.txt', b'ok.txt'):\n"
    "    fd = os.open(name, os.O_CREAT | os.O_WRONLY)\n    os.write(fd, b'x')\n    os.close(fd)\nprint('MADE')\n",
    exits(0, require=("MADE",), check=check_file_paths({"ok.txt"}, {"ok.txt"})),
    proves="names that are not UTF-8 are skipped, the rest still sent",
)
add(
    "still_being_written_at_exit",
    "import os, threading, time\ndef grow():\n    with open('grow.log', 'a') as f:\n        while True:\n"
    "            f.write('x' * 1000 + '\\n')\n            f.flush()\n"
    "threading.Thread(target=grow, daemon=True).start()\n"
    "if os.fork() == 0:\n    with open('child.log', 'a') as f:\n        while True:\n            f.write('c\\n')\n"
    "            f.flush()\ntime.sleep(0.3)\nprint('LEAVING', flush=True)\n",
    exits(
        0,
        require=("LEAVING",),
        within_s=QUICK_S + 5,
        check=lambda o, c: next(
            (
                f"{f['path']}: size {f['size']} but {len(base64.b64decode(f['data']))} bytes"
                for f in o.of("file")
                if "data" in f and f["size"] != len(base64.b64decode(f["data"]))
            ),
            None,
        ),
    ),
    safe=Expect(reasons=("exit", "timeout"), exit_codes=None, within_s=TIMEOUT_BOUND_S + 10),
    timeout=10,
    proves="files still growing at the end (a daemon thread, a forked child) are read once, consistently, and the "
    "run still ends",
)
add(
    "deep_folders",
    "import os\npath = '.'\nfor i in range(40):\n    path = os.path.join(path, 'd')\nos.makedirs(path)\n"
    "open(os.path.join(path, 'deep.txt'), 'w').write('deep')\nprint('DEEP', flush=True)\n",
    exits(0, require=("DEEP",), check=lambda o, c: None if (o.exit or {}).get("files_truncated") else "not truncated"),
    proves="folders deeper than the walk's limit end it (files_truncated), each level one descriptor at most",
)
add(
    "budget_of_files",
    "import os\nfor i in range(14):\n    with open(f'f{i:02}.bin', 'wb') as f:\n        f.write(os.urandom(1000000))\n"
    "print('WROTE', flush=True)\n",
    exits(
        0,
        require=("WROTE",),
        check=lambda o, c: (
            None
            if sum(len(base64.b64decode(f["data"])) for f in o.of("file") if "data" in f) <= 4 * 1_048_576
            and any(f.get("omitted") == "too_large" for f in o.of("file"))
            else "files out beyond the run's rich_output_bytes budget"
        ),
    ),
    proves="files out together stay within the run's budget (rich_output_bytes): the rest are listed as omitted",
)
FORGE = (
    "import gc, sys\nch = None\nf = sys._getframe()\nwhile f is not None and ch is None:\n"
    "    ch = f.f_globals.get('_channel')\n    f = f.f_back\nif ch is None:\n"
    "    ch = next((o for o in gc.get_objects() if type(o).__name__ == '_Channel'), None)\n"
    "print('CHANNEL', ch is not None, flush=True)\n"
)
add(
    "forged_records",
    FORGE + "ch.emit(b'file', {'path': '../../etc/cron.d/evil', 'mime': 'text/plain', 'size': 4}, b'evil')\n"
    "ch.emit(b'file', {'path': '/etc/passwd', 'mime': 'text/plain', 'size': 4}, b'evil')\n"
    "ch.emit(b'file', {'path': 'a/./b', 'mime': 'text/plain', 'size': 4}, b'evil')\n"
    "ch.emit(b'image', {'mime': 'text/html'}, b'<script>alert(1)</script>')\n"
    "ch.emit(b'image', {'mime': 'image/svg+xml', 'width': 10**15, 'height': -5}, b'<svg xmlns=\"x\"/>')\n"
    "ch.emit(b'exit', None, head=b'{\"code\":0}')\n"
    "ch.emit(b'files_end', None, head=b'{\"count\":0,\"files_truncated\":false}')\n"
    "open('ok.txt', 'w').write('ok')\nsys.exit(3)\n",
    exits(
        3,
        0,
        require=("CHANNEL True",),
        check=all_of(
            check_file_paths({"ok.txt"}),
            lambda o, c: next(
                (
                    f"image {i}"
                    for i in o.of("image")
                    if i.get("mime") != "image/png"
                    or not 0 <= i.get("width", 0) <= 10**6
                    or not 0 <= i.get("height", 0) <= 10**6
                ),
                None,
            ),
        ),
    ),
    proves="the program can reach the bootstrap's channel (same process) but forged records stay its own run's: "
    "no path outside the working directory, no other image type, sizes clamped; a forged exit record can at most "
    "choose the program's own status (0 here instead of 3, when it is read before the bootstrap's real one), as "
    "os._exit(0) could: never oom, timeout or another run's",
)
add(
    "os_exit_sends_no_files",
    "import os\nopen('made.txt', 'w').write('x')\nos._exit(0)\n",
    exits(0, check=check_file_paths(set())),
    proves="os._exit means no handlers: no files (documented)",
)

# Images: floods, huge figures --------------------------------------------------------------------------
add = cls("images", "images shown by the program: floods past the budget, huge figures (scientific runtime)")
add(
    "pil_flood",
    "import os\nfrom PIL import Image\nfor i in range(3000):\n"
    "    Image.frombytes('RGB', (64, 64), os.urandom(64 * 64 * 3)).show()\n"
    "print('SHOWN', flush=True)\n",
    Expect(
        reasons=("output_limit",),
        exit_codes=(None,),
        within_s=40.0,
        check=all_of(
            lambda o, c: (
                None
                if sum(len(base64.b64decode(i["data"])) for i in o.of("image") if "data" in i) <= 4 * 1_048_576
                and any(i.get("omitted") == "too_large" for i in o.of("image"))
                else "images beyond the run's budget were sent"
            ),
            check_frame_budget,
        ),
    ),
    runtime="scientific",
    timeout=30,
    proves="3,000 incompressible images: the first fill the run's budget (rich_output_bytes), the rest are omitted, "
    "and their frames count against the run's frame budget: past it the run ends (output_limit)",
)
add(
    "omitted_record_loop",
    FORGE + "while True:\n"
    "    ch.emit(b'image', {'mime': 'image/png', 'width': 1, 'height': 1, 'omitted': 'too_large'})\n",
    Expect(reasons=("output_limit",), exit_codes=(None,), within_s=QUICK_S, check=check_frame_budget),
    proves="issue 30.1: a forged `omitted` image record in a loop (no data, so no rich budget) still costs a frame "
    "each, counted against the run's frame budget: the run ends as output_limit within it, not at its timeout",
)
add(
    "show_loop",
    "from PIL import Image\nim = Image.new('RGB', (1, 1))\nwhile True:\n    im.show()\n",
    Expect(reasons=("output_limit",), exit_codes=(None,), within_s=20.0, check=check_frame_budget),
    runtime="scientific",
    timeout=30,
    proves="issue 30.1: `while True: im.show()` (no forgery) ends as output_limit at the frame budget",
)
add(
    "svg_is_never_sent",
    FORGE + "svg = b'<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(localStorage)</script></svg>'\n"
    "ch.emit(b'image', {'mime': 'image/svg+xml', 'width': 10, 'height': 10}, svg)\nprint('SENT', flush=True)\n",
    exits(
        0,
        require=("SENT",),
        check=lambda o, c: f"image frames sent: {o.of('image')}" if o.of("image") else None,
    ),
    proves="issue 30.2: images are raster only: a forged SVG (a document that runs script when opened as a page) "
    "is dropped by the server, never sent",
)
add(
    "mpl_flood_after_the_budget",
    "import matplotlib.pyplot as plt\nimport numpy as np\nfor i in range(60):\n"
    "    plt.imshow(np.random.default_rng(i).random((400, 400)))\n    plt.show()\nprint('DONE', flush=True)\n",
    Expect(
        reasons=("exit", "timeout"),
        exit_codes=(0, None),
        within_s=40.0,
        check=lambda o, c: (
            None
            if sum(len(base64.b64decode(i["data"])) for i in o.of("image") if "data" in i) <= 4 * 1_048_576
            else "images beyond the run's budget were sent"
        ),
    ),
    runtime="scientific",
    timeout=30,
)
add(
    "huge_figure",
    "import matplotlib.pyplot as plt\nfig = plt.figure(figsize=(300, 300), dpi=100)\nplt.plot([1, 2])\nplt.show()\n"
    "print('SHOWN', flush=True)\n",
    Expect(reasons=("exit", "oom"), exit_codes=None, within_s=40.0, forbid=("SHOWN",)),
    runtime="scientific",
    timeout=30,
    proves="a 30,000 x 30,000 pixel figure fails in the sandbox (matplotlib refuses it, or the memory limit ends it)",
)
add(
    "forged_image_with_the_real_nonce",
    FORGE + "import zlib, struct\n"
    "ihdr = struct.pack('>IIBBBBB', 200000, 200000, 8, 2, 0, 0, 0)\n"
    "chunk = b'IHDR' + ihdr\n"
    "png = b'\\x89PNG\\r\\n\\x1a\\n' + struct.pack('>I', 13) + chunk + struct.pack('>I', zlib.crc32(chunk))\n"
    "ch.emit(b'image', {'mime': 'image/png', 'width': 1, 'height': 1}, png)\nprint('SENT', flush=True)\n",
    exits(
        0,
        require=("SENT",),
        check=lambda o, c: (
            None
            if [(i.get("width"), i.get("height")) for i in o.of("image")] in ([], [(200000, 200000)])
            else f"images: {[(i.get('width'), i.get('height')) for i in o.of('image')]}"
        ),
    ),
    runtime="scientific",
    proves="a PNG's size comes from its own header, never from the record: a client sizes it by what it is",
)

# The scientific runtime's extra surface -------------------------------------------------------------
add = cls(
    "scientific", "numpy, pandas, matplotlib, Pillow: ctypes, native crashes, multiprocessing bombs, BLAS threads"
)
SCI_BOUND_S = 20.0
add(
    "ctypes_null_read",
    "import numpy, ctypes\nctypes.string_at(0)\n",
    # importing numpy under gVisor on a loaded machine: 6.3-7.2 s in the reports, past 8 s in CI once
    signalled(139, "SIGSEGV", within_s=SCI_BOUND_S),
    runtime="scientific",
    timeout=SCI_BOUND_S,
    proves="a native crash ends the run as SIGSEGV and nothing else",
)
add(
    "numpy_native_crash",
    "import numpy as np\nfrom numpy.lib.stride_tricks import as_strided\n"
    "a = as_strided(np.zeros(1), shape=(1 << 40,), strides=(1 << 20,))\nprint(a.sum())\n",
    Expect(reasons=("exit",), exit_codes=(139,), within_s=SCI_BOUND_S),
    runtime="scientific",
    timeout=SCI_BOUND_S,
    proves="numpy reading far outside its buffer crashes with SIGSEGV in the sandbox only",
)
add(
    "numpy_impossible_allocation",
    "import numpy as np\ntry:\n    a = np.ones(10**12)\nexcept MemoryError:\n    print('MemoryError', flush=True)\n",
    exits(0, require=("MemoryError",), within_s=SCI_BOUND_S),
    runsc=ooms(within_s=SCI_BOUND_S),
    differs="gVisor grants an allocation Linux's overcommit check refuses; touching it ends at the memory limit (oom)",
    runtime="scientific",
)
add(
    "numpy_fill_memory",
    "import numpy as np\nblocks = []\nwhile True:\n    blocks.append(np.ones(16 << 20))\n",
    ooms(within_s=SCI_BOUND_S),
    runtime="scientific",
    proves="the scientific runtime's own memory limit (512 MiB) holds: oom",
)
add(
    "blas_threads_stay_one",
    "import os\nos.environ['OPENBLAS_NUM_THREADS'] = '64'\nimport numpy as np\na = np.ones((600, 600))\n"
    "b = a @ a\nprint('THREADS', len(os.listdir('/proc/self/task')), flush=True)\n",
    exits(0, check=check_count_below("THREADS", 4), within_s=SCI_BOUND_S),
    runtime="scientific",
    timeout=SCI_BOUND_S,
    proves="BLAS stays single-threaded (set before the preload): a matrix product does not spend the pids limit "
    "or multiply memory per thread",
)
add(
    "multiprocessing_bomb",
    "import multiprocessing as mp, time\nif __name__ == '__main__':\n    try:\n"
    "        with mp.Pool(500) as pool:\n            print('POOL', len(pool.map(abs, range(1000))), flush=True)\n"
    "    except (OSError, RuntimeError) as e:\n        print('REFUSED', type(e).__name__, flush=True)\n",
    Expect(reasons=("exit", "timeout", "oom"), exit_codes=None, within_s=BOMB_BOUND_S + 10, forbid=("POOL 1000",)),
    runtime="scientific",
    timeout=BOMB_TIMEOUT_S,
    proves="a pool of 500 processes (each a copy of numpy and pandas) is stopped by the pids or memory limit",
)
add(
    "memory_through_threads",
    "import numpy as np, threading\nheld = []\ndef grab():\n    held.append(np.ones(64 << 20 >> 3))\n"
    "    threading.Event().wait()\nthreads = [threading.Thread(target=grab, daemon=True) for _ in range(40)]\n"
    "for t in threads:\n    t.start()\nthreading.Event().wait(10)\n",
    ooms(within_s=SCI_BOUND_S),
    runtime="scientific",
    timeout=BOMB_TIMEOUT_S,
    proves="memory taken from many threads counts against the one limit: oom",
)

# The cases that may still crash gVisor's sentry at the pids limit (exit 2), by name: the programs
# that make many threads or processes and have no gap of their own (the bombs with PIDS_GAP judge
# exit 2 through it; classic_fork_bomb and bash_fork_bomb expect it under runsc). Any other case
# that exits 2 under runsc is a failure, not an excused gap (docs/SECURITY_NOTES.md, runsc pids).
SANDBOX_CRASH_CASES = frozenset(
    {
        "cpu/cpu_threads",
        "cpu/cpu_processes",
        "survivors/daemon_child",
        "survivors/double_fork_setsid",
        "survivors/child_ignores_sigterm",
        "survivors/child_keeps_writing",
        "survivors/detached_subprocess",
    }
)


# --- sanity of the table ----------------------------------------------------------------------------------


def _validate() -> None:
    keys = [case.key for case in CORPUS]
    duplicates = {k for k in keys if keys.count(k) > 1}
    assert not duplicates, f"duplicate corpus ids: {duplicates}"
    unknown = SANDBOX_CRASH_CASES - set(keys)
    assert not unknown, f"SANDBOX_CRASH_CASES names cases that do not exist: {unknown}"
    for case in CORPUS:
        assert case.gaps == () or case.safe is not None, f"{case.key}: a gap needs a safe expectation"
        assert case.runsc is None or case.differs, f"{case.key}: a runsc difference must say why"


_validate()
CLASSES: list[str] = list(dict.fromkeys(case.cls for case in CORPUS))


def by_class(name: str) -> list[Case]:
    return [case for case in CORPUS if case.cls == name]


# --- running a case over the real WebSocket ------------------------------------------------------------------


async def execute(ws_url: str, case: Case, ctx: Ctx, *, deadline_s: float = 90.0) -> Outcome:
    """One connection, one run: send the run frame (and the case's frames), collect until close."""
    frame: dict[str, Any] = {"type": "run", "code": case.source(ctx)}
    if case.stdin is not None:
        frame["stdin"] = case.stdin
    if case.timeout is not None:
        frame["timeout"] = case.timeout
    if case.runtime is not None:
        frame["runtime"] = case.runtime
    if case.files is not None:
        frame["files"] = case.files(ctx)
    out = Outcome(sent_at=time.monotonic())
    try:
        async with asyncio.timeout(deadline_s):
            async with websockets.connect(ws_url, max_size=None, open_timeout=30) as ws:
                await ws.send(json.dumps(frame))
                with contextlib.suppress(websockets.ConnectionClosed):
                    for extra in case.frames:
                        await ws.send(json.dumps(extra))
                pending = list(case.on_output)
                try:
                    async for message in ws:
                        now = time.monotonic()
                        item = json.loads(message)
                        out.frames.append(item)
                        if pending and item.get("type") in ("stdout", "stderr"):
                            for extra in pending:
                                await ws.send(json.dumps(extra))
                            pending = []
                        if item.get("type") == "started":
                            out.started_at = now
                        elif item.get("type") in ("exit", "error"):
                            out.ended_at = now
                except websockets.ConnectionClosed:
                    pass
                out.close_code = ws.close_code
    except TimeoutError:
        out.client_error = f"no end of run within {deadline_s} s"
    except (OSError, websockets.WebSocketException) as exc:
        out.client_error = f"{type(exc).__name__}: {exc}"
    return out


async def execute_all(ws_url: str, cases: Sequence[Case], ctx: Ctx, *, concurrency: int = 4) -> dict[str, Outcome]:
    """Run cases concurrently (longest first, so the wall-clock ones overlap the quick ones)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(case: Case) -> tuple[str, Outcome]:
        async with gate:
            return case.key, await execute(ws_url, case, ctx)

    ordered = sorted(cases, key=lambda c: 0 if c.timeout else 1)
    return dict(await asyncio.gather(*(one(case) for case in ordered)))


# --- judging ---------------------------------------------------------------------------------------------------


def protocol_problems(out: Outcome, ctx: Ctx) -> list[str]:
    """What must hold for every run, whatever the program: PROTOCOL.md's shape, and no leaked secret."""
    problems: list[str] = []
    if out.client_error:
        problems.append(f"client: {out.client_error}")
    types = [f.get("type") for f in out.frames]
    unknown = set(types) - FRAME_TYPES
    if unknown:
        problems.append(f"unknown frame types {unknown}")
    terminal = [i for i, t in enumerate(types) if t in ("exit", "error")]
    if len(terminal) != 1 or terminal[0] != len(types) - 1:
        problems.append(f"expected exactly one terminal frame, last; got {types[-5:]}")
        return problems
    last = out.frames[-1]
    if last["type"] == "error":
        if last.get("code") == "internal":
            problems.append(f"internal error: {last}")
        expected_close = CLOSE_CODES.get(last.get("code", ""))
        if out.close_code != expected_close:
            problems.append(f"error {last.get('code')} closed with {out.close_code}, expected {expected_close}")
    else:
        if "started" not in types:
            if last.get("reason") != "killed":  # a kill before the start is answered without a run
                problems.append("an exit frame without a started frame")
        else:
            begin = types.index("started")
            if set(types[:begin]) - {"queued"} or set(types[begin + 1 : -1]) - MIDDLE_FRAMES:
                problems.append(f"frames out of order: {types[:4]}...{types[-4:]}")
        if out.close_code != 1000:
            problems.append(f"exit closed with {out.close_code}, expected 1000")
        exit_ = last
        if exit_["reason"] != "exit" and (exit_["exit_code"] is not None or exit_["signal"] is not None):
            problems.append(f"reason {exit_['reason']} with an exit code or signal: {exit_}")
        cap = out.limits.get("output_bytes")
        if cap is not None and exit_["stdout_bytes"] + exit_["stderr_bytes"] > cap:
            problems.append(f"more output than the cap {cap}: {exit_}")
    for secret in (ctx.canary, CANARY_NAME):
        if secret in out.output:
            problems.append(f"the server's secret {secret!r} leaked into the output")
    return problems


def expectation_problems(exp: Expect, out: Outcome, ctx: Ctx) -> list[str]:
    problems: list[str] = []
    if exp.error is not None:
        err = out.error
        if err is None or err.get("code") != exp.error:
            problems.append(f"expected error {exp.error}, got {out.summary()}")
        elif out.close_code != CLOSE_CODES[exp.error]:
            problems.append(f"error {exp.error} closed with {out.close_code}")
        return problems
    exit_ = out.exit
    if exit_ is None:
        return [f"expected an exit frame, got {out.summary()}"]
    if exit_["reason"] not in exp.reasons:
        problems.append(f"reason {exit_['reason']!r} not in {exp.reasons}")
    if exp.exit_codes is not None and exit_["exit_code"] not in exp.exit_codes:
        problems.append(f"exit_code {exit_['exit_code']} not in {exp.exit_codes}")
    if out.elapsed_s > exp.within_s:
        problems.append(f"took {out.elapsed_s:.2f} s from started to the end, bound {exp.within_s} s")
    text = out.output
    for needle in exp.require:
        needle = needle.replace("@PORT@", str(ctx.port))
        if needle not in text:
            problems.append(f"missing {needle!r}")
    for needle in exp.forbid:
        if needle in text:
            problems.append(f"forbidden {needle!r} present")
    if exp.check is not None and not problems:
        problem = exp.check(out, ctx)
        if problem:
            problems.append(problem)
    return problems


@dataclass(frozen=True)
class Verdict:
    status: str  # pass | fail | gap (known gap reproduced, safe property held) | fixed (gap no longer seen)
    problems: tuple[str, ...] = ()
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "gap")


SANDBOX_CRASH_GAP = (
    "gVisor sandbox crashed (exit 2): the pids cgroup limit counts gVisor's own host threads; when the "
    "sentry cannot create an OS thread it dies and the run reports exit 2 (the server now gives runsc "
    "RUNSC_PIDS_HEADROOM more; kept for bombs that still reach it)"
)


def known_runtime_gap(case: Case, out: Outcome, ctx: Ctx) -> str | None:
    """An outcome that matches a known, intermittent runtime gap (never one that breaks a security property).

    Only the cases named in ``SANDBOX_CRASH_CASES``: an exit 2 of any other case under runsc fails."""
    exp = case.expected(ctx.runtime)
    if case.key not in SANDBOX_CRASH_CASES:
        return None
    exit_ = out.exit
    if exit_ is None or exit_["reason"] != "exit" or out.elapsed_s > max(exp.within_s, TIMEOUT_BOUND_S):
        return None
    if any(needle in out.output for needle in exp.forbid):
        return None
    if ctx.runtime == "runsc" and exit_["exit_code"] == 2 and (exp.exit_codes is None or 2 not in exp.exit_codes):
        return SANDBOX_CRASH_GAP
    return None


def judge(case: Case, out: Outcome, ctx: Ctx) -> Verdict:
    base = protocol_problems(out, ctx)
    gap = case.gap(ctx.runtime)
    precise = expectation_problems(case.expected(ctx.runtime), out, ctx)
    if precise and not base and gap is None:
        known = known_runtime_gap(case, out, ctx)
        if known is not None:
            return Verdict("gap", tuple(precise), note=known)
    if gap is not None:
        assert case.safe is not None
        safe = expectation_problems(case.safe, out, ctx)
        if base or safe:
            return Verdict("fail", tuple(base + safe), note="the safety property failed")
        if precise:
            return Verdict("gap", tuple(precise), note=gap)
        return Verdict("fixed", (), note=f"known gap no longer reproduces: {gap}")
    problems = base + precise
    return Verdict("fail" if problems else "pass", tuple(problems))


def describe(case: Case, out: Outcome) -> str:
    """A short, human account of an outcome (for assertion messages and the report)."""
    text = out.output
    shown = text if len(text) <= 600 else text[:300] + f" ...[{len(text) - 600} chars]... " + text[-300:]
    return f"{case.key}: {out.summary()} elapsed={out.elapsed_s:.2f}s\n--- output ---\n{shown}"


def with_timeout(case: Case, seconds: float) -> Case:
    return replace(case, timeout=seconds)


# --- the server the corpus runs against ------------------------------------------------------------------------

DEBIAN_BASE_USERS = frozenset(
    [
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "backup",
        "list",
        "irc",
        "gnats",
        "_apt",
        "nobody",
    ]
)
CORPUS_OUTPUT_BYTES = 65_536  # small, so floods end fast; every other case writes far less
CORPUS_CODE_MAX_BYTES = 65_536


def corpus_server_env(canary: str) -> dict[str, str]:
    """Settings for the corpus server: default limits, small output cap, parallel admission, a planted secret."""
    return {
        "SCE_MAX_CONCURRENT_RUNS": "4",
        "SCE_QUEUE_SIZE": "64",
        "SCE_PER_CLIENT_RUNS": "64",
        "SCE_POOL_SIZE": "4",
        "SCE_SCIENTIFIC_POOL_SIZE": "1",
        "SCE_TIMEOUT_S": "8",
        "SCE_OUTPUT_BYTES": str(CORPUS_OUTPUT_BYTES),
        "SCE_CODE_MAX_BYTES": str(CORPUS_CODE_MAX_BYTES),
        CANARY_NAME: canary,  # in the server's own environment: it must never reach a program
    }


def new_canary() -> str:
    import secrets

    return CANARY_PREFIX + secrets.token_hex(12)


def host_only_users(passwd: str = "/etc/passwd") -> frozenset[str]:
    """Users the host has beyond Debian's base set: none of them may appear in the sandbox."""
    try:
        with open(passwd, encoding="utf-8", errors="replace") as f:
            users = {line.split(":", 1)[0] for line in f if ":" in line}
    except OSError:
        return frozenset()
    return frozenset(users - DEBIAN_BASE_USERS)


def make_ctx(runtime: str, port: int, canary: str) -> Ctx:
    return Ctx(
        runtime=runtime,
        port=port,
        canary=canary,
        output_bytes=CORPUS_OUTPUT_BYTES,
        code_max_bytes=CORPUS_CODE_MAX_BYTES,
        host_only_users=host_only_users(),
    )
