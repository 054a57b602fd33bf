"""The in-sandbox bootstrap, run by the host's Python 3.11 (the image's version) in a subprocess.

What a user notices: their program behaves like ``python main.py``: tracebacks show their own
lines and none of ours, stdin after the program belongs to the program, output is line-buffered;
files sent in are in its working directory, files it makes come back, images it shows arrive in
order with its prints, and nothing outside its working directory ever leaks out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from app.core.sidechannel import Record, SideChannelDemux
from app.sandbox.bootstrap import BOOTSTRAP, LOADER, RICH_BOOTSTRAP, FilesOutLimits, encode_program, preamble

NONCE = "5f1e0c6a9b2d4e7f8a1b3c5d7e9f0a2b"


def run(
    code: str,
    stdin: bytes = b"",
    *,
    files: Sequence[tuple[str, bytes]] = (),
    out: FilesOutLimits | None = None,
    args: Sequence[str] = (),
    filename: str = "main.py",
) -> subprocess.CompletedProcess[bytes]:
    """The bootstrap as the server sees it: ``sys.stderr``'s records taken out of stdout and put
    before what reached fd 2 itself (``raw_stdout`` keeps stdout as it came)."""
    with tempfile.TemporaryDirectory(prefix="sce-bootstrap-test-") as workdir:
        p = subprocess.run(
            [sys.executable, "-I", "-c", LOADER, "--workdir", workdir, *args],
            input=preamble(rich="--rich" in args)
            + encode_program(code, nonce=NONCE, files=files, out=out, filename=filename)
            + stdin,
            capture_output=True,
            timeout=60,
            cwd="/tmp",
        )
    p.raw_stdout = p.stdout  # type: ignore[attr-defined]
    p.stdout, err = take_stderr(p.stdout)
    p.stderr = err + p.stderr
    return p


def test_the_container_command_is_a_small_loader_and_the_bootstrap_comes_on_stdin() -> None:
    from app.sandbox.runtimes import runtimes_from
    from app.settings import Settings

    for runtime in runtimes_from(Settings()).values():
        assert sum(map(len, runtime.command())) < 1024  # the engine handles a 20 KB command line slowly
        assert runtime.stdin_preamble().endswith((RICH_BOOTSTRAP if runtime.rich else BOOTSTRAP).encode())
    # a stdin closed before (or while) the bootstrap arrives ends the sandbox quietly
    for cut in (b"", preamble()[:3], preamble()[:5000]):
        p = subprocess.run([sys.executable, "-I", "-c", LOADER], input=cut, capture_output=True, timeout=60)
        assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")


def test_the_loader_runs_the_compiled_bootstrap_only_on_the_python_it_was_compiled_for() -> None:
    # compiled and source halves that say which one ran: the code object on a matching magic
    # number, the source (compiled in the sandbox) on any other, so another Python still works
    import importlib.util
    import marshal

    code = marshal.dumps(compile("print('compiled')", "<string>", "exec"))
    source = b"print('source')"
    for magic, ran in ((importlib.util.MAGIC_NUMBER, b"compiled"), (b"\x00\x00\r\n", b"source")):
        data = b"%d %d %s\n" % (len(code), len(source), magic.hex().encode()) + code + source
        p = subprocess.run([sys.executable, "-I", "-c", LOADER], input=data, capture_output=True, timeout=60)
        assert (p.returncode, p.stdout, p.stderr) == (0, ran + b"\n", b"")
    # and the real bootstrap through the fallback runs a program like the compiled one
    from app.sandbox import bootstrap

    other = bootstrap._preamble(BOOTSTRAP, b"\x00\x00\r\n")
    with tempfile.TemporaryDirectory(prefix="sce-bootstrap-test-") as workdir:
        p = subprocess.run(
            [sys.executable, "-I", "-c", LOADER, "--workdir", workdir],
            input=other + encode_program("print(6 * 7)", nonce=NONCE),
            capture_output=True,
            timeout=60,
        )
    assert p.stdout.startswith(b"42\n") and b':exit:10:0\n{"code":0}' in p.stdout


STDERR_RECORD = re.compile(rb"\x1eSCE:" + NONCE.encode() + rb":stderr:2:([0-9]+)\n\{\}")


def test_the_bootstrap_is_a_module_sent_without_what_only_checkers_read() -> None:
    """ruff and mypy see a real module; the sandbox gets the same code without docstrings,
    annotations or TYPE_CHECKING imports (each would cost every container something at start)."""
    import ast

    from app.sandbox.inside import bootstrap as inside

    source = Path(inside.__file__).read_text()
    assert inside._channel is None and not isinstance(sys.stderr, inside._Stderr)  # importing it ran nothing
    sent = ast.parse(BOOTSTRAP)

    def names(tree: ast.AST) -> list[str]:
        return sorted(n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef))

    assert names(sent) == names(ast.parse(source))
    assert not [n for n in ast.walk(sent) if isinstance(n, ast.AnnAssign) or getattr(n, "returns", None)]
    assert "typing" not in BOOTSTRAP and '"""' not in BOOTSTRAP
    # smaller than the string program it replaced (60,212 bytes): the rich output's and the
    # session's code come only to the sandboxes that use them (preamble(rich=True), session_preamble)
    assert len(preamble()) < 55_000
    assert "_session_main" not in BOOTSTRAP and "_fill_backend" not in BOOTSTRAP  # nor the rich one's


def test_the_program_starts_with_no_module_loaded_beyond_a_plain_interpreters() -> None:
    probe = "import sys\nprint(sorted(sys.modules))"
    plain = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, timeout=60, check=True)
    p = run(probe)
    assert set(eval(p.stdout.split(b"\n")[0])) - set(eval(plain.stdout)) <= {"atexit"}


def take_stderr(stdout: bytes) -> tuple[bytes, bytes]:
    """stdout without the ``stderr`` records, and their text in order."""
    out, err, pos = [], [], 0
    for m in STDERR_RECORD.finditer(stdout):
        if m.start() < pos:
            continue
        out.append(stdout[pos : m.start()])
        n = int(m.group(1))
        err.append(stdout[m.end() : m.end() + n])
        pos = m.end() + n
    out.append(stdout[pos:])
    return b"".join(out), b"".join(err)


END_MARKER = b"\x1eSCE:" + NONCE.encode() + b":exit:2:0\n{}"


def split(stdout: bytes) -> tuple[bytes, list[Record]]:
    """Ordinary output and the image and file records, as the server sees them (the end's own
    ``exit`` record left out: see ``ending``)."""
    items = _items(stdout)
    text = b"".join(i for i in items if isinstance(i, bytes))
    return text, [i for i in items if isinstance(i, Record) and i.kind != "exit"]


def _items(stdout: bytes) -> list[bytes | Record]:
    demux = SideChannelDemux(NONCE, 1 << 26)
    return demux.feed(stdout) + demux.finish()


def ending(p: subprocess.CompletedProcess[bytes]) -> int | None:
    """The status the exit record announces, checked to be the last thing on stdout, after the
    stderr marker as the last thing there; None when the process sent no end."""
    items = _items(p.stdout)
    exits = [i for i in items if isinstance(i, Record) and i.kind == "exit"]
    if not exits:
        assert END_MARKER not in p.stderr
        return None
    assert len(exits) == 1 and items[-1] is exits[0], items[-3:]
    assert p.stderr.endswith(END_MARKER) and p.stderr.count(END_MARKER) == 1, p.stderr[-200:]
    code = exits[0].meta["code"]
    assert isinstance(code, int)
    return code


def sent_files(records: list[Record]) -> dict[str, Record]:
    return {r.meta["path"]: r for r in records if r.kind == "file"}


def test_program_reads_exactly_its_own_stdin() -> None:
    p = run("import sys\nprint(repr(sys.stdin.read()))", b"12\nabc")
    assert split(p.stdout)[0] == b"'12\\nabc'\n"
    assert p.returncode == 0


def test_traceback_shows_user_lines_and_no_bootstrap_frames() -> None:
    p = run("def f():\n    return 1 / 0\n\nf()\n")
    err = p.stderr.decode()
    assert p.returncode == 1
    assert 'File "main.py", line 4, in <module>' in err
    assert "return 1 / 0" in err
    assert "ZeroDivisionError" in err
    assert "<string>" not in err and "_main" not in err


def test_syntax_error_is_reported_like_python_main_py() -> None:
    p = run("print(1\n")
    assert p.returncode == 1
    assert 'File "main.py", line 1' in p.stderr.decode()
    assert "SyntaxError" in p.stderr.decode()
    assert "Traceback" not in p.stderr.decode()


def test_main_module_identity_and_exit_status() -> None:
    p = run("import sys, __main__\nprint(__name__, __file__, sys.argv, __main__.__file__)\nsys.exit(7)")
    assert split(p.stdout)[0] == b"__main__ main.py ['main.py'] main.py\n"
    assert p.returncode == 7


def test_user_excepthook_is_honoured() -> None:
    p = run("import sys\nsys.excepthook = lambda *a: print('mine', a[0].__name__)\nraise KeyError(1)")
    assert split(p.stdout)[0] == b"mine KeyError\n"


def test_utf8_program_with_non_ascii_output() -> None:
    p = run("print('héllo ✓')")
    assert split(p.stdout)[0].decode() == "héllo ✓\n"


def test_no_program_means_a_quiet_exit(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-I", "-c", BOOTSTRAP, "--workdir", str(tmp_path)],
        input=b"",
        capture_output=True,
        timeout=30,
    )
    assert p.returncode == 0 and p.stdout == b"" and p.stderr == b""


def test_source_is_found_by_traceback_and_inspect_inside_the_program() -> None:
    code = (
        "import inspect, traceback\n"
        "def f():\n"
        "    return 1 / 0\n"
        "try:\n"
        "    f()\n"
        "except ZeroDivisionError:\n"
        "    traceback.print_exc()\n"
        "print(inspect.getsource(f), end='')\n"
    )
    p = run(code)
    assert "    return 1 / 0" in p.stderr.decode()
    assert split(p.stdout)[0].decode() == "def f():\n    return 1 / 0\n"


def test_files_in_are_in_the_working_directory_before_the_program_starts() -> None:
    code = (
        "import os\n"
        "print(os.getcwd() == os.environ.get('X', os.getcwd()), open('data.csv').read(), end='')\n"
        "print(open('sub/dir/b.bin', 'rb').read())\n"
        "import helper; print(helper.VALUE)\n"
        "import sys; print(sys.stdin.read())\n"
    )
    files = [("data.csv", b"a,b\n1,2\n"), ("sub/dir/b.bin", b"\x00\xff"), ("helper.py", b"VALUE = 42\n")]
    p = run(code, b"stdin after files", files=files)
    text, records = split(p.stdout)
    assert text == b"True a,b\n1,2\nb'\\x00\\xff'\n42\nstdin after files\n", p.stderr
    assert sent_files(records) == {}  # sent in, left unchanged: not sent back


def test_created_and_changed_files_come_back_and_links_never_do(tmp_path: Path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("not yours")
    code = (
        "import os\n"
        "open('out.txt', 'w').write('result')\n"
        "os.makedirs('plots/deep')\n"
        "open('plots/deep/r.csv', 'w').write('x\\n1\\n')\n"
        "open('changed.txt', 'w').write('new')\n"
        f"os.symlink({str(secret)!r}, 'link.txt')\n"
        "os.symlink('/etc', 'etc-link')\n"
        "os.mkfifo('fifo')\n"
        "open(b'bad-\\xff.txt', 'w').write('x')\n"
        "print('done')\n"
    )
    p = run(code, files=[("changed.txt", b"old"), ("same.txt", b"same")])
    text, records = split(p.stdout)
    assert text == b"done\n", p.stderr
    got = sent_files(records)
    assert sorted(got) == ["changed.txt", "out.txt", "plots/deep/r.csv"]
    assert got["out.txt"].data == b"result" and got["out.txt"].meta["mime"] == "text/plain"
    assert got["plots/deep/r.csv"].data == b"x\n1\n" and got["plots/deep/r.csv"].meta["size"] == 4
    assert got["changed.txt"].data == b"new"
    assert records[-1] == Record("files_end", {"count": 3, "files_truncated": False}, b"", None)


def test_file_limits_omit_without_reading_and_count_truncates() -> None:
    code = (
        "f = open('sparse.bin', 'wb'); f.truncate(100 * 1024 * 1024); f.close()\n"
        "open('a.txt', 'w').write('a' * 10)\n"
        "open('b.txt', 'w').write('b' * 10)\n"
        "open('c.txt', 'w').write('c' * 10)\n"
    )
    limits = FilesOutLimits(max_count=3, max_file_bytes=1000, max_total_bytes=15, max_image_bytes=1000)
    p = run(code, out=limits)
    records = split(p.stdout)[1]
    got = sent_files(records)
    assert sorted(got) == ["a.txt", "b.txt", "c.txt"]
    assert got["a.txt"].data == b"a" * 10
    assert got["b.txt"].omitted == "too_large" and got["b.txt"].meta["size"] == 10  # past the total
    assert records[-1].meta == {"count": 3, "files_truncated": True}  # sparse.bin is the 4th, sorted


def test_files_come_back_after_sys_exit_and_uncaught_errors_but_not_os_exit() -> None:
    for code, status, expected in [
        ("open('r.txt', 'w').write('1')\nimport sys\nsys.exit(3)", 3, True),
        ("open('r.txt', 'w').write('1')\nraise ValueError('x')", 1, True),
        ("import atexit\natexit.register(lambda: open('r.txt', 'w').write('1'))", 0, True),
        ("open('r.txt', 'w').write('1')\nimport os\nos._exit(4)", 4, False),
    ]:
        p = run(code)
        assert p.returncode == status, code
        assert ("r.txt" in sent_files(split(p.stdout)[1])) is expected, code


def test_a_forged_record_with_another_nonce_is_plain_output() -> None:
    p = run("print('\\x1eSCE:' + 'a' * 32 + ':image:2:0\\n{}')")
    text, records = split(p.stdout)
    assert text == b"\x1eSCE:" + b"a" * 32 + b":image:2:0\n{}\n"
    assert [r.kind for r in records] == ["files_end"]


mpl = pytest.importorskip  # the host's matplotlib and Pillow (dev extras) stand in for the image's


def test_plt_show_sends_png_images_in_order_with_prints() -> None:
    mpl("matplotlib")
    code = (
        "import matplotlib.pyplot as plt\n"
        "print('before')\n"
        "plt.plot([1, 2, 3]); plt.figure(); plt.bar([1], [2])\n"
        "plt.show()\n"
        "print('between', len(plt.get_fignums()))\n"
        "plt.plot([3, 2, 1])\n"
        "print('after', end='')\n"
    )
    p = run(code, args=["--rich"])
    demux = SideChannelDemux(NONCE, 1 << 26)
    items = demux.feed(p.stdout) + demux.finish()
    kinds = [i.kind if isinstance(i, Record) else i for i in items]
    assert kinds == [b"before\n", "image", "image", b"between 0\nafter", "image", "files_end", "exit"], p.stderr
    first = items[1]
    assert isinstance(first, Record) and first.data is not None
    assert first.data.startswith(b"\x89PNG") and first.meta == {"mime": "image/png", "width": 640, "height": 480}
    assert p.stderr == END_MARKER


def test_figure_show_sends_that_figure_only() -> None:
    mpl("matplotlib")
    code = (
        "import matplotlib.pyplot as plt\n"
        "a = plt.figure(figsize=(2, 1)); b = plt.figure(figsize=(3, 1))\n"
        "b.show()\n"
        "print(plt.get_fignums())\n"
    )
    p = run(code, args=["--rich"])
    text, records = split(p.stdout)
    assert p.stderr == END_MARKER and text == b"[1]\n"
    assert [(r.kind, r.meta.get("width")) for r in records] == [("image", 300), ("image", 200), ("files_end", None)]


def test_image_limits_omit_but_the_program_goes_on() -> None:
    mpl("matplotlib")
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.show()\nprint('still here')\n"
    p = run(code, args=["--rich"], out=FilesOutLimits(max_image_bytes=100))
    text, records = split(p.stdout)
    assert text == b"still here\n"
    assert records[0].kind == "image" and records[0].omitted == "too_large" and records[0].data is None


def test_pil_show_sends_a_png() -> None:
    mpl("PIL")
    code = "from PIL import Image\nImage.new('RGB', (30, 20), 'red').show()\nImage.new('CMYK', (5, 5)).show()\n"
    p = run(code, args=["--rich"])
    records = split(p.stdout)[1]
    assert [(r.kind, r.meta.get("width"), r.meta.get("height")) for r in records] == [
        ("image", 30, 20),
        ("image", 5, 5),
        ("files_end", None, None),
    ], p.stderr


def test_preload_imports_before_the_program_arrives() -> None:
    mpl("numpy")
    p = run("import sys\nprint('numpy' in sys.modules)", args=["--preload", "numpy,no_such_module"])
    assert split(p.stdout)[0] == b"True\n" and p.stderr == END_MARKER


def test_encode_program_rejects_a_bad_nonce() -> None:
    with pytest.raises(ValueError):
        encode_program("print(1)", nonce="XYZ")


def test_a_forked_child_that_runs_to_the_end_sends_nothing_twice() -> None:
    code = (
        "import os\n"
        "open('r.txt', 'w').write('1')\n"
        "pid = os.fork()\n"
        "if pid:\n"
        "    os.waitpid(pid, 0)\n"
        "print('end', 'parent' if pid else 'child')\n"
    )
    p = run(code)
    text, records = split(p.stdout)
    assert sorted(text.splitlines()) == [b"end child", b"end parent"]
    assert [r.kind for r in records] == ["file", "files_end"]


def test_a_folder_too_deep_stops_the_walk_with_files_truncated() -> None:
    code = "import os\nos.makedirs('/'.join(['d'] * 40))\nopen('/'.join(['d'] * 40) + '/f.txt', 'w').write('x')\n"
    p = run(code)
    records = split(p.stdout)[1]
    assert [r.kind for r in records] == ["files_end"] and records[0].meta["files_truncated"] is True


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("print('hi')", 0),
        ("import sys\nsys.exit(7)", 7),
        ("import sys\nsys.exit(-1)", 255),
        ("import sys\nsys.exit('bye')", 1),
        ("raise ValueError('x')", 1),
        ("print(1", 1),
        ("import atexit, sys\natexit.register(print, 'late')\nsys.exit(3)", 3),
        ("import os, sys\nos._exit = print\nsys.exit(5)", 5),  # the program's own os._exit is not the one that leaves
    ],
)
def test_a_program_that_ends_by_itself_announces_its_own_status_last(code: str, status: int) -> None:
    p = run(code)
    assert p.returncode == status
    assert ending(p) == status


def test_the_process_leaves_right_after_its_end_records() -> None:
    # the interpreter's teardown is skipped: a __del__ it would run cannot write after the end
    code = "class Noisy:\n    def __del__(self):\n        print('teardown')\nkept = Noisy()\nprint('body')"
    p = run(code)
    assert p.returncode == 0 and ending(p) == 0
    assert p.raw_stdout.startswith(b"body\n") and p.raw_stdout.endswith(b'{"code":0}')  # type: ignore[attr-defined]
    assert b"teardown" not in p.raw_stdout + p.stderr  # type: ignore[attr-defined]


def test_os_exit_sends_no_end_but_what_was_printed_arrives() -> None:
    p = run("import os\nprint('done')\nos._exit(4)")
    assert p.returncode == 4 and ending(p) is None
    assert split(p.stdout)[0] == b"done\n"


def test_stdout_and_stderr_keep_the_programs_order_when_stdout_is_buffered() -> None:
    # sys.stderr's text travels among stdout's, so one pipe carries the program's own order
    code = "import sys\nfor i in range(3):\n    print('out', i)\n    print('err', i, file=sys.stderr)\nprint('end')"
    p = run(code)
    stream = [
        ("err", i.data) if isinstance(i, Record) else ("out", i)
        for i in _items(p.raw_stdout)  # type: ignore[attr-defined]
        if not isinstance(i, Record) or i.kind == "stderr"
    ]
    joined: list[tuple[str, bytes]] = []
    for kind, data in stream:
        if joined and joined[-1][0] == kind:
            joined[-1] = (kind, joined[-1][1] + (data or b""))
        else:
            joined.append((kind, data or b""))
    text = [(kind, line) for kind, data in joined for line in data.splitlines()]
    assert text == [(k, b"%s %d" % (k.encode(), i)) for i in range(3) for k in ("out", "err")] + [("out", b"end")]


def test_a_printed_stderr_line_travels_whole_and_a_partial_one_still_arrives() -> None:
    """print() writes its pieces one by one; a record each let a pause between two of them split the
    line on the server (runsc CI: "err" and " 4" in two frames). CPython's stderr is line-buffered."""
    code = (
        "import os, sys\nprint('err', 4, file=sys.stderr)\nsys.stderr.write('no end')\nprint('out')\n"
        "sys.stderr.write(' yet')\nsys.stderr.flush()\nsys.stderr.write('left at the exit')"
    )
    p = run(code)
    records = [i.data for i in _items(p.raw_stdout) if isinstance(i, Record) and i.kind == "stderr"]  # type: ignore[attr-defined]
    assert records == [b"err 4\n", b"no end yet", b"left at the exit"]
    assert split(p.stdout)[0] == b"out\n" and ending(p) == 0


def test_a_child_process_output_comes_after_what_was_printed_before_it() -> None:
    p = run("import subprocess, os\nprint('first')\nsubprocess.run(['echo', 'second'])\nprint('third')")
    assert split(p.stdout)[0] == b"first\nsecond\nthird\n"
    assert ending(p) == 0


def test_a_forked_child_neither_repeats_the_parents_output_nor_ends_the_run() -> None:
    code = (
        "import os\nprint('before', end='')\npid = os.fork()\n"
        "if pid == 0:\n    print(' child')\n    raise SystemExit(0)\n"
        "os.waitpid(pid, 0)\nprint(' parent')"
    )
    p = run(code)
    assert split(p.stdout)[0] == b"before child\n parent\n"
    assert ending(p) == 0


def test_many_prints_become_few_writes() -> None:
    # block-buffered stdout: 20,000 lines in a handful of writes, not one each
    if shutil.which("strace") is None:
        pytest.skip("no strace")
    code = "for i in range(20000): print(i)"
    with tempfile.TemporaryDirectory(prefix="sce-bootstrap-test-") as workdir:
        trace = f"{workdir}/trace"
        p = subprocess.run(
            [
                "strace",
                "-f",
                "-e",
                "trace=write",
                "-o",
                trace,
                sys.executable,
                "-I",
                "-c",
                BOOTSTRAP,
                "--workdir",
                workdir,
            ],
            input=encode_program(code, nonce=NONCE),
            capture_output=True,
            timeout=60,
        )
        writes = [line for line in Path(trace).read_text().splitlines() if "write(1," in line]
    assert split(p.stdout)[0] == b"".join(b"%d\n" % i for i in range(20000))
    assert len(writes) < 100


def test_stderr_still_arrives_after_the_program_closes_its_stdout() -> None:
    p = run("import os, sys\nprint('a', flush=True)\nos.close(1)\nprint('err after close', file=sys.stderr)")
    assert split(p.stdout)[0] == b"a\n"
    assert p.stderr.replace(END_MARKER, b"") == b"err after close\n"
    assert not [i for i in _items(p.stdout) if isinstance(i, Record) and i.kind == "exit"]  # could not be written


def exception_records(p: subprocess.CompletedProcess[bytes]) -> list[dict[str, object]]:
    return [r.meta for r in split(p.stdout)[1] if r.kind == "exception"]


@pytest.mark.parametrize(
    ("code", "name", "value", "line"),
    [
        ("x = 1\ndef f():\n    raise ValueError('bad ' + str(x))\nf()\n", "ValueError", "bad 1", 3),
        ("import json\n\njson.loads('{')\n", "JSONDecodeError", None, 3),  # innermost frame in own code
        ("print('ok')\nx = (\n", "SyntaxError", None, 2),  # a syntax error's own line
        ("import helper\nhelper.boom()\n", "ZeroDivisionError", "division by zero", 2),
        ("exec(compile('1/0', 'other.py', 'exec'))\n", "ZeroDivisionError", "division by zero", 1),
        ("raise KeyboardInterrupt\n", "KeyboardInterrupt", "", 1),
        ("class E(Exception):\n    def __str__(self):\n        raise RuntimeError\nraise E\n", "E", None, 4),
    ],
)
def test_an_uncaught_exception_is_reported_as_data_before_the_end(
    code: str, name: str, value: str | None, line: int
) -> None:
    p = run(code, files=[("helper.py", b"def boom():\n    return 1 / 0\n")])
    assert ending(p) == 1
    (meta,) = exception_records(p)
    assert (meta["name"], meta["line"]) == (name, line)
    if value is not None:
        assert meta["value"] == value
    assert isinstance(meta["value"], str) and len(meta["value"]) <= 1000
    assert b"Traceback" in p.stderr or name == "SyntaxError"  # the traceback is still on stderr


@pytest.mark.parametrize(
    "code",
    ["import sys\nsys.exit(3)", "import sys\nsys.exit('bye')", "print('fine')", "import os\nos._exit(1)"],
)
def test_no_exception_record_without_an_uncaught_exception(code: str) -> None:
    assert exception_records(run(code)) == []


def test_an_exception_with_no_frame_in_the_code_has_no_line() -> None:
    # a NUL byte: Python refuses the code before any line of it runs (a ValueError in 3.11.2,
    # a SyntaxError with no file name in later 3.11s)
    p = run("print(1)\x00\n")
    (meta,) = exception_records(p)
    assert meta["name"] in ("ValueError", "SyntaxError") and meta["line"] is None
    assert "null bytes" in str(meta["value"])


def test_the_code_takes_the_runs_file_name_in_tracebacks() -> None:
    code = "import sys\nprint(__file__, sys.argv)\ndef f():\n    1 / 0\nf()\n"
    p = run(code, filename="hottest.py")
    assert p.stdout.startswith(b"hottest.py ['hottest.py']\n")
    assert b'File "hottest.py", line 5, in <module>' in p.stderr and b"main.py" not in p.stderr
    assert b"    1 / 0" in p.stderr  # the source is still found under that name
    (meta,) = exception_records(p)
    assert meta["line"] == 4
    p = run("x = (", filename="caf\u00e9 1.py")
    assert 'File "caf\u00e9 1.py", line 1'.encode() in p.stderr
    assert exception_records(p)[0]["line"] == 1


def test_encode_program_refuses_a_file_name_with_folders() -> None:
    for bad in ("", "a/b.py", "x" * 256):
        with pytest.raises(ValueError):
            encode_program("pass", nonce=NONCE, filename=bad)
