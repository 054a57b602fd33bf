"""The asyncio client: a run gathered into one result, or followed frame by frame, across drops.

    async with AsyncClient("http://127.0.0.1:5000") as client:
        result = await client.run("print(2 + 2)", on_stdout=print)   # an Execution
        async with client.run("print(input() * 2)") as run:           # the frames, live
            await run.stdin("ab\\n", eof=True)
            async for frame in run:
                ...
        print(run.execution.stdout, run.exit.reason)

``client.run()`` returns an ``AsyncRun``: awaiting it runs to the end and gives the
``Execution`` (callbacks fire as things arrive); iterating it gives the frames themselves (the
callbacks fire too, and ``run.execution`` fills in as they pass).

**Resume.** When the connection breaks without a close frame (a network drop), the client
reconnects by itself and sends ``resume`` with the last ``seq`` it saw; the server replays what
came after. Frames are deduplicated by ``seq``, so the caller sees each exactly once. Tries are
bounded (``Reconnect``); if they run out, ``ConnectionLost``. If the server no longer has the run,
``RunNotFound``. A server that gives no ``token`` in ``started`` (protocol version 1) cannot
resume: a drop there is ``CannotResume``, said in words.

A clean close by the caller (leaving the ``async with``, ``aclose()``) is the end of the run: the
server kills the program, as the contract says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlencode

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from app.client.answers import not_the_service, raise_for_error, seconds
from app.client.errors import CannotResume, ClientError, ConnectionLost, server_error
from app.client.requests import Files, endpoints, run_fields, run_frame
from app.client.result import Callback, Callbacks, Collector, Execution

if TYPE_CHECKING:
    from app.client.session import AsyncSession
from app.protocol import ErrorFrame, ExitFrame, RunAnswer, RuntimeInfo, ServerFrame, StartedFrame, parse_server_frame


@dataclass(frozen=True)
class Reconnect:
    """How hard to try to get a dropped run back: ``tries`` connections, the first at once,
    then waiting ``first_delay_s``, doubling up to ``max_delay_s`` (about 6 s in all by default,
    well inside the server's 15 s resume grace)."""

    tries: int = 6
    first_delay_s: float = 0.1
    max_delay_s: float = 2.0

    def delays(self) -> list[float]:
        return [0.0] + [min(self.first_delay_s * 2**i, self.max_delay_s) for i in range(self.tries - 1)]


DEFAULT_RECONNECT = Reconnect()


class AsyncClient:
    """One server. Cheap to make; holds an HTTP connection pool for ``post_run`` and friends."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:5000",
        token: str | None = None,
        *,
        reconnect: Reconnect = DEFAULT_RECONNECT,
        open_timeout_s: float = 10.0,
        use_env_proxy: bool = False,
    ) -> None:
        self.base_url, self.ws_url = endpoints(url)
        self.token = token
        self.reconnect = reconnect
        self.open_timeout_s = open_timeout_s
        self.use_env_proxy = use_env_proxy
        self._http: httpx.AsyncClient | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- WebSocket ----------------------------------------------------------------------------
    def run(
        self,
        code: str,
        *,
        stdin: str | None = None,
        files: Files | None = None,
        runtime: str | None = None,
        timeout: float | None = None,
        filename: str | None = None,
        stats: bool = False,
        on_stdout: Callback | None = None,
        on_stderr: Callback | None = None,
        on_image: Callback | None = None,
        on_file: Callback | None = None,
        on_input: Callback | None = None,
        on_result: Callback | None = None,
        on_exit: Callback | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> AsyncRun:
        """A run, started on first use: ``await`` it for the ``Execution``, or iterate its frames.

        ``filename`` is the name tracebacks give the code (v3; default ``main.py``). The
        ``on_*`` callbacks are called as output, images, files and input arrive; ``on_notice``
        with a sentence when the connection drops and when the run is resumed.
        """
        frame = run_frame(
            code=code, stdin=stdin, files=files, runtime=runtime, timeout=timeout, filename=filename, stats=stats
        )
        callbacks = Callbacks(on_stdout, on_stderr, on_image, on_file, on_input, on_result, on_exit)
        return AsyncRun(self, frame, callbacks=callbacks, on_notice=on_notice)

    start = run  # the same: a live run whose frames can be iterated (as the blocking client's start)

    def watch(
        self,
        run_id: str,
        token: str,
        *,
        on_stdout: Callback | None = None,
        on_stderr: Callback | None = None,
        on_image: Callback | None = None,
        on_file: Callback | None = None,
        on_input: Callback | None = None,
        on_result: Callback | None = None,
        on_exit: Callback | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> AsyncRun:
        """Another run, read-only, from ``started`` on (``token``: its watch_token or token).

        ``await`` it for the ``Execution`` or iterate its frames, as with ``run``.
        """
        callbacks = Callbacks(on_stdout, on_stderr, on_image, on_file, on_input, on_result, on_exit)
        first = {"type": "watch", "id": run_id, "token": token}
        return AsyncRun(self, first, watching=True, callbacks=callbacks, on_notice=on_notice)

    async def connect(self, session: str | None = None) -> ClientConnection:
        """A WebSocket to ``/run``; for a run in a session, ``?session=ID`` lets a balancer in front
        of several servers send the upgrade to the server that holds the session (PROTOCOL.md)."""
        url = self.ws_url
        if session is not None:
            url += ("&" if "?" in url else "?") + urlencode({"session": session})
        return await websockets.connect(
            url,
            additional_headers=self.headers,
            open_timeout=self.open_timeout_s,
            max_size=None,  # the server bounds its frames (images and files out are its budget)
            proxy=True if self.use_env_proxy else None,
        )

    # -- HTTP ----------------------------------------------------------------------------------
    def session(self, *, runtime: str | None = None, files: Files | None = None) -> AsyncSession:
        """A session (v3), made on ``async with`` (or ``await session.open()``), ended on leaving it."""
        from app.client.session import AsyncSession  # it builds AsyncRuns: imported here, not in a cycle

        return AsyncSession(self, runtime=runtime, files=files)

    def http(self) -> httpx.AsyncClient:
        """The HTTP connection pool for this server's plain endpoints."""
        return self._client()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.base_url, headers=self.headers, trust_env=self.use_env_proxy, timeout=None
            )
        return self._http

    async def post_run(
        self,
        code: str,
        *,
        stdin: str | None = None,
        files: Files | None = None,
        runtime: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the run's wall-clock limit, sent to the server)
        filename: str | None = None,
    ) -> RunAnswer:
        """``POST /run``: the whole run, answered when it ends (the raw answer; ``run`` is nicer)."""
        body = run_fields(code=code, stdin=stdin, files=files, runtime=runtime, timeout=timeout, filename=filename)
        try:
            response = await self._client().post("/run", json=body)
        except httpx.HTTPError as exc:
            raise ConnectionLost(f"POST /run failed: {exc}") from exc
        return answer(response, RunAnswer)

    async def runtimes(self) -> list[RuntimeInfo]:
        """``GET /runtimes`` (v2): what a run may ask for, the default first."""
        try:
            response = await self._client().get("/runtimes")
        except httpx.HTTPError as exc:
            raise ConnectionLost(f"GET /runtimes failed: {exc}") from exc
        raise_for_error(response)
        return [RuntimeInfo.model_validate(item) for item in response.json()]


def answer(response: httpx.Response, model: type[RunAnswer]) -> RunAnswer:
    raise_for_error(response)
    return model.model_validate(response.json())


class AsyncRun:
    """One run (or one watched run): iterate for its frames; ``stdin()`` and ``kill()`` at any time.

    ``await run`` (or ``await run.wait()``) follows it to the end and gives its ``Execution``.
    Iteration yields the server's frames as models (``QueuedFrame``, ``StartedFrame``,
    ``StdoutFrame``...) up to and including ``ExitFrame``, then stops. An ``error`` frame is
    raised as ``ServerError`` (``RunNotFound`` for ``not_found``, ``Busy``...). ``id``,
    ``token``, ``watch_token``, ``exit`` and ``execution`` fill in as the frames arrive;
    ``notices`` lists what was said about the connection (dropped, resumed).
    """

    def __init__(
        self,
        client: AsyncClient,
        first: dict[str, Any],
        *,
        watching: bool = False,
        callbacks: Callbacks | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._first = first
        self.watching = watching
        self.id: str | None = first.get("id")
        self.token: str | None = first.get("token")
        self.watch_token: str | None = None
        self.started: StartedFrame | None = None
        self.exit: ExitFrame | None = None
        self.last_seq = 0
        self.resumes = 0  # how many times a dropped connection was taken up again
        self._tries = 0  # tries to resume since the last frame arrived
        self.notices: list[str] = []  # what was said, in words, when the connection dropped and came back
        self._on_notice = on_notice
        self._collector = Collector(callbacks)
        self._ws: ClientConnection | None = None
        self._opening = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._ended: BaseException | None = None  # set once: the run is over for this client
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Connect and send the first frame; does nothing if already open."""
        async with self._opening:
            if self._ws is None and self._ended is None:
                ws = await self._connect_or_lose()
                await ws.send(json.dumps(self._first))
                self._ws = ws

    async def _connect_or_lose(self) -> ClientConnection:
        try:
            return await self._client.connect(self._first.get("session"))
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            code, message = _HANDSHAKE.get(status, "internal"), f"the server refused the WebSocket (HTTP {status})"
            try:
                body = json.loads(exc.response.body or b"")
                code, message = str(body["code"]), str(body["error"])
            except (ValueError, KeyError, TypeError):
                if status == 404:  # not the service's own refusal: the URL is not the service
                    code, message = "internal", not_the_service(self._client.ws_url)
            retry = exc.response.headers.get("Retry-After")
            raise server_error(code, message, status=status, retry_after=seconds(retry)) from None
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            raise ConnectionLost(f"cannot connect to {self._client.ws_url}: {exc}") from exc

    async def aclose(self) -> None:
        """Close the connection (the server ends a run still going). Safe to call twice."""
        self._closed = True
        await self._end(ConnectionLost("the run was closed by the client"))

    async def _end(self, reason: BaseException) -> None:
        if self._ended is None:
            self._ended = reason
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        async with self._changed:
            self._changed.notify_all()

    @property
    def execution(self) -> Execution:
        """What the run produced so far (all of it once ``exit`` has passed)."""
        return self._collector.execution

    async def wait(self) -> Execution:
        """Follow the run to its end (frames not yet read are read) and give its ``Execution``."""
        async with self:
            async for _ in self:
                pass
        return self.execution

    def __await__(self) -> Generator[Any, None, Execution]:
        return self.wait().__await__()

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        if self._on_notice is not None:
            self._on_notice(message)

    # -- frames out ----------------------------------------------------------------------------
    async def stdin(self, data: str = "", *, eof: bool = False) -> None:
        """Write to the program's standard input; ``eof=True`` closes it afterwards. No-op once the run is over."""
        await self._send({"type": "stdin", "data": data, "eof": eof})

    async def kill(self) -> None:
        """Stop the program now; its ``exit`` frame follows with reason ``killed``. No-op once the run is over."""
        await self._send({"type": "kill"})

    async def _send(self, frame: dict[str, Any]) -> None:
        if self.watching:
            raise ClientError("a watcher cannot send stdin or kill")
        await self.open()
        text = json.dumps(frame)
        while self._ended is None:
            ws = self._ws
            if ws is not None:
                try:
                    await ws.send(text)
                    return
                except websockets.ConnectionClosed:
                    pass
            # dropped: the reader is resuming; send on the connection that replaces this one
            await self._replaced(ws)

    async def _replaced(self, ws: ClientConnection | None) -> None:
        def moved_on() -> bool:
            return self._ws is not ws or self._ended is not None

        async with self._changed:
            await self._changed.wait_for(moved_on)

    async def wait_resumed(self, times: int = 1) -> None:
        """Until the run has been resumed ``times`` times in all (or is over).

        ``stdin`` written in the instant a connection breaks can be lost with it (the protocol
        numbers the server's frames, not the client's); input that must arrive can wait for this.
        The resume itself happens while the run is being iterated.
        """

        def done() -> bool:
            return self.resumes >= times or self._ended is not None

        async with self._changed:
            await self._changed.wait_for(done)

    # -- frames in ------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[ServerFrame]:
        return self

    async def __anext__(self) -> ServerFrame:
        await self.open()
        while True:
            ws = self._ws
            if ws is None or self._ended is not None:
                if self._closed or self.exit is not None:
                    raise StopAsyncIteration
                raise self._ended or ConnectionLost("the connection is closed")
            try:
                raw = await ws.recv()
            except websockets.ConnectionClosed as exc:
                await self._recover(exc)
                continue
            frame = self._accept(raw)
            if frame is None:
                continue
            if isinstance(frame, ErrorFrame):
                error: ClientError = server_error(frame.code, frame.message)
                if frame.code == "bad_message" and self._tries:
                    # the first answer to our resume is a refusal of it: a server without resume
                    error = CannotResume(f"the connection dropped, and the server could not resume: {frame.message}")
                await self._end(error)
                raise error
            self._tries = 0  # the connection works: a later drop gets every try again
            try:
                await self._collector.feed(frame)
            except BaseException:
                await self.aclose()  # a callback failed: the run ends with it
                raise
            if isinstance(frame, ExitFrame):
                self.exit = frame
                await self._end(StopAsyncIteration())
            return frame

    def _accept(self, raw: str | bytes) -> ServerFrame | None:
        """The frame, or None for one to skip: an unknown type, or one already seen (by ``seq``)."""
        try:
            frame = parse_server_frame(raw)
        except ValueError as exc:
            raise ClientError(f"the server sent a frame that breaks the protocol: {exc}") from exc
        if frame is None:
            return None
        if isinstance(frame, StartedFrame):
            if self.started is not None:
                return None  # a watcher's reconnection starts over from `started`
            self.started = frame
            self.id = frame.id
            self.token = frame.token if not self.watching else self.token
            self.watch_token = frame.watch_token
            return frame
        seq = getattr(frame, "seq", None)
        if seq is not None:
            if seq <= self.last_seq:
                return None
            self.last_seq = seq
        return frame

    async def _recover(self, exc: websockets.ConnectionClosed) -> None:
        """After the connection ended without ``exit``: resume, or say why not."""
        if exc.rcvd is not None:  # the server closed it on purpose: nothing to resume
            code, why = exc.rcvd.code, exc.rcvd.reason
            await self._end(ConnectionLost(f"the server closed the connection ({code}{' ' + why if why else ''})"))
            return
        if self.id is None or self.started is None:
            await self._end(CannotResume("the connection dropped before the run started; it cannot be resumed"))
            return
        if not self.token:
            await self._end(
                CannotResume("the connection dropped, and this server cannot resume runs (no token in `started`)")
            )
            return
        first = (
            {"type": "watch", "id": self.id, "token": self.token}
            if self.watching
            else {"type": "resume", "id": self.id, "token": self.token, "after": self.last_seq}
        )
        last: BaseException = exc
        delays = self._client.reconnect.delays()
        self._notice(f"the connection dropped; resuming run {self.id}")
        # counted until a frame arrives: a server that accepts and drops at once uses them up too
        while self._tries < len(delays):
            await asyncio.sleep(delays[self._tries])  # backoff between tries, not synchronisation
            self._tries += 1
            if self._ended is not None:
                return
            try:
                ws = await self._client.connect(self._first.get("session"))
                await ws.send(json.dumps(first))
            except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.ConnectionClosed) as error:
                last = error
                continue
            self.resumes += 1
            self._ws = ws
            async with self._changed:
                self._changed.notify_all()
            self._notice(f"resumed run {self.id}")
            return
        tries = self._client.reconnect.tries
        await self._end(ConnectionLost(f"the connection dropped and {tries} tries to resume failed: {last}"))


# HTTP statuses a refused WebSocket handshake can carry, as the protocol's codes
_HANDSHAKE = {401: "unauthorized", 403: "forbidden", 404: "not_found", 503: "unavailable"}
