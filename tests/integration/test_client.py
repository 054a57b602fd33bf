"""The Python client against the real server: runs, stdin, kill, refusals, POST /run, and drops.

Drops go through ``TcpProxy``, which breaks the TCP connection without a close frame, as a
network would.
"""

from __future__ import annotations

import asyncio

import pytest

from app.client import AsyncClient, Busy, Client, InvalidRequest, Reconnect, RunNotFound, ServerError
from app.protocol import ExitFrame, StartedFrame, StderrFrame, StdoutFrame
from tests.conftest import ServerProcess, module_server
from tests.tcpproxy import TcpProxy

pytestmark = [pytest.mark.docker, pytest.mark.timeout(90)]

served = module_server({"SCE_CODE_MAX_BYTES": "2000", "SCE_PER_CLIENT_RUNS": "8", "SCE_QUEUE_SIZE": "16"})
FAST = Reconnect(tries=6, first_delay_s=0.05, max_delay_s=0.5)


async def test_a_run_streams_typed_frames_and_takes_typed_input(served: ServerProcess) -> None:
    code = "import sys\nname = input('name? ')\nprint('hi', name)\nprint('bye', file=sys.stderr)\nsys.exit(3)"
    async with asyncio.timeout(30), AsyncClient(served.url).run(code) as run:
        seen: list[str] = []
        async for frame in run:
            seen.append(frame.type)
            if isinstance(frame, StdoutFrame) and frame.data.endswith("name? "):
                await run.stdin("Ada\n", eof=True)
            if isinstance(frame, StderrFrame):
                assert frame.data == "bye\n"
    assert seen[0] == "started" and seen[-1] == "exit"
    assert isinstance(run.started, StartedFrame) and run.started.limits.memory_mb > 0
    assert run.exit is not None and (run.exit.reason, run.exit.exit_code) == ("exit", 3)


async def test_kill_ends_the_run_as_killed(served: ServerProcess) -> None:
    async with asyncio.timeout(30), AsyncClient(served.url).run("import time\nprint('up')\ntime.sleep(60)") as run:
        async for frame in run:
            if isinstance(frame, StdoutFrame):
                await run.kill()
    assert run.exit is not None and run.exit.reason == "killed"


async def test_files_in_reach_the_program(served: ServerProcess) -> None:
    code = "print(open('data/in.txt').read(), open('b.bin', 'rb').read())"
    async with asyncio.timeout(30):
        run = AsyncClient(served.url).run(code, files={"data/in.txt": "hello", "b.bin": b"\x00\xff"})
        out = "".join([f.data async for f in run if isinstance(f, StdoutFrame)])
    assert out == "hello b'\\x00\\xff'\n"


async def test_a_refusal_is_a_server_error_with_the_protocol_code(served: ServerProcess) -> None:
    async with asyncio.timeout(30):
        with pytest.raises(ServerError) as caught:
            async for _ in AsyncClient(served.url).run("x" * 3000):
                pass
    assert caught.value.code == "code_too_large" and "3000" in caught.value.message
    with pytest.raises(InvalidRequest):
        AsyncClient(served.url).run("x", files={"/etc/passwd": "x"})


async def test_post_run_answers_with_the_typed_body(served: ServerProcess) -> None:
    async with asyncio.timeout(30), AsyncClient(served.url) as client:
        answer = await client.post_run("import sys\nprint(input())\nsys.exit(2)", stdin="ab\n")
        assert (answer.stdout, answer.exit_code, answer.reason) == ("ab\n", 2, "exit")
        timed_out = await client.post_run("while True: pass", timeout=1)
        assert timed_out.reason == "timeout" and timed_out.error
        with pytest.raises(ServerError) as caught:
            await client.post_run("x" * 3000)
    assert (caught.value.code, caught.value.status) == ("code_too_large", 413)


def test_the_blocking_client(served: ServerProcess) -> None:
    with Client(served.url) as client:
        with client.start("print(input() * 2)", stdin="ab\n") as run:
            frames = list(run)
        assert isinstance(frames[-1], ExitFrame)
        assert "".join(f.data for f in frames if isinstance(f, StdoutFrame)) == "abab\n"
        assert client.post_run("print(1)").stdout == "1\n"


async def test_a_drop_is_resumed_and_input_typed_after_it_arrives(served: ServerProcess) -> None:
    async with asyncio.timeout(60), TcpProxy(served.port) as proxy:
        notices: list[str] = []
        run = AsyncClient(proxy.url, reconnect=FAST).run(
            "print('up', flush=True)\ninput()\nprint('down')", on_notice=notices.append
        )
        lines: list[str] = []

        async def type_once_resumed() -> None:
            await run.wait_resumed()
            await run.stdin("\n")

        typing: list[asyncio.Task[None]] = []
        async for frame in run:
            if isinstance(frame, StdoutFrame):
                lines.append(frame.data)
                if frame.data == "up\n":
                    proxy.cut()
                    typing.append(asyncio.create_task(type_once_resumed()))
    assert lines == ["up\n", "down\n"] and run.resumes == 1
    assert notices == run.notices == [f"the connection dropped; resuming run {run.id}", f"resumed run {run.id}"]


# --- resume and watch (v2) ---------------------------------------------------------------------------

PACED = "import time\nfor i in range(1, 41):\n    print(f'line {i}')\n    time.sleep(0.05)\n"


async def test_three_forced_drops_in_one_run_yield_every_frame_once(served: ServerProcess) -> None:
    async with asyncio.timeout(60), TcpProxy(served.port) as proxy:
        run = AsyncClient(proxy.url, reconnect=FAST).run(PACED)
        out: list[str] = []
        seqs: list[int] = []
        cut_at = [10, 20, 30]
        async for frame in run:
            if isinstance(frame, StdoutFrame):
                out.append(frame.data)
                assert frame.seq is not None
                seqs.append(frame.seq)
                if cut_at and f"line {cut_at[0]}\n" in "".join(out):
                    cut_at.pop(0)
                    proxy.cut()
    assert "".join(out) == "".join(f"line {i}\n" for i in range(1, 41))
    assert seqs == sorted(set(seqs))  # each frame once, in order
    assert proxy.cuts == 3 and run.resumes == 3
    assert run.exit is not None and run.exit.reason == "exit"


async def test_a_watcher_sees_what_the_driver_sees(served: ServerProcess) -> None:
    async with asyncio.timeout(60):
        client = AsyncClient(served.url)
        async with client.run("print('one')\ninput()\nprint('two')") as run:
            first = await anext(run)
            assert isinstance(first, StartedFrame) and first.watch_token
            watch = client.watch(first.id, first.watch_token)
            watched = await anext(watch)
            assert isinstance(watched, StartedFrame) and watched.token is None
            await run.stdin("\n", eof=True)
            driven = "".join([f.data async for f in run if isinstance(f, StdoutFrame)])
        seen = "".join([f.data async for f in watch if isinstance(f, StdoutFrame)])
    assert driven == seen == "one\ntwo\n"
    assert run.exit is not None and watch.exit is not None and watch.exit.seq == run.exit.seq


async def test_watching_with_a_wrong_token_is_run_not_found(served: ServerProcess) -> None:
    async with asyncio.timeout(30):
        client = AsyncClient(served.url)
        async with client.run("input()") as run:
            started = await anext(run)
            assert isinstance(started, StartedFrame)
            with pytest.raises(RunNotFound):
                async for _ in client.watch(started.id, "not-the-token"):
                    pass
            await run.kill()


# --- v3: input echo, file names, the result object, busy -------------------------------------------------


async def test_what_was_typed_reaches_driver_and_watcher_once_in_its_place(served: ServerProcess) -> None:
    async with asyncio.timeout(60):
        client = AsyncClient(served.url)
        async with client.start("print('more?', flush=True)\nprint('got', input())") as run:
            started = await anext(run)
            assert isinstance(started, StartedFrame) and started.watch_token
            watcher = client.watch(started.id, started.watch_token)
            await run.stdin("yes\n", eof=True)
            driven = await run.wait()
        watched = await watcher
    if driven.input == "" and watched.input == "":
        pytest.skip("this server does not echo input yet (protocol v3)")
    assert driven.input == watched.input == "yes\n"
    assert driven.stdout == watched.stdout == "more?\ngot yes\n"


async def test_tracebacks_name_the_file_the_client_gave(served: ServerProcess) -> None:
    async with asyncio.timeout(30), AsyncClient(served.url) as client:
        result = await client.run("x = 1\nraise ValueError('bad')\n", filename="hottest.py")
    if 'File "main.py"' in result.stderr:
        pytest.skip("this server does not take `filename` yet (protocol v3)")
    assert 'File "hottest.py", line 2' in result.stderr
    assert result.reason == "exit" and result.exit_code == 1


def test_the_blocking_run_gathers_one_result(served: ServerProcess) -> None:
    out: list[str] = []
    with Client(served.url) as client:
        result = client.run("import sys\nprint('a')\nprint('b', file=sys.stderr)\nsys.exit(4)", on_stdout=out.append)
    assert (result.stdout, result.stderr, result.exit_code, result.ok) == ("a\n", "b\n", 4, False)
    assert out == ["a\n"] and result.error == "the program exited with status 4"


busy_server = module_server({"SCE_PER_CLIENT_RUNS": "2"})


async def test_a_third_concurrent_run_is_busy_and_says_what_to_do(busy_server: ServerProcess) -> None:
    async with asyncio.timeout(60):
        client = AsyncClient(busy_server.url)
        async with client.start("input()") as one, client.start("input()") as two:
            for run in (one, two):
                assert isinstance(await anext(run), StartedFrame)
            with pytest.raises(Busy) as caught:
                await client.run("print(3)")
            await one.kill()
            await two.kill()
    busy = caught.value
    assert busy.code == "busy" and busy.retry_after is not None and busy.retry_after > 0
    assert "wait for one of your runs to end, or stop one, then try again" in str(busy)
