"""The client against a scripted loopback server: resume, deduplication and every way a run can be lost.

The scripted server plays the contract's version 2 (or version 1, without tokens) exactly as far
as each test needs; the real server is exercised in tests/integration/test_client.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from websockets.asyncio.server import ServerConnection, serve

from app.client import (
    AsyncClient,
    Busy,
    CannotResume,
    Client,
    ClientError,
    ConnectionLost,
    Execution,
    File,
    Image,
    InvalidRequest,
    NotAllowed,
    Reconnect,
    RunNotFound,
    ServerError,
    SessionBusy,
    cli,
    parse_watch_link,
    watch_link,
)
from app.protocol import ExitFrame, InputFrame, StartedFrame, StdoutFrame

pytestmark = pytest.mark.timeout(30)

LIMITS = {"timeout_s": 10, "memory_mb": 128, "output_bytes": 1000000, "pids": 64}
FAST = Reconnect(tries=4, first_delay_s=0.01, max_delay_s=0.05)
Handler = Callable[[ServerConnection], Awaitable[None]]


def drop(ws: ServerConnection) -> None:
    """The network goes away: no close frame, the TCP connection just ends."""
    ws.transport.abort()


def exit_frame(seq: int | None = None, **extra: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "exit", "reason": "exit", "exit_code": 0, "signal": None, "duration_ms": 5,
        "stdout_bytes": 0, "stderr_bytes": 0, "truncated": False, **extra,
    }  # fmt: skip
    if seq is not None:
        frame["seq"] = seq
    return frame


@asynccontextmanager
async def scripted(handler: Handler) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}"


class ResumableRun:
    """A v2 server's run: frames numbered by seq, kept, replayed after ``after`` on resume."""

    def __init__(self, lines: int, drop_after: set[int]) -> None:
        self.frames = [{"type": "stdout", "data": f"line {i}\n", "seq": i} for i in range(1, lines + 1)]
        self.frames.append(exit_frame(seq=lines + 1))
        self.drop_after = set(drop_after)
        self.firsts: list[dict[str, Any]] = []
        self.stdin: list[str] = []
        self.got_stdin = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        first = json.loads(await ws.recv())
        self.firsts.append(first)
        if first["type"] == "run":
            await ws.send(
                json.dumps({"type": "started", "id": "r1", "limits": LIMITS, "token": "T", "watch_token": "W"})
            )
            after = 0
        elif first["type"] == "resume" and first["token"] == "T":
            after = first["after"]
        else:
            await ws.send(json.dumps({"type": "error", "code": "not_found", "message": "no such run"}))
            await ws.close(1008)
            return
        for frame in self.frames[after:]:
            await ws.send(json.dumps(frame))
            if frame["seq"] in self.drop_after:
                self.drop_after.discard(frame["seq"])
                drop(ws)
                return
        async for message in ws:
            self.stdin.append(json.loads(message).get("data", ""))
            self.got_stdin.set()


async def test_three_drops_in_one_run_yield_every_frame_once() -> None:
    script = ResumableRun(lines=9, drop_after={2, 5, 8})
    async with scripted(script.handler) as url, asyncio.timeout(10), AsyncClient(url, reconnect=FAST).run("x") as run:
        frames = [frame async for frame in run]
    data = [f.data for f in frames if isinstance(f, StdoutFrame)]
    assert data == [f"line {i}\n" for i in range(1, 10)]
    assert isinstance(frames[0], StartedFrame) and isinstance(frames[-1], ExitFrame)
    assert run.resumes == 3 and run.exit is not None and run.exit.exit_code == 0
    assert [f["type"] for f in script.firsts] == ["run", "resume", "resume", "resume"]
    assert [f.get("after") for f in script.firsts[1:]] == [2, 5, 8]
    assert all(f.get("token") == "T" and f.get("id") == "r1" for f in script.firsts[1:])


async def test_frames_replayed_twice_are_shown_once() -> None:
    async def handler(ws: ServerConnection) -> None:
        first = json.loads(await ws.recv())
        if first["type"] == "run":
            await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS, "token": "T"}))
            await ws.send(json.dumps({"type": "stdout", "data": "a\n", "seq": 1}))
            drop(ws)
            return
        for seq, data in ((1, "a\n"), (2, "b\n")):  # a sloppy replay from the start
            await ws.send(json.dumps({"type": "stdout", "data": data, "seq": seq}))
        await ws.send(json.dumps(exit_frame(seq=3)))

    async with scripted(handler) as url, asyncio.timeout(10):
        run = AsyncClient(url, reconnect=FAST).run("x")
        data = [f.data async for f in run if isinstance(f, StdoutFrame)]
    assert data == ["a\n", "b\n"]


async def test_a_drop_on_a_version_1_server_says_it_cannot_resume() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS}))  # no token: version 1
        await ws.send(json.dumps({"type": "stdout", "data": "a\n"}))
        drop(ws)

    async with scripted(handler) as url, asyncio.timeout(10):
        run = AsyncClient(url, reconnect=FAST).run("x")
        seen = []
        with pytest.raises(CannotResume, match="cannot resume runs"):
            async for frame in run:
                seen.append(frame.type)
    assert seen == ["started", "stdout"]


async def test_a_drop_before_started_cannot_be_resumed() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "queued", "position": 1}))
        drop(ws)

    async with scripted(handler) as url, asyncio.timeout(10):
        with pytest.raises(CannotResume, match="before the run started"):
            async for _ in AsyncClient(url, reconnect=FAST).run("x"):
                pass


async def test_not_found_after_a_drop_is_run_not_found() -> None:
    script = ResumableRun(lines=3, drop_after={1})
    script_handler = script.handler

    async def forgetful(ws: ServerConnection) -> None:
        if script.firsts:  # the server lost the run (restarted, or the grace ran out)
            await ws.recv()
            await ws.send(json.dumps({"type": "error", "code": "not_found", "message": "no such run"}))
            await ws.close(1008)
            return
        await script_handler(ws)

    async with scripted(forgetful) as url, asyncio.timeout(10):
        with pytest.raises(RunNotFound) as caught:
            async for _ in AsyncClient(url, reconnect=FAST).run("x"):
                pass
    assert caught.value.code == "not_found" and isinstance(caught.value, ServerError)


async def test_tries_are_bounded_when_the_server_cannot_take_the_run_back() -> None:
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.recv()
        if connections == 1:
            await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS, "token": "T"}))
        drop(ws)  # and every resume is dropped at once, before a frame

    async with scripted(handler) as url, asyncio.timeout(10):
        with pytest.raises(ConnectionLost, match="4 tries to resume failed"):
            async for _ in AsyncClient(url, reconnect=FAST).run("x"):
                pass
    assert connections == 5  # the run, then the four tries


async def test_tries_are_bounded_when_nothing_listens_any_more() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS, "token": "T"}))
        drop(ws)

    async with asyncio.timeout(10):
        async with scripted(handler) as url:
            run = AsyncClient(url, reconnect=FAST).run("x")
            assert isinstance(await anext(run), StartedFrame)
        # the server and its listening socket are gone: every try is refused
        with pytest.raises(ConnectionLost, match="4 tries to resume failed"):
            await anext(run)


async def test_stdin_sent_while_dropped_goes_on_the_resumed_connection() -> None:
    script = ResumableRun(lines=2, drop_after={1})
    script.frames.pop()  # no exit: the run waits for input

    async with scripted(script.handler) as url, asyncio.timeout(10), AsyncClient(url, reconnect=FAST).run("x") as run:
        seen = [await anext(run), await anext(run)]  # started, line 1, then the drop
        sending = asyncio.ensure_future(run.stdin("typed\n"))
        assert isinstance(await anext(run), StdoutFrame)  # line 2, after the resume
        await sending
        await script.got_stdin.wait()
    assert [f.type for f in seen] == ["started", "stdout"]
    assert script.stdin == ["typed\n"]


async def test_an_error_frame_is_raised_with_its_code() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "error", "code": "busy", "message": "all sandboxes are busy"}))
        await ws.close(1013)

    async with scripted(handler) as url, asyncio.timeout(10):
        with pytest.raises(ServerError) as caught:
            async for _ in AsyncClient(url).run("x"):
                pass
    assert (caught.value.code, caught.value.message) == ("busy", "all sandboxes are busy")


async def test_unknown_frame_types_and_fields_are_ignored() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS, "colour": "red"}))
        await ws.send(json.dumps({"type": "hologram", "data": "?"}))
        await ws.send(json.dumps(exit_frame(future_field=1)))
        await ws.close()

    async with scripted(handler) as url, asyncio.timeout(10):
        types = [f.type async for f in AsyncClient(url).run("x")]
    assert types == ["started", "exit"]


async def test_a_watcher_cannot_send_and_reconnects_with_watch() -> None:
    firsts: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        firsts.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS}))
        if len(firsts) == 1:
            await ws.send(json.dumps({"type": "stdout", "data": "a\n", "seq": 1}))
            drop(ws)
            return
        await ws.send(json.dumps({"type": "stdout", "data": "a\n", "seq": 1}))
        await ws.send(json.dumps(exit_frame(seq=2)))

    async with scripted(handler) as url, asyncio.timeout(10):
        watch = AsyncClient(url, reconnect=FAST).watch("r", "W")
        with pytest.raises(ClientError, match="watcher"):
            await watch.kill()
        types = [f.type async for f in watch]
    assert types == ["started", "stdout", "exit"]
    assert firsts == [{"type": "watch", "id": "r", "token": "W"}] * 2


async def test_a_request_any_server_refuses_fails_before_sending() -> None:
    client = AsyncClient("http://127.0.0.1:9")
    with pytest.raises(InvalidRequest, match=r"'\.\.'"):
        client.run("x", files={"../up.txt": "x"})
    with pytest.raises(InvalidRequest, match="positive"):
        client.run("x", timeout=0)


async def test_no_server_is_connection_lost() -> None:
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionLost, match="cannot connect"):
            async for _ in AsyncClient("http://127.0.0.1:9").run("x"):
                pass


def test_the_blocking_client_yields_the_same_frames() -> None:
    script = ResumableRun(lines=3, drop_after={2})

    async def main() -> None:
        async with scripted(script.handler) as url:

            def blocking() -> list[str]:
                with Client(url, reconnect=FAST) as client, client.start("x") as run:
                    return [f.data for f in run if isinstance(f, StdoutFrame)]

            assert await asyncio.to_thread(blocking) == ["line 1\n", "line 2\n", "line 3\n"]

    asyncio.run(main())


def test_urls_accept_http_and_ws_schemes() -> None:
    assert AsyncClient("http://h:1").ws_url == "ws://h:1/run"
    assert AsyncClient("https://h/sce/").ws_url == "wss://h/sce/run"
    assert AsyncClient("h:5000").base_url == "http://h:5000"
    with pytest.raises(InvalidRequest):
        AsyncClient("ftp://h")


_ = websockets  # the scripted server is websockets' own


async def test_a_server_that_refuses_the_resume_frame_cannot_resume() -> None:
    async def handler(ws: ServerConnection) -> None:
        first = json.loads(await ws.recv())
        if first["type"] != "run":  # a server with tokens but no resume yet
            refusal = {"type": "error", "code": "bad_message", "message": "the first frame must be run"}
            await ws.send(json.dumps(refusal))
            await ws.close(1008)
            return
        await ws.send(json.dumps({"type": "started", "id": "r", "limits": LIMITS, "token": "T"}))
        drop(ws)

    async with scripted(handler) as url, asyncio.timeout(10):
        with pytest.raises(CannotResume, match="could not resume: the first frame must be run"):
            async for _ in AsyncClient(url, reconnect=FAST).run("x"):
                pass


# --- the result object, callbacks, typed errors and links (v3) ----------------------------------------

PNG = base64.b64encode(b"\x89PNG fake").decode()


def rich_run(*, echo_input: bool = True) -> Handler:
    """A v3 server's run with everything a result gathers; ``echo_input=False`` plays a v2 server."""

    async def handler(ws: ServerConnection) -> None:
        first = json.loads(await ws.recv())
        handler.first = first  # type: ignore[attr-defined]
        frames: list[dict[str, Any]] = [
            {"type": "started", "id": "r9", "limits": LIMITS, "token": "T", "watch_token": "W"},
            {"type": "stdout", "data": "name? "},
            {"type": "input", "data": "Ada\n", "eof": False},
            {"type": "stdout", "data": "hi Ada\n"},
            {"type": "stderr", "data": "warn\n"},
            {"type": "image", "mime": "image/png", "data": PNG, "width": 2, "height": 1},
            {"type": "image", "mime": "image/svg+xml", "omitted": "too_large"},
            {"type": "file", "path": "out/r.csv", "size": 4, "mime": "text/csv", "data": "YSxiCg=="},
            exit_frame(exit_code=1, exception={"name": "ValueError", "value": "bad", "line": 3}),
        ]
        for seq, frame in enumerate(f for f in frames if echo_input or f["type"] != "input"):
            if seq:
                frame["seq"] = seq
            await ws.send(json.dumps(frame))
        await ws.close()

    return handler


async def test_awaiting_a_run_gives_one_execution_and_callbacks_see_it_as_it_comes() -> None:
    seen: list[tuple[str, object]] = []

    async def on_image(image: Image) -> None:  # an async callback is awaited
        seen.append(("image", image.name))

    handler = rich_run()
    async with scripted(handler) as url, asyncio.timeout(10):
        result = await AsyncClient(url).run(
            "x",
            filename="hottest.py",
            on_stdout=lambda s: seen.append(("stdout", s)),
            on_stderr=lambda s: seen.append(("stderr", s)),
            on_input=lambda s: seen.append(("input", s)),
            on_image=on_image,
            on_file=lambda f: seen.append(("file", f.name)),
        )
    assert handler.first["filename"] == "hottest.py"  # type: ignore[attr-defined]
    assert isinstance(result, Execution) and result.id == "r9"
    assert (result.stdout, result.stderr, result.input) == ("name? hi Ada\n", "warn\n", "Ada\n")
    assert result.output == "name? hi Ada\nwarn\n"
    assert result.images == [
        Image("image-1.png", "image/png", b"\x89PNG fake", 2, 1, None),
        Image("image-2.svg", "image/svg+xml", None, None, None, "too_large"),
    ]
    assert result.files == [File("out/r.csv", "text/csv", 4, b"a,b\n", None)]
    assert result.exception is not None and (result.exception.name, result.exception.line) == ("ValueError", 3)
    assert (result.reason, result.exit_code, result.ok, result.error) == ("exit", 1, False, "ValueError: bad")
    assert seen == [
        ("stdout", "name? "),
        ("input", "Ada\n"),
        ("stdout", "hi Ada\n"),
        ("stderr", "warn\n"),
        ("image", "image-1.png"),
        ("image", "image-2.svg"),
        ("file", "out/r.csv"),
    ]


async def test_frames_stay_available_and_fill_the_execution_as_they_pass() -> None:
    async with scripted(rich_run()) as url, asyncio.timeout(10), AsyncClient(url).run("x") as run:
        types = [frame.type async for frame in run]
    assert types == ["started", "stdout", "input", "stdout", "stderr", "image", "image", "file", "exit"]
    assert run.execution.stdout == "name? hi Ada\n" and run.execution.exit is run.exit


async def test_a_version_2_server_without_input_frames_gives_the_same_result() -> None:
    async with scripted(rich_run(echo_input=False)) as url, asyncio.timeout(10):
        result = await AsyncClient(url).run("x")
    assert result.stdout == "name? hi Ada\n" and result.input == ""


async def test_a_callback_that_fails_ends_the_run_and_is_raised() -> None:
    def boom(_: str) -> None:
        raise RuntimeError("callback broke")

    async with scripted(rich_run()) as url, asyncio.timeout(10):
        with pytest.raises(RuntimeError, match="callback broke"):
            await AsyncClient(url).run("x", on_stderr=boom)


def test_the_blocking_run_returns_the_execution() -> None:
    async def main() -> None:
        async with scripted(rich_run()) as url:

            def blocking() -> Execution:
                out: list[str] = []
                with Client(url) as client:
                    result = client.run("x", on_stdout=out.append)
                assert out == ["name? ", "hi Ada\n"]
                return result

            result = await asyncio.to_thread(blocking)
            assert result.files[0].data == b"a,b\n" and result.exit_code == 1

    asyncio.run(main())


def refusing(code: str, message: str) -> Handler:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "error", "code": code, "message": message}))
        await ws.close(1013)

    return handler


async def test_busy_says_when_to_try_again() -> None:
    async with scripted(refusing("busy", "this client already has 2 run(s) running or waiting")) as url:
        with pytest.raises(Busy) as caught:
            await AsyncClient(url).run("x")
    busy = caught.value
    assert isinstance(busy, ServerError) and busy.retry_after is not None and busy.retry_after > 0
    assert "wait for one of your runs to end" in str(busy) and "retry in about" in str(busy)
    async with scripted(refusing("busy", "all sandboxes are busy and the wait queue is full")) as url:
        with pytest.raises(Busy, match=r"try again in \d+ s"):
            await AsyncClient(url).run("x")
    async with scripted(refusing("session_busy", "the session is running")) as url:
        with pytest.raises(SessionBusy, match="wait for the session's current run"):
            await AsyncClient(url).run("x")
    async with scripted(refusing("unauthorized", "no token")) as url:
        with pytest.raises(NotAllowed, match="token"):
            await AsyncClient(url).run("x")


def test_a_page_of_the_server_is_not_its_url_and_the_message_says_which_is() -> None:
    with pytest.raises(InvalidRequest, match=r"editor page.*pass its base URL, http://h:5000 "):
        AsyncClient("http://h:5000/ui")
    with pytest.raises(InvalidRequest, match=r"base URL, https://h/sce "):
        AsyncClient("https://h/sce/ui/")
    assert AsyncClient("http://h/sce").base_url == "http://h/sce"


async def test_a_404_that_is_not_the_service_says_to_pass_the_base_url() -> None:
    async def page_not_found(connection: Any, request: Any) -> Any:
        return connection.respond(404, "<h1>Not Found</h1><p>The requested URL was not found</p>")

    async with serve(rich_run(), "127.0.0.1", 0, process_request=page_not_found) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        with pytest.raises(ServerError, match="pass the server's base URL") as caught:
            await AsyncClient(f"http://127.0.0.1:{port}/elsewhere").run("x")
    assert "requested URL" not in str(caught.value) and not isinstance(caught.value, RunNotFound)


def test_watch_links_round_trip_in_the_editors_form() -> None:
    link = watch_link("http://h:5000/sce", "0a1b", "tok-EN_x")
    assert link == "http://h:5000/sce/ui#watch=0a1b%3Atok-EN_x"
    assert parse_watch_link(link) == ("http://h:5000/sce", "0a1b", "tok-EN_x")
    # the editor's own link: a query kept, a raw ':' and the code riding along
    assert parse_watch_link("http://h/ui?timeout=5#watch=id:tk&code=cHJpbnQ") == ("http://h", "id", "tk")
    with pytest.raises(InvalidRequest, match="not a watch link"):
        parse_watch_link("http://h/ui#code=abc")


def test_input_frames_are_typed() -> None:
    assert InputFrame(data="yes\n", eof=True, seq=3).wire() == {"type": "input", "data": "yes\n", "eof": True, "seq": 3}


def test_sce_watch_shows_typed_input_in_its_place_and_sce_run_leaves_it_to_the_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    frames: list[StdoutFrame | InputFrame] = [
        StdoutFrame(data="more? ", seq=1),
        InputFrame(data="yes\n", eof=False, seq=2),
        StdoutFrame(data="got yes\n", seq=3),
    ]
    for echo in (True, False):
        output = cli.Output(None, echo_input=echo)
        for frame in frames:
            output.show(frame)
        assert capsys.readouterr().out == ("more? yes\ngot yes\n" if echo else "more? got yes\n")
