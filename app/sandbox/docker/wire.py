"""HTTP/1.1 to a local engine's Unix socket, on the event loop, for the calls every run makes.

A run costs the engine a create, an attach, a start and a remove. Through docker-py each is a
blocking call in an executor thread: requests and urllib3 prepare it, http.client parses the
answer's headers with the ``email`` package, and the result hops back to the event loop. That was
~0.6 ms of server CPU per call on its own, more under the GIL contention of 16 such threads;
at saturation runs per second are the cores over the machine's CPU per run, the server's
included (docs/PERFORMANCE.md). Here h11 parses and asyncio carries the bytes: ~0.25 ms a call,
no thread.

Only these four calls, only on a Unix socket (the engine on this host: ``wire_for``). Everything
rarer (health, images, listing, kill, inspect, stats) and every other transport (TLS, ssh) stays
with docker-py. The request bodies are docker-py's own (``create_body``), so both paths send the
engine the same container. Errors are docker-py's exceptions (``WireError`` is an ``APIError``,
``WireNotFound`` a ``NotFound``), so callers catch one family whichever path served them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

import docker.errors
import docker.utils.utils
import h11
from docker.transport.unixconn import UnixHTTPAdapter

DEFAULT_TIMEOUT_S = 30.0
MAX_IDLE_CONNECTIONS = 16
READ_SIZE = 65536


class WireError(docker.errors.APIError):  # type: ignore[misc]
    """The engine answered with an error status."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(f"{status} from the engine: {explanation}", None, explanation)
        self.status = status

    @property
    def status_code(self) -> int:
        return self.status

    def __str__(self) -> str:  # APIError's reads a requests response, which a wire error has not
        return str(self.args[0])


class WireNotFound(WireError, docker.errors.NotFound):  # type: ignore[misc]
    """404: no such container (or image, for a create)."""


def _error(status: int, body: bytes) -> WireError:
    try:
        explanation = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        explanation = body[:200].decode("utf-8", "replace")
    return (WireNotFound if status == 404 else WireError)(status, explanation)


def create_body(api: Any, kwargs: dict[str, Any]) -> bytes:
    """``POST /containers/create``'s JSON, made the way ``APIClient.create_container`` makes it."""
    kw = dict(kwargs)
    environment = kw.get("environment")
    if isinstance(environment, dict):
        environment = docker.utils.utils.format_environment(environment)
    kw["environment"] = api._proxy_configs.inject_proxy_environment(environment) or None
    config = api.create_container_config(**kw)
    return json.dumps({k: v for k, v in config.items() if v is not None}).encode()


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.used = False  # a kept-alive connection the engine may have closed meanwhile
        self.answered = False  # the current call's answer has begun

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class EngineWire:
    """Keep-alive HTTP/1.1 connections to one engine socket; one new connection per attach."""

    def __init__(self, socket_path: str, api_version: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.socket_path = socket_path
        self.prefix = f"/v{api_version}"
        self.timeout_s = timeout_s
        self._idle: list[_Connection] = []

    # -- the calls ---------------------------------------------------------------------------------
    async def create(self, body: bytes) -> str:
        data = await self.request("POST", "/containers/create", body)
        return str(json.loads(data)["Id"])

    async def start(self, container_id: str) -> None:
        await self.request("POST", f"/containers/{container_id}/start")

    async def remove(self, container_id: str) -> None:
        """Force-remove (killing it if it runs); ``WireNotFound`` if it is gone already."""
        await self.request("DELETE", f"/containers/{container_id}?force=1")

    async def attach(self, container_id: str) -> tuple[socket.socket, bytes]:
        """The container's stdin, stdout and stderr on a connection of their own (hijacked by the
        engine after ``101 UPGRADED``): a non-blocking socket, and any bytes read past the answer."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(self.timeout_s):
                await loop.sock_connect(sock, self.socket_path)
                conn = h11.Connection(h11.CLIENT)
                target = f"{self.prefix}/containers/{container_id}/attach?stdin=1&stdout=1&stderr=1&stream=1"
                headers = [("Host", "docker"), ("Connection", "Upgrade"), ("Upgrade", "tcp"), ("Content-Length", "0")]
                request = conn.send(h11.Request(method="POST", target=target, headers=headers))
                await loop.sock_sendall(sock, request + conn.send(h11.EndOfMessage()))
                body = b""
                status = 0
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await loop.sock_recv(sock, READ_SIZE))
                    elif isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                        return sock, conn.trailing_data[0]
                    elif isinstance(event, h11.Response):
                        status = event.status_code
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed) or event is h11.PAUSED:
                        break
                # no upgrade: an error (or an engine too old to hijack, which docker-py would not serve either)
                if status >= 400:
                    raise _error(status, body)
                raise WireError(status, "the engine did not hand over the stream")
        except h11.ProtocolError as exc:
            sock.close()
            raise OSError(f"the engine's attach answer is malformed: {exc}") from exc
        except BaseException:
            sock.close()
            raise

    # -- plumbing ----------------------------------------------------------------------------------
    async def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        """One call; the answer's body. Status >= 400 raises ``WireError``."""
        for attempt in (0, 1):
            conn = (self._take_idle() if attempt == 0 else None) or await self._open()
            reused = conn.used
            try:
                async with asyncio.timeout(self.timeout_s):
                    status, data = await self._exchange(conn, method, path, body)
            except (h11.ProtocolError, ConnectionError) as exc:
                conn.close()
                if reused and not conn.answered and attempt == 0:
                    # a kept-alive connection the engine had closed: it never saw the call. The
                    # engine restarted, most likely, which closed every other idle one too: the
                    # call is made again on a new connection, and the idle ones are let go
                    self.close()
                    continue
                raise OSError(f"the engine's connection failed: {exc}") from exc
            except BaseException:
                conn.close()  # cancelled or timed out mid-call: the connection's state is unknown
                raise
            self._keep(conn)
            if status >= 400:
                raise _error(status, data)
            return data
        raise AssertionError("unreachable")

    def _take_idle(self) -> _Connection | None:
        """A kept-alive connection, leaving out those the engine has closed meanwhile (its end has
        already been read by the event loop); None: a new one is needed."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.close()
        return None

    async def _open(self) -> _Connection:
        async with asyncio.timeout(self.timeout_s):
            reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=READ_SIZE)
        return _Connection(reader, writer)

    async def _exchange(self, conn: _Connection, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        headers = [("Host", "docker"), ("Content-Length", str(len(body or b"")))]
        if body is not None:
            headers.append(("Content-Type", "application/json"))
        out = conn.h11.send(h11.Request(method=method, target=self.prefix + path, headers=headers))
        if body:
            out += conn.h11.send(h11.Data(data=body))
        conn.writer.write(out + conn.h11.send(h11.EndOfMessage()))
        conn.used = True
        conn.answered = False
        status = 0
        chunks: list[bytes] = []
        while True:
            event = conn.h11.next_event()
            if event is h11.NEED_DATA:
                conn.h11.receive_data(await conn.reader.read(READ_SIZE))
            elif isinstance(event, h11.Response):
                status = event.status_code
                conn.answered = True
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return status, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the engine closed the connection mid-answer")

    def _keep(self, conn: _Connection) -> None:
        done = conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE
        if done and len(self._idle) < MAX_IDLE_CONNECTIONS:
            conn.h11.start_next_cycle()
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def wire_for(api: Any) -> EngineWire | None:
    """The fast path for ``api``'s engine when it is reached on a Unix socket, else None."""
    adapter = getattr(api, "_custom_adapter", None)
    if not isinstance(adapter, UnixHTTPAdapter):
        return None
    return EngineWire(adapter.socket_path, api._version)
