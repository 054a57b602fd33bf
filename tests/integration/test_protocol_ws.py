"""PROTOCOL.md's WebSocket tables, row by row, over real hypercorn, a real client and the real engine.

Servers: the shared default ``server`` wherever the defaults do; a few module-scoped servers
with the settings a row needs (tight limits, tokens and origins, a tiny admission, a missing
image).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import docker
import docker.errors
import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from app.sandbox.docker.engine import RUNSC_PIDS_HEADROOM
from app.settings import Settings
from tests.conftest import ServerFactory, ServerProcess, module_server
from tests.wsclient import WsResult, collect, run_ws

pytestmark = [pytest.mark.docker, pytest.mark.timeout(60)]

EXIT_FIELDS = {
    "type",
    "reason",
    "exit_code",
    "signal",
    "duration_ms",
    "stdout_bytes",
    "stderr_bytes",
    "truncated",
    "cpu_ms",  # v2
    "memory_peak_bytes",  # v2
    "seq",  # v2
}
LIMIT_FIELDS = {"timeout_s", "memory_mb", "output_bytes", "pids"}
WAIT_S = 20.0

# prints the id of the container it runs in, so a test can watch that container on the engine
# the engine's default hostname is the container's short id, under runc and gVisor alike
PRINT_CONTAINER_ID = "import socket\nprint(socket.gethostname(), flush=True)\n"

# tight limits, so the limit rows run in well under a second each
TIGHT_ENV = {
    "SCE_OUTPUT_BYTES": "16384",
    "SCE_MAX_LINE_CHARS": "80",
    "SCE_FLUSH_INTERVAL_MS": "100",
    "SCE_CODE_MAX_BYTES": "200",
    "SCE_MAX_MESSAGE_BYTES": "2048",
    "SCE_RUN_FRAME_TIMEOUT_S": "0.5",
    "SCE_TIMEOUT_S": "1",
    "SCE_TIMEOUT_MAX_S": "2",
    "SCE_POOL_SIZE": "1",
    "SCE_PER_CLIENT_RUNS": "16",
}
GUARDED_ENV = {
    "SCE_API_TOKENS": "t1,t2",
    "SCE_ALLOWED_ORIGINS": "http://ok.test",
    "SCE_PER_CLIENT_RUNS": "1",
    "SCE_POOL_SIZE": "0",
}
MISSING_IMAGE = "sce-missing-image:does-not-exist"


# --- servers -------------------------------------------------------------------------------------


tight = module_server(TIGHT_ENV)


guarded = module_server(GUARDED_ENV)


no_image = module_server({"SCE_IMAGE": MISSING_IMAGE, "SCE_POOL_SIZE": "0"}, healthy=False)


# --- helpers -------------------------------------------------------------------------------------


class Live:
    """One open run: read frames as they come, send frames at chosen moments."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.result = WsResult()

    @property
    def frames(self) -> list[dict[str, Any]]:
        return self.result.frames

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT_S):
            frame: dict[str, Any] = json.loads(await self.ws.recv())
        self.frames.append(frame)
        return frame

    async def until(self, kind: str) -> dict[str, Any]:
        while True:
            frame = await self.next()
            if frame["type"] == kind:
                return frame
            assert frame["type"] not in ("exit", "error"), self.frames

    async def until_text(self, text: str, stream: str = "stdout") -> None:
        while text not in self.result.text(stream):
            frame = await self.next()
            assert frame["type"] not in ("exit", "error"), self.frames

    async def rest(self) -> WsResult:
        async with asyncio.timeout(WAIT_S):
            return await collect(self.ws, self.result)


@contextlib.asynccontextmanager
async def live_run(url: str, code: str, **run_fields: Any) -> AsyncIterator[Live]:
    async with asyncio.timeout(WAIT_S * 2):
        async with websockets.connect(url, max_size=None, **run_fields.pop("connect", {})) as ws:
            live = Live(ws)
            await live.send({"type": "run", "code": code, **run_fields})
            yield live


async def exchange(url: str, *messages: dict[str, Any] | str | bytes, **connect: Any) -> WsResult:
    """Send raw messages in order (stopping if the server closes), collect until the close."""
    async with asyncio.timeout(WAIT_S):
        async with websockets.connect(url, max_size=None, **connect) as ws:
            for message in messages:
                try:
                    await ws.send(message if isinstance(message, str | bytes) else json.dumps(message))
                except websockets.ConnectionClosed:
                    break
            return await collect(ws)


def assert_started_shape(started: dict[str, Any]) -> None:
    assert set(started) == {"type", "id", "limits", "token", "watch_token"}
    assert isinstance(started["id"], str) and started["id"]
    # v2: two distinct secrets of at least 128 random bits (base64url: 22 characters or more)
    assert isinstance(started["token"], str) and len(started["token"]) >= 22
    assert isinstance(started["watch_token"], str) and len(started["watch_token"]) >= 22
    assert started["token"] != started["watch_token"]
    assert set(started["limits"]) == LIMIT_FIELDS
    assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in started["limits"].values())


def assert_exit_shape(exit_: dict[str, Any]) -> None:
    assert set(exit_) == EXIT_FIELDS
    assert exit_["reason"] in ("exit", "timeout", "oom", "output_limit", "killed")
    assert exit_["exit_code"] is None or isinstance(exit_["exit_code"], int)
    assert exit_["signal"] is None or isinstance(exit_["signal"], str)
    for key in ("duration_ms", "stdout_bytes", "stderr_bytes"):
        assert isinstance(exit_[key], int) and exit_[key] >= 0
    assert isinstance(exit_["truncated"], bool)


def assert_error(result: WsResult, code: str, close_code: int) -> None:
    assert result.frames, "no frame before the close"
    last = result.frames[-1]
    assert last["type"] == "error", result.frames
    assert last["code"] == code, result.frames
    assert isinstance(last["message"], str) and last["message"]
    assert not result.of("exit"), result.frames
    assert result.close_code == close_code, (result.close_code, result.frames)


def health(server: ServerProcess) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(server.url + "/healthz", timeout=10).json()
    return body


async def until_health(server: ServerProcess, **expected: int) -> dict[str, Any]:
    """/healthz once its fields have the expected values (a disconnect is handled in the background)."""
    async with asyncio.timeout(WAIT_S):
        async with httpx.AsyncClient(timeout=10) as client:
            while True:
                body: dict[str, Any] = (await client.get(server.url + "/healthz")).json()
                if all(body[key] == value for key, value in expected.items()):
                    return body
                await asyncio.sleep(0.05)  # nothing to wait on from outside the server


async def until_idle(server: ServerProcess) -> dict[str, Any]:
    return await until_health(server, active_runs=0, queued=0)


def container_exists(container_id: str) -> bool:
    client = docker.from_env(timeout=10)
    try:
        client.containers.get(container_id)
        return True
    except docker.errors.NotFound:
        return False
    finally:
        client.close()


async def until_container_gone(container_id: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            if not await asyncio.to_thread(container_exists, container_id):
                return
            await asyncio.sleep(0.1)  # the engine offers no cheap event for this here


# === client frames ================================================================================


async def test_run_streams_started_output_exit_then_closes_1000(server: ServerProcess) -> None:
    result = await run_ws(server.ws_url, "print('hello')")
    assert [f["type"] for f in result.frames] == ["started", "stdout", "exit"]
    assert_started_shape(result.frames[0])
    assert [f.get("seq") for f in result.frames] == [None, 1, 2]  # v2: every frame after started
    assert result.text() == "hello\n"
    assert_exit_shape(result.exit)
    assert result.exit["reason"] == "exit" and result.exit["exit_code"] == 0 and result.exit["signal"] is None
    assert result.close_code == 1000


async def test_started_reports_the_default_limits(server: ServerProcess) -> None:
    result = await run_ws(server.ws_url, "pass")
    defaults = Settings()
    # under gVisor the pids cgroup also counts the sandbox's own threads: the enforced number is said
    pids = defaults.pids + (RUNSC_PIDS_HEADROOM if defaults.runtime == "runsc" else 0)
    assert result.frames[0]["limits"] == {
        "timeout_s": defaults.timeout_s,
        "memory_mb": defaults.memory_mb,
        "output_bytes": defaults.output_bytes,
        "pids": pids,
    }


async def test_run_stdin_is_written_first_then_stdin_frames(server: ServerProcess) -> None:
    code = "print(input()); print(input())"
    result = await run_ws(server.ws_url, code, stdin="first\n", extra=[{"type": "stdin", "data": "second\n"}])
    assert result.text() == "first\nsecond\n"
    assert result.exit["exit_code"] == 0


async def test_stdin_data_in_pieces_then_eof(server: ServerProcess) -> None:
    code = "import sys\ndata = sys.stdin.read()\nprint(len(data), repr(data))"
    frames = [
        {"type": "stdin", "data": "ab"},
        {"type": "stdin", "data": "c\né"},
        {"type": "stdin", "eof": True},
    ]
    result = await run_ws(server.ws_url, code, extra=frames)
    assert result.text() == "5 'abc\\né'\n"
    assert result.exit["exit_code"] == 0


async def test_stdin_data_and_eof_in_one_frame(server: ServerProcess) -> None:
    code = "import sys\nprint(repr(sys.stdin.read()))"
    result = await run_ws(server.ws_url, code, extra=[{"type": "stdin", "data": "all\n", "eof": True}])
    assert result.text() == "'all\\n'\n"


async def test_requested_timeout_is_the_effective_limit(server: ServerProcess) -> None:
    result = await run_ws(server.ws_url, "import time\ntime.sleep(30)", run_timeout=0.5)
    assert result.frames[0]["limits"]["timeout_s"] == 0.5
    assert result.exit["reason"] == "timeout"
    assert result.exit["exit_code"] is None and result.exit["signal"] is None
    assert 500 <= result.exit["duration_ms"] < 10_000
    assert result.close_code == 1000


async def test_requested_timeout_is_clamped_to_the_server_maximum(tight: ServerProcess) -> None:
    result = await run_ws(tight.ws_url, "import time\ntime.sleep(30)", run_timeout=30)
    assert result.frames[0]["limits"]["timeout_s"] == 2  # SCE_TIMEOUT_MAX_S
    assert result.exit["reason"] == "timeout"
    assert 2000 <= result.exit["duration_ms"] < 15_000


async def test_no_requested_timeout_gets_the_server_default(tight: ServerProcess) -> None:
    result = await run_ws(tight.ws_url, "pass")
    assert result.frames[0]["limits"]["timeout_s"] == 1  # SCE_TIMEOUT_S


async def test_kill_stops_the_program(server: ServerProcess) -> None:
    async with live_run(server.ws_url, "import time\nprint('ready', flush=True)\ntime.sleep(30)") as run:
        await run.until_text("ready\n")
        await run.send({"type": "kill"})
        result = await run.rest()
    assert_exit_shape(result.exit)
    assert result.exit["reason"] == "killed"
    assert result.exit["exit_code"] is None and result.exit["signal"] is None
    assert result.exit["duration_ms"] < 10_000
    assert result.close_code == 1000


# === server frames: queued ===========================================================================


async def test_queued_positions_count_from_one_and_move_up(server_factory: ServerFactory) -> None:
    srv = server_factory(SCE_MAX_CONCURRENT_RUNS="1", SCE_QUEUE_SIZE="3", SCE_PER_CLIENT_RUNS="10", SCE_POOL_SIZE="0")
    async with contextlib.AsyncExitStack() as stack:
        holder = await stack.enter_async_context(live_run(srv.ws_url, "input()\nprint('holder done')"))
        await holder.until("started")

        first = await stack.enter_async_context(live_run(srv.ws_url, "print('first')"))
        assert await first.next() == {"type": "queued", "position": 1}
        second = await stack.enter_async_context(live_run(srv.ws_url, "print('second')"))
        assert await second.next() == {"type": "queued", "position": 2}
        third = await stack.enter_async_context(live_run(srv.ws_url, "print('third')"))
        assert await third.next() == {"type": "queued", "position": 3}
        assert health(srv)["queued"] == 3

        # the first in line gives up: the others move up
        await first.send({"type": "kill"})
        first_result = await first.rest()
        assert second.frames[-1] == {"type": "queued", "position": 2}
        assert await second.next() == {"type": "queued", "position": 1}
        assert await third.next() == {"type": "queued", "position": 2}

        await holder.send({"type": "stdin", "data": "\n", "eof": True})
        holder_result = await holder.rest()
        second_result = await second.rest()
        third_result = await third.rest()

    assert [f["type"] for f in first_result.frames] == ["queued", "exit"]
    assert first_result.exit["reason"] == "killed" and first_result.close_code == 1000
    assert holder_result.text() == "holder done\n" and holder_result.close_code == 1000
    for result, text, positions in ((second_result, "second\n", [2, 1]), (third_result, "third\n", [3, 2, 1])):
        assert [f["position"] for f in result.of("queued")] == positions
        kinds = [f["type"] for f in result.frames]
        assert kinds[: len(positions)] == ["queued"] * len(positions)
        assert kinds[len(positions) :] == ["started", "stdout", "exit"]
        assert result.text() == text and result.exit["reason"] == "exit" and result.close_code == 1000


async def test_full_queue_is_busy_1013(server_factory: ServerFactory) -> None:
    srv = server_factory(SCE_MAX_CONCURRENT_RUNS="1", SCE_QUEUE_SIZE="1", SCE_PER_CLIENT_RUNS="10", SCE_POOL_SIZE="0")
    async with contextlib.AsyncExitStack() as stack:
        holder = await stack.enter_async_context(live_run(srv.ws_url, "input()"))
        await holder.until("started")
        waiter = await stack.enter_async_context(live_run(srv.ws_url, "print('waited')"))
        await waiter.until("queued")

        busy = await run_ws(srv.ws_url, "print('never')", within=WAIT_S)
        assert_error(busy, "busy", 1013)
        assert not busy.of("started")

        await holder.send({"type": "stdin", "eof": True})
        await holder.rest()
        waited = await waiter.rest()
    assert waited.text() == "waited\n"


# === server frames: output and exit =======================================================================


async def test_exit_frame_reports_code_and_byte_counts(server: ServerProcess) -> None:
    code = "import sys\nprint('out é')\nprint('err!', file=sys.stderr)\nsys.exit(3)"
    result = await run_ws(server.ws_url, code)
    assert result.text("stdout") == "out é\n"
    assert result.text("stderr") == "err!\n"
    assert_exit_shape(result.exit)
    assert result.exit["reason"] == "exit"
    assert result.exit["exit_code"] == 3 and result.exit["signal"] is None
    assert result.exit["stdout_bytes"] == len("out é\n".encode()) and result.exit["stderr_bytes"] == 5
    assert result.exit["truncated"] is False
    assert result.close_code == 1000


async def test_uncaught_exception_is_exit_1_with_traceback_on_stderr(server: ServerProcess) -> None:
    result = await run_ws(server.ws_url, "def f():\n    raise ValueError('nope')\nf()")
    assert result.exit["reason"] == "exit" and result.exit["exit_code"] == 1
    stderr = result.text("stderr")
    assert stderr.startswith("Traceback") and "ValueError: nope" in stderr and 'File "main.py"' in stderr


async def test_segfault_is_exit_139_with_sigsegv(server: ServerProcess) -> None:
    result = await run_ws(server.ws_url, "import ctypes\nctypes.string_at(0)")
    assert result.exit["reason"] == "exit"
    assert result.exit["exit_code"] == 139 and result.exit["signal"] == "SIGSEGV"
    assert result.close_code == 1000


async def test_memory_limit_is_oom(server: ServerProcess) -> None:
    result = await run_ws(server.ws_url, "x = b'x' * (512 * 1024 * 1024)\nprint('survived')")
    assert result.exit["reason"] == "oom", result.frames
    assert result.exit["exit_code"] is None and result.exit["signal"] is None
    assert "survived" not in result.text()
    assert result.close_code == 1000


async def test_output_limit_is_truncated_at_exactly_the_limit(tight: ServerProcess) -> None:
    result = await run_ws(tight.ws_url, "while True:\n    print('x' * 50)")
    assert_exit_shape(result.exit)
    assert result.exit["reason"] == "output_limit"
    assert result.exit["truncated"] is True
    assert result.exit["exit_code"] is None
    assert result.exit["stdout_bytes"] + result.exit["stderr_bytes"] == 16384  # SCE_OUTPUT_BYTES
    assert len(result.text().encode()) == 16384
    assert result.close_code == 1000


# === output framing ==================================================================================


async def test_prompt_without_newline_arrives_before_any_stdin(server: ServerProcess) -> None:
    async with live_run(server.ws_url, "name = input('name? ')\nprint('hi ' + name)") as run:
        await run.until("started")
        assert await run.next() == {"type": "stdout", "data": "name? ", "seq": 1}
        await run.send({"type": "stdin", "data": "bob\n"})
        result = await run.rest()
    assert result.text() == "name? hi bob\n"
    assert result.exit["exit_code"] == 0


async def test_a_complete_line_is_sent_while_the_program_waits(server: ServerProcess) -> None:
    async with live_run(server.ws_url, "print('line one')\ninput()\nprint('line two')") as run:
        await run.until_text("line one\n")  # before any stdin: not held back for more
        await run.send({"type": "stdin", "data": "\n"})
        result = await run.rest()
    assert result.text() == "line one\nline two\n"


async def test_frames_hold_whole_lines_and_lines_may_share_a_frame(tight: ServerProcess) -> None:
    # lines written back to back: none waits out the flush interval (100 ms here), so none is cut;
    # kept under 32 KB so that the engine's own read buffer never cuts one either
    code = "for i in range(400):\n    print(str(i) + ':' + 'y' * (i * 37 % 60))"
    expected = "".join(f"{i}:{'y' * (i * 37 % 60)}\n" for i in range(400))
    result = await run_ws(tight.ws_url, code)
    frames = result.of("stdout")
    assert result.text() == expected
    assert all(f["data"].endswith("\n") for f in frames), "a frame cut a line in two"
    assert len(frames) < 400, "every line had a frame of its own"
    assert result.exit["stdout_bytes"] == len(expected)


async def test_stdout_and_stderr_keep_their_order(server: ServerProcess) -> None:
    code = (
        "import sys, time\n"
        "for i in range(3):\n"
        "    print('out', i)\n"
        "    time.sleep(0.1)\n"
        "    print('err', i, file=sys.stderr)\n"
        "    time.sleep(0.1)\n"
    )
    result = await run_ws(server.ws_url, code)
    output = [(f["type"], f["data"]) for f in result.frames if f["type"] in ("stdout", "stderr")]
    assert output == [
        (kind, f"{word} {i}\n") for i in range(3) for kind, word in (("stdout", "out"), ("stderr", "err"))
    ]


async def test_invalid_utf8_arrives_as_replacement_character(server: ServerProcess) -> None:
    code = (
        "import sys, time\n"
        "out = sys.stdout.buffer\n"
        "out.write(b'bad \\xff byte\\n'); out.flush()\n"
        "e = 'é'.encode()\n"
        "out.write(b'split ' + e[:1]); out.flush()\n"  # a character cut between two writes
        "time.sleep(0.05)\n"
        "out.write(e[1:] + b' joined\\n'); out.flush()\n"
    )
    result = await run_ws(server.ws_url, code)
    assert result.text() == "bad \ufffd byte\nsplit é joined\n"


async def test_ansi_escapes_carriage_returns_and_tabs_pass_through(server: ServerProcess) -> None:
    code = r"print('\x1b[31mred\x1b[0m\tcol\rback'); print('dos line\r')"
    result = await run_ws(server.ws_url, code)
    assert result.text() == "\x1b[31mred\x1b[0m\tcol\rback\ndos line\r\n"


async def test_a_line_longer_than_the_longest_line_size_is_sent_in_pieces(tight: ServerProcess) -> None:
    # SCE_MAX_LINE_CHARS=80: 200 characters with no newline, and the program then waits
    code = "import sys\nsys.stdout.write('x' * 200)\nsys.stdout.flush()\ninput()\nprint('end')"
    async with live_run(tight.ws_url, code) as run:
        await run.until_text("x" * 200)  # all of it, while the line is still open
        pieces = [f["data"] for f in run.frames if f["type"] == "stdout"]
        await run.send({"type": "stdin", "data": "\n"})
        result = await run.rest()
    assert len(pieces) > 1, pieces
    # cut at the longest-line size (whole multiples of it, however reads fell), the rest when idle
    assert all(len(p) % 80 == 0 for p in pieces[:-1]), [len(p) for p in pieces]
    assert len(pieces[0]) < 200
    assert result.text() == "x" * 200 + "end\n"


async def test_no_output_is_lost_when_a_partial_line_is_flushed(server: ServerProcess) -> None:
    code = (
        "import sys, time\n"
        "end = time.monotonic() + 1.0\n"
        "n = 0\n"
        "while time.monotonic() < end:\n"
        "    sys.stdout.write('.'); sys.stdout.flush(); n += 1\n"
        "    time.sleep(0.0005)\n"
        "print()\n"
        "print(n)\n"
    )
    result = await run_ws(server.ws_url, code)
    assert result.exit["exit_code"] == 0
    # many partial lines flushed on their deadline while more output keeps arriving
    text = result.text()
    dots, _, count = text.removesuffix("\n").rpartition("\n")
    assert count.isdigit(), f"the last line was lost: {text[-40:]!r}"
    assert dots == "." * int(count), f"{int(count) - dots.count('.')} of {count} writes lost"
    assert result.exit["stdout_bytes"] == len(text.encode())


# === errors and their close codes =========================================================================


@pytest.mark.parametrize(
    "message",
    [
        pytest.param("print(1)", id="not-json"),
        pytest.param('{"type": "run", "code": ', id="truncated-json"),
        pytest.param("[]", id="array"),
        pytest.param('"run"', id="string"),
        pytest.param("42", id="number"),
        pytest.param({"type": "exec", "code": "print(1)"}, id="unknown-type"),
        pytest.param({"code": "print(1)"}, id="no-type"),
        pytest.param({"type": "run", "code": 5}, id="code-not-a-string"),
        pytest.param({"type": "run"}, id="code-missing"),
        pytest.param({"type": "run", "code": "x", "stdin": 5}, id="stdin-not-a-string"),
        pytest.param({"type": "run", "code": "x", "timeout": "5"}, id="timeout-not-a-number"),
        pytest.param({"type": "run", "code": "x", "timeout": -1}, id="timeout-negative"),
        pytest.param({"type": "stdin", "data": "x"}, id="stdin-before-run"),
        pytest.param({"type": "kill"}, id="kill-before-run"),
        pytest.param(b'{"type": "run", "code": "print(1)"}', id="binary-frame"),
    ],
)
async def test_bad_first_message_is_bad_message_1008(server: ServerProcess, message: Any) -> None:
    result = await exchange(server.ws_url, message)
    assert_error(result, "bad_message", 1008)
    assert len(result.frames) == 1  # nothing ran


@pytest.mark.parametrize(
    "message",
    [
        pytest.param({"type": "run", "code": "print(2)"}, id="second-run"),
        pytest.param({"type": "stdin", "data": 5}, id="stdin-data-not-a-string"),
        pytest.param({"type": "stdin", "eof": "yes"}, id="eof-not-a-boolean"),
        pytest.param({"type": "exec"}, id="unknown-type"),
        pytest.param("not json", id="not-json"),
        pytest.param(b'{"type": "kill"}', id="binary-frame"),
    ],
)
async def test_bad_message_during_a_run_is_bad_message_1008(server: ServerProcess, message: Any) -> None:
    async with live_run(server.ws_url, "input()\nprint('should not get here')") as run:
        await run.until("started")
        await run.send(message)
        result = await run.rest()
    assert_error(result, "bad_message", 1008)
    assert "should not get here" not in result.text()


async def test_no_run_frame_in_time_is_bad_message_1008(tight: ServerProcess) -> None:
    started = time.monotonic()
    result = await exchange(tight.ws_url)  # connect and say nothing (SCE_RUN_FRAME_TIMEOUT_S=0.5)
    assert_error(result, "bad_message", 1008)
    assert time.monotonic() - started < 10


async def test_code_over_the_limit_is_code_too_large_1009(tight: ServerProcess) -> None:
    result = await exchange(tight.ws_url, {"type": "run", "code": "#" * 201})  # SCE_CODE_MAX_BYTES=200
    assert_error(result, "code_too_large", 1009)


async def test_code_at_the_limit_runs(tight: ServerProcess) -> None:
    code = "print('at the limit')" + " " * (200 - 21)
    assert len(code.encode()) == 200
    result = await run_ws(tight.ws_url, code)
    assert result.text() == "at the limit\n"


async def test_frame_over_the_limit_is_message_too_large_1009(tight: ServerProcess) -> None:
    result = await exchange(tight.ws_url, {"type": "run", "code": "#" * 3000})  # SCE_MAX_MESSAGE_BYTES=2048
    assert_error(result, "message_too_large", 1009)


async def test_stdin_frame_over_the_limit_during_a_run_is_message_too_large_1009(tight: ServerProcess) -> None:
    async with live_run(tight.ws_url, "input()") as run:
        await run.until("started")
        await run.send({"type": "stdin", "data": "y" * 3000})
        result = await run.rest()
    assert_error(result, "message_too_large", 1009)


async def test_huge_frame_is_closed_1009(tight: ServerProcess) -> None:
    # far past the limit the server refuses to read the frame at all; the close code still says why
    result = await exchange(tight.ws_url, {"type": "run", "code": "#" * 100_000})
    assert result.close_code == 1009
    assert not result.of("started")


async def test_missing_image_is_unavailable_1011(no_image: ServerProcess) -> None:
    result = await run_ws(no_image.ws_url, "print(1)", within=WAIT_S)
    assert_error(result, "unavailable", 1011)
    assert not result.of("started")


# === before the upgrade: origin and token ===================================================================


async def expect_refused(url: str, status: int, **connect: Any) -> None:
    with pytest.raises(websockets.InvalidStatus) as caught:
        async with asyncio.timeout(WAIT_S), websockets.connect(url, **connect):
            pass
    assert caught.value.response.status_code == status


async def test_foreign_origin_is_refused_with_403(server: ServerProcess) -> None:
    await expect_refused(server.ws_url, 403, origin="http://evil.test")


async def test_no_origin_is_allowed(server: ServerProcess) -> None:
    result = await run_ws(server.ws_url, "print('cli')")
    assert result.text() == "cli\n"


async def test_own_origin_is_allowed(server: ServerProcess) -> None:
    result = await run_ws(server.ws_url, "print('own')", origin=server.url)
    assert result.text() == "own\n"


async def test_allow_listed_origin_is_allowed_others_refused(guarded: ServerProcess) -> None:
    auth = {"additional_headers": {"Authorization": "Bearer t1"}}
    result = await run_ws(guarded.ws_url, "print('listed')", origin="http://ok.test", **auth)
    assert result.text() == "listed\n"
    await expect_refused(guarded.ws_url, 403, origin="http://evil.test", **auth)


async def test_missing_or_bad_token_is_refused_with_401(guarded: ServerProcess) -> None:
    await expect_refused(guarded.ws_url, 401)
    await expect_refused(guarded.ws_url, 401, additional_headers={"Authorization": "Bearer nope"})
    await expect_refused(guarded.ws_url + "?token=nope", 401)


async def test_bearer_token_is_accepted(guarded: ServerProcess) -> None:
    result = await run_ws(guarded.ws_url, "print('bearer')", additional_headers={"Authorization": "Bearer t2"})
    assert result.text() == "bearer\n" and result.close_code == 1000


async def test_query_token_is_accepted(guarded: ServerProcess) -> None:
    result = await run_ws(guarded.ws_url + "?token=t1", "print('query')")
    assert result.text() == "query\n" and result.close_code == 1000


async def test_a_client_over_its_share_is_busy_1013(guarded: ServerProcess) -> None:
    # SCE_PER_CLIENT_RUNS=1, counted per token
    async with live_run(guarded.ws_url + "?token=t1", "input()\nprint('mine')") as mine:
        await mine.until("started")
        again = await run_ws(guarded.ws_url + "?token=t1", "print('again')", within=WAIT_S)
        assert_error(again, "busy", 1013)
        other = await run_ws(guarded.ws_url + "?token=t2", "print('other')")  # not a global limit
        assert other.text() == "other\n"
        await mine.send({"type": "stdin", "eof": True})
        result = await mine.rest()
    assert result.exit["reason"] == "exit"


# === the client goes away ==================================================================================


@pytest.mark.parametrize("how", ["close", "drop"])
async def test_a_client_that_leaves_mid_run_has_its_sandbox_removed(server: ServerProcess, how: str) -> None:
    async with live_run(server.ws_url, PRINT_CONTAINER_ID + "import time\ntime.sleep(60)") as run:
        await run.until("stdout")
        container_id = run.result.text().strip()
        assert re.fullmatch(r"[0-9a-f]{12}", container_id)
        assert await asyncio.to_thread(container_exists, container_id)
        assert health(server)["active_runs"] >= 1
        if how == "drop":
            run.ws.transport.abort()  # no close handshake: the TCP connection just ends
        else:
            await run.ws.close()
    await until_container_gone(container_id)
    await until_idle(server)


async def test_a_queued_client_that_leaves_is_removed_from_the_queue(server_factory: ServerFactory) -> None:
    srv = server_factory(SCE_MAX_CONCURRENT_RUNS="1", SCE_QUEUE_SIZE="4", SCE_PER_CLIENT_RUNS="10", SCE_POOL_SIZE="0")
    async with live_run(srv.ws_url, "input()") as holder:
        await holder.until("started")
        async with live_run(srv.ws_url, "print('never')") as waiter:
            await waiter.until("queued")
            assert health(srv)["queued"] == 1
        await until_health(srv, queued=0)
        async with live_run(srv.ws_url, "print('next')") as next_in_line:
            assert await next_in_line.next() == {"type": "queued", "position": 1}  # not 2: the leaver is gone
            await holder.send({"type": "stdin", "eof": True})
            result = await next_in_line.rest()
    assert result.text() == "next\n"
    await until_idle(srv)
