"""The bootstrap's session mode, run by the host's Python in a subprocess: programs one after
another in one namespace, as notebook cells, driven through the control channel on stdin."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.sidechannel import Record, SideChannelDemux
from app.sandbox.bootstrap import LOADER, control_frame, encode_program, session_preamble
from app.sandbox.inside.session import CONTROL_EOF, CONTROL_INTERRUPT, CONTROL_PROGRAM, CONTROL_STDIN

NONCE = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


class Session:
    """A session's bootstrap as the server sees it: frames in, records and output out."""

    def __init__(self, workdir: str) -> None:
        self.err = tempfile.TemporaryFile()  # noqa: SIM115  # closed by close()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", LOADER, "--workdir", workdir],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.demux = SideChannelDemux(NONCE, 1 << 24)
        self.seen = b""
        self.before_begin = b""  # the last program's stream before its begin record
        self.stdin.write(session_preamble())
        self.stdin.flush()

    def send(self, kind: bytes, payload: bytes = b"") -> None:
        self.stdin.write(control_frame(kind, payload))
        self.stdin.flush()

    def start(self, code: str, *, filename: str = "main.py", files: tuple[tuple[str, bytes], ...] = ()) -> None:
        self.send(CONTROL_PROGRAM, encode_program(code, nonce=NONCE, filename=filename, files=files))

    def until_end(self, within: float = 20, *, upto: bytes | None = None) -> tuple[str, str, list[Record], int]:
        """stdout text, stderr text, records (the begin's and the exit's left out) and the status, up to the end
        (or, with ``upto``, until stdout holds it: the status is then -1)."""
        out, err, records = self.seen, b"", list[Record]()
        self.seen = b""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no end within {within} s: {out!r} {err!r}"
            ready, _, _ = select.select([self.stdout], [], [], left)
            if not ready:
                continue
            data = os.read(self.stdout.fileno(), 1 << 16)
            assert data, f"the session ended: {out!r} {err!r} {self.stderr()!r}"
            for item in self.demux.feed(data):
                if isinstance(item, bytes):
                    out += item
                    if upto is not None and upto in out:
                        self.seen = out  # what follows is read with the rest of the run
                        return out.decode(), err.decode(), records, -1
                elif item.kind == "stderr":
                    err += item.data or b""
                elif item.kind == "exit":
                    return out.decode(), err.decode(), records, item.meta["code"]
                elif item.kind == "begin":  # the program starts: what came before it is not its own
                    self.before_begin, out = out, b""
                else:
                    records.append(item)

    def run(self, code: str, stdin: bytes | None = b"", **kw: object) -> tuple[str, str, list[Record], int]:
        self.start(code, **kw)  # type: ignore[arg-type]
        if stdin is not None:
            if stdin:
                self.send(CONTROL_STDIN, stdin)
            self.send(CONTROL_EOF)
        return self.until_end()

    def stderr(self) -> bytes:
        self.err.seek(0)
        return self.err.read()

    def close(self) -> int:
        self.stdin.close()
        code = self.proc.wait(10)
        self.err.close()
        return code


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    s = Session(str(tmp_path))
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
        s.proc.wait()


def kinds(records: list[Record]) -> list[str]:
    return [r.kind for r in records]


def test_names_live_on_and_the_last_expression_is_the_result(session: Session) -> None:
    out, err, records, code = session.run("x = 40\ndef f(y):\n    return x + y\nprint('defined')")
    assert (out, err, code) == ("defined\n", "", 0)
    assert kinds(records) == ["files_end"]
    out, _, records, code = session.run("import math\nf(2)")
    assert (out, code) == ("", 0)
    assert [r.data for r in records if r.kind == "result"] == [b"42"]
    _, _, records, _ = session.run("y = f(1)\nNone")  # None is no result, nor is an assignment
    assert "result" not in kinds(records)
    _, _, records, _ = session.run("math.pi, y")
    assert [r.data for r in records if r.kind == "result"] == [b"(3.141592653589793, 41)"]
    assert session.close() == 0  # the server closing the channel ends the session quietly


def test_what_a_thread_prints_between_programs_comes_before_the_next_ones_begin(session: Session) -> None:
    """The server bounds what threads print between runs by the program's begin record, however
    late that output reaches it: so it must precede the record in the stream."""
    session.run(
        "import threading, time\ndef late():\n    time.sleep(0.2)\n    print('late')\n"
        "threading.Thread(target=late).start()"
    )
    session.until_end(upto=b"late\n")  # the thread has printed, no program runs
    out, _, _, code = session.run("print('own')")
    assert (session.before_begin, out, code) == (b"late\n", "own\n", 0)


def test_an_exception_and_sys_exit_end_the_run_not_the_session(session: Session) -> None:
    _, err, records, code = session.run("state = 'kept'\n1/0")
    assert code == 1 and "ZeroDivisionError" in err and 'File "main.py", line 2' in err
    assert [r.meta for r in records if r.kind == "exception"] == [
        {"name": "ZeroDivisionError", "value": "division by zero", "line": 2}
    ]
    assert session.run("import sys\nsys.exit(3)")[3] == 3
    assert session.run("print(state)")[0] == "kept\n"
    _, err, records, code = session.run("print(state +)")  # a syntax error, with its line
    assert code == 1 and "SyntaxError" in err
    assert [r.meta["line"] for r in records if r.kind == "exception"] == [1]
    assert session.run("state")[2][0].data == b"'kept'"


def test_each_run_has_its_own_stdin_and_end_of_file(session: Session) -> None:
    out, _, _, _ = session.run("import sys\nprint(repr(sys.stdin.read()))", b"first\n")
    assert out == "'first\\n'\n"
    out, _, _, _ = session.run("print(repr(input()), repr(sys.stdin.read()))", b"second\nrest")
    assert out == "'second' 'rest'\n"
    # input sent while the program runs, then its end, without closing the channel
    session.start("print(input('name? '))\nprint(sys.stdin.read() == '')")
    session.send(CONTROL_STDIN, b"Ada\n")
    session.send(CONTROL_EOF)
    assert session.until_end()[0] == "name? Ada\nTrue\n"


def test_an_interrupt_stops_the_program_and_the_session_goes_on(session: Session) -> None:
    session.start("import time\nn = 0\nwhile True:\n    n += 1\n    print(n, flush=True)\n    time.sleep(0.01)")
    session.until_end(upto=b"1\n")
    session.send(CONTROL_INTERRUPT)
    _, err, _, code = session.until_end(within=5)
    assert code == 1 and "KeyboardInterrupt" in err
    assert session.run("n > 0")[2][0].data == b"True"
    # a program blocked reading its stdin is interrupted too
    session.start("print('reading', flush=True)\ninput()")
    session.until_end(upto=b"reading\n")
    session.send(CONTROL_INTERRUPT)
    assert "KeyboardInterrupt" in session.until_end(within=5)[1]
    # an interrupt between programs is nobody's: the next program is not hit by it
    session.send(CONTROL_INTERRUPT)
    assert session.run("print('fine')")[:2] == ("fine\n", "")


def test_a_program_that_ignores_sigint_is_not_stopped_by_an_interrupt(session: Session) -> None:
    session.start(
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('on', flush=True)\ntime.sleep(1)\nprint('done')"
    )
    session.send(CONTROL_EOF)
    session.until_end(upto=b"on\n")
    session.send(CONTROL_INTERRUPT)
    out, _, _, code = session.until_end()
    assert (out, code) == ("on\ndone\n", 0)  # the server's 2 s grace then ends the session


def test_files_out_are_those_this_run_created_or_changed(session: Session) -> None:
    _, _, records, _ = session.run("open('a.txt', 'w').write('1')\nopen('b.txt', 'w').write('2')")
    assert [r.meta["path"] for r in records if r.kind == "file"] == ["a.txt", "b.txt"]
    _, _, records, _ = session.run("open('b.txt', 'w').write('22')")
    assert [(r.meta["path"], r.data) for r in records if r.kind == "file"] == [("b.txt", b"22")]
    _, _, records, _ = session.run("print(open('in.txt').read())", files=(("in.txt", b"given"),))
    assert [r for r in records if r.kind == "file"] == []
    assert session.run("print(sorted(__import__('os').listdir()))")[0] == "['a.txt', 'b.txt', 'in.txt']\n"


def test_threads_left_running_print_between_runs_and_it_arrives(session: Session) -> None:
    session.run(
        "import threading, time\nthreading.Thread(target=lambda: (time.sleep(0.3), print('late')), daemon=True).start()"
    )
    out, _, _, _ = session.run("import time\ntime.sleep(0.6)\nprint('next')")
    assert out == "late\nnext\n"


def test_the_run_names_its_code_and_tracebacks_show_that_runs_lines(session: Session) -> None:
    session.run("def g():\n    return 1/0")
    _, err, records, _ = session.run("\n\ng()", filename="cell2.py")
    assert 'File "cell2.py", line 3' in err
    assert [r.meta["line"] for r in records if r.kind == "exception"] == [3]
