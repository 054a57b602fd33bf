"""The Python client against the real server: runs, stdin, kill, refusals, POST /run, and drops.

Drops go through ``TcpProxy``, which breaks the TCP connection without a close frame, as a
network would.
"""

from __future__ import annotations

import asyncio

import pytest

from app.client import AsyncClient, Client, InvalidRequest, Reconnect, RunNotFound, ServerError
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
        with client.run("print(input() * 2)", stdin="ab\n") as run:
            frames = list(run)
        assert isinstance(frames[-1], ExitFrame)
        assert "".join(f.data for f in frames if isinstance(f, StdoutFrame)) == "abab\n"
        assert client.post_run("print(1)").stdout == "1\n"


async def test_a_drop_is_resumed_and_input_typed_after_it_arrives(served: ServerProcess) -> None:
    async with asyncio.timeout(60), TcpProxy(served.port) as proxy:
        run = AsyncClient(proxy.url, reconnect=FAST).run("print('up', flush=True)\ninput()\nprint('down')")
        notices: list[str] = []
        run.notice = notices.append
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
    assert notices == [f"the connection dropped; resuming run {run.id}", f"resumed run {run.id}"]


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
