"""``sce run`` and ``sce watch`` in a real pseudo-terminal against the real server.

What a person at a terminal notices: a prompt they can answer by typing, Ctrl+D closing input,
Ctrl+C stopping a program, and the exit status a shell would show.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect
import pytest

from app.client import Client, cli
from app.client.cli import EXIT_USAGE
from app.protocol import StartedFrame
from tests.conftest import ROOT, ServerProcess, module_server
from tests.tcpproxy import TcpProxy

pytestmark = [pytest.mark.docker, pytest.mark.timeout(90)]

served = module_server({"SCE_CODE_MAX_BYTES": "2000", "SCE_TIMEOUT_MAX_S": "60"})


def sce(served: ServerProcess | str, *args: str) -> pexpect.spawn:
    url = served if isinstance(served, str) else served.url
    return pexpect.spawn(
        sys.executable,
        ["-m", "app", args[0], "--url", url, *args[1:]],
        cwd=str(ROOT),
        timeout=30,
        encoding="utf-8",
        codec_errors="replace",
    )


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None, child.signalstatus
    return int(child.exitstatus)


def test_a_prompt_is_answered_by_typing(served: ServerProcess) -> None:
    child = sce(served, "run", "-c", "name = input('name? ')\nprint('hi', name)")
    child.expect_exact("name? ")
    child.sendline("Ada")
    child.expect_exact("hi Ada")
    assert finish(child) == 0


def test_ctrl_d_ends_the_programs_input(served: ServerProcess) -> None:
    child = sce(served, "run", "-c", "import sys\nprint('ready', flush=True)\nprint(len(sys.stdin.read()), 'chars')")
    child.expect_exact("ready")
    child.sendline("abc")
    child.sendeof()
    child.expect_exact("4 chars")
    assert finish(child) == 0


def test_ctrl_c_stops_a_loop_with_status_130(served: ServerProcess) -> None:
    child = sce(
        served,
        "run",
        "-c",
        "import itertools, time\nfor i in itertools.count():\n    print('tick', i)\n    time.sleep(0.05)",
    )
    child.expect_exact("tick 2")
    child.sendintr()
    child.expect_exact("sce: killed")
    assert finish(child) == cli.EXIT_INTERRUPTED == 130


@pytest.mark.parametrize(
    ("code", "status", "said"),
    [
        ("print('fine')", 0, None),
        ("import sys\nsys.exit(3)", 3, None),
        ("raise SystemExit(0)", 0, None),
        ("1/0", 1, None),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", 139, "the program died of SIGSEGV"),
    ],
    ids=["zero", "sys.exit(3)", "SystemExit(0)", "exception", "segv"],
)
def test_the_exit_status_is_the_programs_own(served: ServerProcess, code: str, status: int, said: str | None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "run", "--url", served.url, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == status, result.stderr
    if said:
        assert f"sce: {said}" in result.stderr
    else:
        assert "sce:" not in result.stderr


def test_a_timeout_is_124_and_said_in_words(served: ServerProcess) -> None:
    child = sce(served, "run", "--timeout", "1", "-c", "while True: pass")
    child.expect_exact("sce: timed out after 1 s")
    assert finish(child) == cli.EXIT_TIMEOUT == 124


def test_stdout_and_stderr_go_to_their_own_streams(served: ServerProcess, tmp_path: Path) -> None:
    program = tmp_path / "prog.py"
    program.write_text("import sys\nprint('to out')\nprint('to err', file=sys.stderr)\nprint(input())\n")
    result = subprocess.run(
        [sys.executable, "-m", "app", "run", "--url", served.url, str(program)],
        cwd=ROOT,
        input="piped\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "to out\npiped\n", "to err\n")


def test_the_program_itself_from_stdin(served: ServerProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "run", "--url", served.url, "-"],
        cwd=ROOT,
        input="import sys\nprint(repr(sys.stdin.read()))\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (0, "''\n")  # its own stdin is closed at once


def test_files_in_and_out(served: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    out = tmp_path / "out"
    code = "rows = open('data.csv').read().splitlines()\nopen('count.txt', 'w').write(str(len(rows)))\nprint('ok')"
    command = [sys.executable, "-m", "app", "run", "--url", served.url, "--file", "data.csv", "-c", code]
    result = subprocess.run(
        [*command, "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
    assert (out / "count.txt").read_text() == "2"
    assert f"sce: wrote {out / 'count.txt'}" in result.stderr
    # without --out nothing is written: the files are listed
    listed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert listed.returncode == 0
    assert "sce: file count.txt (1 bytes, text/plain): use --out DIR to save it" in listed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "out"]


def test_watch_follows_another_run(served: ServerProcess) -> None:
    with Client(served.url) as client, client.start("print('watched', flush=True)\ninput()\nprint('end')") as run:
        started = next(run)
        assert isinstance(started, StartedFrame) and started.watch_token
        watcher = sce(served, "watch", started.id, started.watch_token)
        watcher.expect_exact("watched")
        run.stdin("\n", eof=True)
        assert [frame.type for frame in run][-1] == "exit"
    watcher.expect_exact("end")
    assert finish(watcher) == 0


def test_a_refused_request_is_65_and_said(served: ServerProcess) -> None:
    child = sce(served, "run", "-c", "x" * 3000)
    child.expect("code_too_large: code is 3000 bytes")
    assert finish(child) == cli.EXIT_REFUSED


def test_no_server_is_69(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "run", "--url", "http://127.0.0.1:9", "-c", "print(1)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == cli.EXIT_UNAVAILABLE and "sce: cannot connect" in result.stderr


def test_a_missing_program_file_is_2(served: ServerProcess, tmp_path: Path) -> None:
    child = sce(served, "run", str(tmp_path / "nope.py"))
    child.expect("No such file")
    assert finish(child) == cli.EXIT_USAGE


def test_a_reader_that_leaves_the_pipe_stops_the_run_with_141(served: ServerProcess) -> None:
    code = "import itertools, time\nfor i in itertools.count():\n    print(i)\n    time.sleep(0.02)"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "run", "--url", served.url, "-c", code],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"0\n"
    proc.stdout.close()  # `| head -1`
    assert proc.wait(timeout=30) == 141
    assert b"Traceback" not in proc.stderr.read()


@contextmanager
def proxy_in_a_thread(port: int) -> Iterator[tuple[TcpProxy, asyncio.AbstractEventLoop]]:
    """A ``TcpProxy`` on its own loop thread, for tests that drive a terminal synchronously."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = TcpProxy(port)
    asyncio.run_coroutine_threadsafe(proxy.__aenter__(), loop).result(10)
    try:
        yield proxy, loop
    finally:
        asyncio.run_coroutine_threadsafe(proxy.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_dropped_connection_is_resumed_and_said(served: ServerProcess) -> None:
    with proxy_in_a_thread(served.port) as (proxy, loop):
        child = sce(proxy.url, "run", "-c", "print('one', flush=True)\nprint('got', input())")
        child.expect_exact("one")
        loop.call_soon_threadsafe(proxy.cut)
        child.expect_exact("sce: the connection dropped; resuming run")
        child.expect_exact("sce: resumed run")
        child.sendline("typed")
        child.expect_exact("got typed")
        assert finish(child) == 0


# --- v3 and the newcomer's reproductions (#27): watch links, file names, the run's id, wrong URLs -------


def sce_bare(*args: str, cwd: Path = ROOT) -> pexpect.spawn:
    """``python -m app ARGS`` with no --url added."""
    return pexpect.spawn(
        sys.executable, ["-m", "app", *args], cwd=str(cwd), timeout=30, encoding="utf-8", codec_errors="replace"
    )


def test_share_says_a_link_that_sce_watch_follows(served: ServerProcess) -> None:
    child = sce(served, "run", "--share", "-c", "print('more?', flush=True)\nprint('got', input())")
    child.expect(r"sce: watch this run: (http://\S+/ui#watch=[0-9A-Za-z_-]+%3A[0-9A-Za-z_-]+)\r?\n")
    link = child.match.group(1)
    assert link.startswith(served.url + "/ui#watch=")
    watcher = sce_bare("watch", link)  # the link names the server: no --url
    watcher.expect_exact("more?")
    child.expect_exact("more?")
    child.sendline("yes")
    child.expect_exact("got yes")
    assert finish(child) == 0
    watcher.expect_exact("got yes")
    assert finish(watcher) == 0


def test_the_run_id_is_said_only_when_asked(served: ServerProcess) -> None:
    quiet = subprocess.run(
        [sys.executable, "-m", "app", "run", "--url", served.url, "-c", "print(1)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "1\n", "")
    told = subprocess.run(
        [sys.executable, "-m", "app", "run", "-v", "--url", served.url, "-c", "print(1)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert told.returncode == 0 and told.stdout == "1\n"
    assert told.stderr.startswith("sce: run ") and told.stderr.rstrip().endswith(" started")


def test_tracebacks_name_the_program_file(served: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "hottest.py").write_text("x = 1\nraise ValueError('too hot')\n")
    result = subprocess.run(
        [sys.executable, "-m", "app", "run", "--url", served.url, str(tmp_path / "hottest.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 1
    if 'File "main.py"' in result.stderr:
        pytest.skip("this server does not take `filename` yet (protocol v3)")
    assert 'File "hottest.py", line 2' in result.stderr


def test_the_editors_address_as_url_says_which_url_to_pass(served: ServerProcess) -> None:
    child = sce_bare("run", "--url", served.url + "/ui", "-c", "print(1)")
    child.expect_exact(f"is the server's editor page, not the server: pass its base URL, {served.url} ")
    assert finish(child) == EXIT_USAGE
    child = sce_bare("watch", "http://127.0.0.1:9/ui#code=abc")
    child.expect_exact("not a watch link")
    assert finish(child) == EXIT_USAGE
