"""The in-sandbox bootstrap, run by the host's Python 3.11 (the image's version) in a subprocess.

What a user notices: their program behaves like ``python main.py``: tracebacks show their own
lines and none of ours, stdin after the program belongs to the program, output is line-buffered.
"""

from __future__ import annotations

import subprocess
import sys

from app.sandbox.bootstrap import BOOTSTRAP, encode_program


def run(code: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-I", "-c", BOOTSTRAP],
        input=encode_program(code) + stdin,
        capture_output=True,
        timeout=30,
        cwd="/tmp",
    )


def test_program_reads_exactly_its_own_stdin() -> None:
    p = run("import sys\nprint(repr(sys.stdin.read()))", b"12\nabc")
    assert p.stdout == b"'12\\nabc'\n"
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
    assert p.stdout == b"__main__ main.py ['main.py'] main.py\n"
    assert p.returncode == 7


def test_user_excepthook_is_honoured() -> None:
    p = run("import sys\nsys.excepthook = lambda *a: print('mine', a[0].__name__)\nraise KeyError(1)")
    assert p.stdout == b"mine KeyError\n"


def test_utf8_program_with_non_ascii_output() -> None:
    p = run("print('héllo ✓')")
    assert p.stdout.decode() == "héllo ✓\n"


def test_no_program_means_a_quiet_exit() -> None:
    p = subprocess.run([sys.executable, "-I", "-c", BOOTSTRAP], input=b"", capture_output=True, timeout=30)
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
    assert p.stdout.decode() == "def f():\n    return 1 / 0\n"
